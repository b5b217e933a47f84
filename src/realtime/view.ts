import type { LoggedChange } from '../feed/change-log.js';
import { type Filter, filterKey, isEverything } from '../filter/filter.js';
import { matches } from '../filter/match.js';

/**
 * What one socket subscribed to: the rows of its view (its requested filter intersected with its
 * credential's scope) and whether it wants live totals (and through which scope). Sockets with equal
 * keys get the same bytes, so the broadcast builds each batch's frames once per distinct view.
 */
export interface View {
  key: string;
  /** Null: every row (frames exactly as before views existed, without `view` fields). */
  filter: Filter | null;
  /** Null: no totals; otherwise the scope totals are counted in (everything for an unscoped token). */
  stats: Filter | null;
  statsKey: string;
}

export const ALL_ROWS: View = { key: '*|-', filter: null, stats: null, statsKey: '-' };

export function makeView(filter: Filter, stats: Filter | null): View {
  const f = isEverything(filter) ? null : filter;
  const statsKey = stats === null ? '-' : filterKey(stats);
  return { key: `${f === null ? '*' : filterKey(f)}|${statsKey}`, filter: f, stats, statsKey };
}

export type Entry = 'enter' | 'leave' | 'stay';

/** How a change concerns a view: the row enters it, leaves it, stays in it, or (null) never was in it. */
export function entryOf(filter: Filter, c: LoggedChange): Entry | null {
  const before = c.old !== null && matches(filter, c.old);
  const after = c.row !== null && matches(filter, c.row);
  if (before && after) return 'stay';
  if (after) return 'enter';
  return before ? 'leave' : null;
}
