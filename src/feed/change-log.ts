import type { Database } from '../db/database.js';
import type { Position } from './cursor.js';

/**
 * Reads of the change log (migrations/0002_change_feed.sql). Changes leave the database already
 * serialised as the protocol's JSON (`Change` in protocol.ts), so the service relays them without
 * parsing: the hub concatenates these strings into frames.
 *
 * The horizon: a change is handed out only once its xid is below the oldest transaction still running
 * (txid_snapshot_xmin of the current snapshot). Below it every transaction has finished, so no change
 * can still appear at an earlier position; above it, one might. A long-running writer therefore holds
 * the feed back until it ends, but never makes it skip.
 */
export interface LoggedChange extends Position {
  /** When the change was written, ms since the epoch (for lag). */
  atMs: number;
  /** The change as protocol JSON. */
  json: string;
}

const CHANGE_COLUMNS = `
  xid, seq, (extract(epoch FROM changed_at) * 1000)::float8 AS at_ms,
  (SELECT row_to_json(c)::text FROM (
     SELECT xid || '-' || seq AS cursor, op, row_data AS "order", old_data AS old,
            to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at
   ) c) AS json`;

interface Row {
  xid: number;
  seq: number;
  at_ms: number;
  json: string;
}

const toChange = (r: Row): LoggedChange => ({ xid: r.xid, seq: r.seq, atMs: r.at_ms, json: r.json });

// The pruning mark comes from the same snapshot: a feed whose head is below it has a gap it must report.
// `held` says whether committed or running changes wait above the horizon: the transaction holding the
// horizon back may be one that never touches orders (in any database of the cluster), so no doorbell
// will announce its end, and the feed must look again by itself.
const READ_NEW_SQL = `
  WITH horizon AS MATERIALIZED (SELECT txid_snapshot_xmin(txid_current_snapshot()) AS xmin),
  mark AS (
    SELECT p.xid AS pruned_xid, p.seq AS pruned_seq,
           EXISTS (SELECT 1 FROM order_changes o, horizon h WHERE o.xid >= h.xmin) AS held
    FROM order_changes_pruned p
  )
  SELECT mark.pruned_xid, mark.pruned_seq, mark.held, c.*
  FROM mark LEFT JOIN LATERAL (
    SELECT ${CHANGE_COLUMNS}
    FROM order_changes, horizon
    WHERE (xid, seq) > ($1::bigint, $2::bigint)
      AND xid < horizon.xmin
    ORDER BY xid, seq
    LIMIT $3
  ) c ON true`;

export interface NewChanges extends Range {
  /** Changes exist beyond the horizon, held back by a transaction still running. */
  held: boolean;
}

/** The next final changes after `after`, in feed order, and the pruning mark. */
export async function readFinalChanges(db: Database, after: Position, limit: number): Promise<NewChanges> {
  const { rows } = await db.query<Row & { pruned_xid: number; pruned_seq: number; held: boolean }>(
    { name: 'feed_read_new', text: READ_NEW_SQL },
    [after.xid, after.seq, limit],
  );
  const first = rows[0];
  return {
    pruned: { xid: first?.pruned_xid ?? 0, seq: first?.pruned_seq ?? 0 },
    held: first?.held === true,
    changes: rows.filter((r) => r.xid !== null).map(toChange),
  };
}

/** Where the feed is now: the last final change (or the pruning mark when the log is empty). */
export async function readHead(db: Database): Promise<Position> {
  const { rows } = await db.query<Position>(`
    SELECT xid, seq FROM (
      (SELECT xid, seq FROM order_changes
       WHERE xid < txid_snapshot_xmin(txid_current_snapshot())
       ORDER BY xid DESC, seq DESC LIMIT 1)
      UNION ALL
      (SELECT xid, seq FROM order_changes_pruned)
    ) candidates ORDER BY xid DESC, seq DESC LIMIT 1`);
  return rows[0] ?? { xid: 0, seq: 0 };
}

export interface Range {
  changes: LoggedChange[];
  /** Everything at or before this position has been pruned (read in the same snapshot). */
  pruned: Position;
}

const READ_RANGE_SQL = `
  WITH mark AS (SELECT xid AS pruned_xid, seq AS pruned_seq FROM order_changes_pruned)
  SELECT mark.pruned_xid, mark.pruned_seq, c.*
  FROM mark LEFT JOIN LATERAL (
    SELECT ${CHANGE_COLUMNS}
    FROM order_changes
    WHERE (xid, seq) > ($1::bigint, $2::bigint) AND (xid, seq) <= ($3::bigint, $4::bigint)
    ORDER BY xid, seq
    LIMIT $5
  ) c ON true`;

/**
 * Changes in (after, upTo], for a client catching up. Every change in that range is already final
 * (upTo is a position the feed has passed), so this is a stable read of history.
 */
export async function readRange(db: Database, after: Position, upTo: Position, limit: number): Promise<Range> {
  const { rows } = await db.query<Row & { pruned_xid: number; pruned_seq: number }>({ name: 'feed_read_range', text: READ_RANGE_SQL }, [
    after.xid,
    after.seq,
    upTo.xid,
    upTo.seq,
    limit,
  ]);
  const first = rows[0];
  return {
    pruned: { xid: first?.pruned_xid ?? 0, seq: first?.pruned_seq ?? 0 },
    changes: rows.filter((r) => r.xid !== null).map(toChange),
  };
}

/** The xid the next transaction will get: a cursor at or past it was never handed out by this database. */
export async function readNextXid(db: Database): Promise<number> {
  const { rows } = await db.query<{ next: number }>('SELECT txid_snapshot_xmax(txid_current_snapshot()) AS next');
  return rows[0]?.next ?? 0;
}

export async function readPruned(db: Database): Promise<Position> {
  const { rows } = await db.query<Position>('SELECT xid, seq FROM order_changes_pruned');
  return rows[0] ?? { xid: 0, seq: 0 };
}

export async function countChanges(db: Database): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::bigint AS n FROM order_changes');
  return rows[0]?.n ?? 0;
}
