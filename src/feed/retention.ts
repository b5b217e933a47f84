import type { Database } from '../db/database.js';

/**
 * Pruning of the change log by age and by count. It deletes a prefix of the feed, in batches of 1000
 * rows each in its own short transaction (writers insert at the other end and never wait on it), and
 * moves the pruning mark in the same statement as each delete: a cursor below the mark is answered
 * with `reset`, never with a silent gap.
 */
export interface RetentionPolicy {
  maxAgeHours: number;
  maxRows: number;
}

const BATCH = 1000;

async function cutoff(db: Database, policy: RetentionPolicy): Promise<{ xid: number; seq: number } | undefined> {
  const candidates: { xid: number; seq: number }[] = [];
  if (policy.maxAgeHours > 0) {
    const { rows } = await db.query<{ xid: number; seq: number }>(
      `SELECT xid, seq FROM order_changes
       WHERE changed_at < now() - make_interval(hours => $1)
         AND xid < txid_snapshot_xmin(txid_current_snapshot())
       ORDER BY xid DESC, seq DESC LIMIT 1`,
      [policy.maxAgeHours],
    );
    if (rows[0]) candidates.push(rows[0]);
  }
  if (policy.maxRows > 0) {
    // Only final changes count, as for the age limit: a change above the horizon (a transaction older
    // than it is still running) has not been handed out by any feed yet, and changes committed behind
    // that transaction sit below it in feed order, so pruning them would silently remove changes no
    // client has seen. A long transaction thus lets the log grow past maxRows until it ends.
    const { rows } = await db.query<{ xid: number; seq: number }>(
      `SELECT xid, seq FROM order_changes
       WHERE xid < txid_snapshot_xmin(txid_current_snapshot())
       ORDER BY xid DESC, seq DESC OFFSET $1 LIMIT 1`,
      [policy.maxRows],
    );
    if (rows[0]) candidates.push(rows[0]);
  }
  return candidates.sort((a, b) => b.xid - a.xid || b.seq - a.seq)[0];
}

/** One retention pass; returns how many changes it removed. */
export async function pruneChanges(db: Database, policy: RetentionPolicy): Promise<number> {
  const upTo = await cutoff(db, policy);
  if (!upTo) return 0;
  let removed = 0;
  for (;;) {
    const { rows } = await db.query<{ n: number }>(
      `WITH doomed AS (
         SELECT xid, seq FROM order_changes WHERE (xid, seq) <= ($1::bigint, $2::bigint)
         ORDER BY xid, seq LIMIT ${BATCH}
       ), deleted AS (
         DELETE FROM order_changes c USING doomed d WHERE c.xid = d.xid AND c.seq = d.seq
         RETURNING c.xid, c.seq
       ), last AS (
         SELECT xid, seq FROM deleted ORDER BY xid DESC, seq DESC LIMIT 1
       ), moved AS (
         UPDATE order_changes_pruned p SET xid = last.xid, seq = last.seq, pruned_at = now()
         FROM last WHERE (last.xid, last.seq) > (p.xid, p.seq)
       )
       SELECT count(*)::int AS n FROM deleted`,
      [upTo.xid, upTo.seq],
    );
    const n = rows[0]?.n ?? 0;
    removed += n;
    if (n < BATCH) return removed;
    await new Promise((r) => setImmediate(r));
  }
}
