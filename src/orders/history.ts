import type { Actor, HistoryEntry } from '../contract/history.js';
import type { Database } from '../db/database.js';
import { type Filter, isEverything } from '../filter/filter.js';
import { filterParams, filterSql } from './list-repository.js';

/**
 * Reading orders' histories (migrations/0013). Who made a change is decided here, in one place: a
 * claimed actor (app.actor) counts only on rows written by this service's own database role, which the
 * statement compares with its own session_user; every other writer is named by its database user and
 * application_name, so a program writing SQL directly can never pass for a token.
 */
interface Row {
  id: string;
  order_id: string;
  op: HistoryEntry['op'];
  version: number;
  at: string;
  changes: Record<string, [unknown, unknown]>;
  reason: string | null;
  db_user: string;
  application_name: string;
  claim: string | null;
}

const ENTRY_COLUMNS = `h.id, h.order_id, h.op, h.version, h.changes, h.reason, h.db_user, h.application_name,
  to_char(h.changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at,
  CASE WHEN h.db_user = session_user THEN h.actor END AS claim`;

/** The actor the service wrote (see orders/routes.ts), or the database's names when there is none. */
function actorOf(row: Row): Actor {
  if (row.claim) {
    try {
      const c = JSON.parse(row.claim) as Record<string, unknown>;
      if (typeof c.credential === 'string' && typeof c.name === 'string' && typeof c.role === 'string') {
        return { kind: 'token', credential: c.credential, name: c.name, role: c.role };
      }
    } catch {
      // Not the service's JSON: fall through to what the database knows.
    }
  }
  return { kind: 'database', user: row.db_user, application: row.application_name };
}

function toEntry(row: Row): HistoryEntry {
  return {
    id: Number(row.id),
    order_id: Number(row.order_id),
    op: row.op,
    version: row.version,
    at: row.at,
    changes: row.changes,
    reason: row.reason,
    actor: actorOf(row),
  };
}

export interface HistoryPage {
  entries: HistoryEntry[];
  /** The `before` of the next (older) page, when there is one. */
  nextBefore: number | null;
}

function page(rows: Row[], limit: number): HistoryPage {
  const more = rows.length > limit;
  const entries = (more ? rows.slice(0, limit) : rows).map(toEntry);
  return { entries, nextBefore: more ? (entries[entries.length - 1]?.id ?? null) : null };
}

/** One order's history, newest first, keyset-paged on the entry id. */
export async function orderHistory(
  db: Database,
  orderId: number,
  query: { limit: number; before?: number | undefined },
): Promise<HistoryPage> {
  const { rows } = await db.query<Row>(
    `SELECT ${ENTRY_COLUMNS} FROM order_history h
     WHERE h.order_id = $1 AND ($2::bigint IS NULL OR h.id < $2) ORDER BY h.id DESC LIMIT $3`,
    [orderId, query.before ?? null, query.limit + 1],
  );
  return page(rows, query.limit);
}

/** Whether any history of this order is kept (a deleted order's timeline outlives the order). */
export async function hasHistory(db: Database, orderId: number): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM order_history WHERE order_id = $1 LIMIT 1', [orderId]);
  return rows.length > 0;
}

/**
 * The latest entries of every order (the dashboard's Activity panel, after a reload), newest first. A
 * scoped token sees the entries of the orders its scope selects now; deleted orders are outside every
 * scope.
 */
export async function recentHistory(
  db: Database,
  scope: Filter,
  query: { limit: number; before?: number | undefined; after?: number | undefined },
): Promise<HistoryPage> {
  const everything = isEverything(scope);
  const { rows } = await db.query<Row>(
    `SELECT ${ENTRY_COLUMNS} FROM order_history h
     ${everything ? '' : 'JOIN orders o ON o.id = h.order_id'}
     WHERE ($1::bigint IS NULL OR h.id < $1) AND ($2::bigint IS NULL OR h.id > $2)
     ${everything ? '' : `AND ${filterSql('o', 4, 5, scope)}`}
     ORDER BY h.id DESC LIMIT $3`,
    everything
      ? [query.before ?? null, query.after ?? null, query.limit + 1]
      : [query.before ?? null, query.after ?? null, query.limit + 1, ...filterParams(scope)],
  );
  return page(rows, query.limit);
}

/** Forgets entries older than `days`, in batches; returns how many. Indexed on changed_at. */
export async function pruneHistory(db: Database, days: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM order_history WHERE id IN (
       SELECT id FROM order_history WHERE changed_at < now() - make_interval(days => $1) LIMIT 5000)`,
    [days],
  );
  return rowCount ?? 0;
}
