import type { Database } from '../db/database.js';
import { formatCursor, parseCursor, parseSnapshot, truncate, union, cursor as withPartials } from './cursor.js';

/**
 * Pruning of the change log: exactly the changes written longer ago than the age limit, and those
 * beyond the newest `maxRows` (by seq, assigned in write order; finding that cut walks `maxRows` index
 * entries, and only when the log's seq span exceeds the limit), in batches of 1000 rows, each batch in
 * a short transaction of its own that also moves the pruning mark. The mark is a cursor that has every
 * pruned change (feed/cursor.ts): the deleting statement's snapshot, cut just above the highest pruned
 * transaction. A cursor that does not contain the mark may lack a pruned change and is answered with
 * `reset`, never with a silent gap.
 *
 * Only committed rows can be deleted (the statement sees no others), so a running transaction's changes
 * are never pruned before anyone could read them; a committed one that no feed has read yet may be, with
 * a tiny limit, and the feeds then see the mark pass them and reset their clients.
 */
export interface RetentionPolicy {
  maxAgeHours: number;
  maxRows: number;
}

const BATCH = 1000;

const PRUNE_SQL = `
  WITH snap AS MATERIALIZED (SELECT txid_current_snapshot() AS s),
  -- The newest change beyond the count limit: found by walking the seq index back from the newest, and
  -- only when the log can hold more than the limit at all (seq gaps from rolled-back writes make
  -- arithmetic on seq over-prune).
  limit_seq AS (
    SELECT seq FROM order_changes
    WHERE $2::bigint > 0 AND (SELECT max(seq) - min(seq) + 1 FROM order_changes) > $2::bigint
    ORDER BY seq DESC OFFSET $2::bigint LIMIT 1
  ),
  doomed AS (
    (SELECT ctid FROM order_changes WHERE $1::int > 0 AND changed_at < now() - make_interval(hours => $1::int) LIMIT ${BATCH})
    UNION
    (SELECT ctid FROM order_changes, limit_seq WHERE order_changes.seq <= limit_seq.seq LIMIT ${BATCH})
  ),
  deleted AS (DELETE FROM order_changes c USING doomed d WHERE c.ctid = d.ctid RETURNING c.xid)
  SELECT (SELECT s::text FROM snap) AS snapshot, (SELECT max(xid) FROM deleted) AS max_xid, (SELECT count(*) FROM deleted)::int AS n`;

/** One retention pass; returns how many changes it removed. */
export async function pruneChanges(db: Database, policy: RetentionPolicy): Promise<number> {
  if (policy.maxAgeHours === 0 && policy.maxRows === 0) return 0;
  let removed = 0;
  for (;;) {
    const n = await db.transaction(async (tx) => {
      const { rows: marks } = await tx.query<{ mark: string }>('SELECT mark FROM order_changes_pruned FOR UPDATE');
      const { rows } = await tx.query<{ snapshot: string; max_xid: number | null; n: number }>(PRUNE_SQL, [
        policy.maxAgeHours,
        policy.maxRows,
      ]);
      const row = rows[0] as { snapshot: string; max_xid: number | null; n: number };
      if (row.n === 0 || row.max_xid === null) return 0;
      const old = parseCursor((marks[0] as { mark: string }).mark);
      if (!old) throw new Error('order_changes_pruned.mark is not a cursor');
      const pruned = withPartials(truncate(parseSnapshot(row.snapshot), Number(row.max_xid) + 1));
      await tx.query('UPDATE order_changes_pruned SET mark = $1, pruned_at = now()', [formatCursor(union(old, pruned))]);
      return row.n;
    });
    removed += n;
    if (n < BATCH) return removed;
    await new Promise((r) => setImmediate(r));
  }
}
