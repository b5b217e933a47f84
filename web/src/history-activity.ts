import { useEffect, useState } from 'preact/hooks';
import type { Dashboard } from './dashboard.ts';
import { fetchRecentHistory, type HistoryEntry } from './history-api.ts';
import { actorLabel, summarizeEntry } from './history-format.ts';
import type { Activity, OrderStore } from './order-store.ts';

/**
 * Who made the changes in the Activity panel, and the panel's entries after a reload.
 *
 * The live feed carries no actor (docs/protocol.md: who made a change is the history's to tell, with its
 * own trust rule and retention), so the names come from GET /orders/history: the latest entries when
 * the page loads (which also fill the panel again after a reload), then, when the stream brings changes
 * the panel cannot name yet, at most one catch-up request (`after` the newest entry seen) per second.
 * Entries are matched by order id and version, the key the panel already uses.
 */
const CATCH_UP_MS = 1000;
const SEED = 50;
const MAX_ACTIVITY = 100;
/** A change whose entry the history does not return (a scoped token's order that left its scope) is asked for twice, then left unnamed. */
const MAX_TRIES = 2;

const keyOf = (e: HistoryEntry) => `${e.order_id}:${e.version}`;

export class ActivityNames {
  readonly names = new Map<string, string>();
  private newest: number | undefined;
  private readonly tries = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private unsubscribe: (() => void) | null = null;
  private stopped = false;

  constructor(private readonly store: OrderStore) {}

  async start(): Promise<void> {
    try {
      const page = await fetchRecentHistory({ limit: SEED });
      if (this.stopped) return;
      this.take(page.entries);
      this.seed(page.entries);
    } catch {
      // Offline or refused: the panel still shows the stream's changes, unnamed.
    }
    if (this.stopped) return;
    this.unsubscribe = this.store.subscribe(() => this.check());
    this.check();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.unsubscribe?.();
  }

  private take(entries: HistoryEntry[]): void {
    for (const e of entries) {
      this.names.set(keyOf(e), actorLabel(e.actor));
      if (this.newest === undefined || e.id > this.newest) this.newest = e.id;
    }
    // Names only for what the panel shows: a day of changes would otherwise pile up here.
    if (this.names.size > 4 * MAX_ACTIVITY) {
      const shown = new Set(this.store.activity.map((a) => a.key));
      for (const k of this.names.keys()) if (!shown.has(k)) this.names.delete(k);
      for (const k of this.tries.keys()) if (!shown.has(k)) this.tries.delete(k);
    }
  }

  /** After a reload the panel is empty: the history's latest entries fill it, merged with what the stream already brought. */
  private seed(entries: HistoryEntry[]): void {
    const have = new Set(this.store.activity.map((a) => a.key));
    const added: Activity[] = entries
      .filter((e) => !have.has(keyOf(e)))
      .map((e) => ({
        key: keyOf(e),
        id: e.order_id,
        customer: String(e.changes.customer_name?.[1] ?? this.store.orders.get(e.order_id)?.customer_name ?? ''),
        text: summarizeEntry(e),
        at: Date.parse(e.at),
      }));
    if (!added.length) return;
    this.store.activity = [...this.store.activity, ...added].sort((a, b) => b.at - a.at).slice(0, MAX_ACTIVITY);
    this.store.touch();
  }

  private check(): void {
    if (this.timer !== undefined || this.stopped) return;
    const unnamed = this.store.activity.some((a) => !this.names.has(a.key) && (this.tries.get(a.key) ?? 0) < MAX_TRIES);
    if (unnamed) this.timer = setTimeout(() => void this.catchUp(), CATCH_UP_MS);
  }

  private async catchUp(): Promise<void> {
    for (const a of this.store.activity) if (!this.names.has(a.key)) this.tries.set(a.key, (this.tries.get(a.key) ?? 0) + 1);
    try {
      const page = await fetchRecentHistory(this.newest === undefined ? { limit: MAX_ACTIVITY } : { after: this.newest, limit: 1000 });
      if (this.stopped) return;
      this.take(page.entries);
      if (page.entries.length) this.store.touch();
    } catch {
      // Tried again at the next change.
    } finally {
      this.timer = undefined;
    }
  }
}

/** The names for the dashboard's Activity panel, for as long as the component lives. */
export function useActivityNames(dashboard: Dashboard): ReadonlyMap<string, string> {
  const [names] = useState(() => new ActivityNames(dashboard.store));
  useEffect(() => {
    void names.start();
    return () => names.stop();
  }, [names]);
  return names.names;
}
