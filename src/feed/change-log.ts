import type { Database } from '../db/database.js';
import { type Cursor, cursor, has, parseCursor, parseSnapshot, type Snapshot } from './cursor.js';

/**
 * Reads of the change log (migrations/0002_change_feed.sql). Changes leave the database already
 * serialised as the protocol's JSON (`Change` in contract/protocol.ts), so the service relays them without
 * parsing: the hub concatenates these strings into frames.
 *
 * Every read names what the reader already has (a cursor, feed/cursor.ts) and asks for the rows it
 * lacks. The SQL selects candidates by an index-friendly superset (a range from the cursor's xmax plus
 * point look-ups of its in-progress and partial transactions); the exact judgement is the cursor
 * algebra's `has`, in one place, here.
 *
 * Over 300 lines because it is every query the feed makes of the log (new changes, a cursor range for a
 * catch-up, the snapshot and marks, the history tag, the triggers' state): the two reads of changes
 * share one candidate SQL and one row decoding, and the rest are a few lines each.
 */
export interface LoggedChange {
  xid: number;
  seq: number;
  /** When the change was written, ms since the epoch (for lag). */
  atMs: number;
  /** The change as protocol JSON. */
  json: string;
  op: 'insert' | 'update' | 'delete';
  /** The row after the change, as far as views and totals look at it; null for a delete. */
  row: RowFacts | null;
  /** The row before it; null for an insert. */
  old: RowFacts | null;
}

/**
 * The fields of a row that views (filter/match.ts) and live totals look at: parsed once per change (not
 * per client) from its JSON, which is relayed as it is.
 */
export interface RowFacts {
  status: string;
  customer_name: string;
  product_name: string;
  total_cents: number;
  /** ISO 8601 UTC with microseconds, as order_json() writes it. */
  created_at: string;
}

// order_change_json (migrations/0014) renders a change as the protocol's JSON; the summaries a commit
// sends render theirs with it too, so both paths hand out the same bytes.
const CHANGE_COLUMNS = `
  xid, seq, (extract(epoch FROM changed_at) * 1000)::float8 AS at_ms, order_change_json(order_changes) AS json`;

interface Row {
  xid: number;
  seq: number;
  at_ms: number;
  json: string;
}

/**
 * A change as read. Its facts (op, row, old) are parsed from its JSON on first use, once, and only on
 * a server that has a filtered view or live totals to serve: computing them in SQL cost every read of
 * the log, before its sort and limit, for every candidate row. A class, so the lazy getters live on
 * its prototype rather than as closures in every change (catch-ups read thousands a second).
 */
class ReadChange implements LoggedChange {
  private facts: Pick<LoggedChange, 'op' | 'row' | 'old'> | undefined;

  constructor(
    readonly xid: number,
    readonly seq: number,
    readonly atMs: number,
    readonly json: string,
  ) {}

  get op(): LoggedChange['op'] {
    this.facts ??= parseFacts(this.json);
    return this.facts.op;
  }

  get row(): RowFacts | null {
    this.facts ??= parseFacts(this.json);
    return this.facts.row;
  }

  get old(): RowFacts | null {
    this.facts ??= parseFacts(this.json);
    return this.facts.old;
  }
}

/** A change from its parts (a read's row, or a line of a summary: feed/summary.ts). */
export const loggedChange = (xid: number, seq: number, atMs: number, json: string): LoggedChange => new ReadChange(xid, seq, atMs, json);

// Only the JSON is kept for later: the row object (with the read's other columns) is let go.
const toChange = (r: Row): LoggedChange => loggedChange(r.xid, r.seq, r.at_ms, r.json);

function rowFacts(o: RowFacts): RowFacts {
  return {
    status: o.status,
    customer_name: o.customer_name,
    product_name: o.product_name,
    total_cents: o.total_cents,
    created_at: o.created_at,
  };
}

function parseFacts(json: string): Pick<LoggedChange, 'op' | 'row' | 'old'> {
  const c = JSON.parse(json) as { op: LoggedChange['op']; order: RowFacts; old: RowFacts | null };
  return { op: c.op, row: c.op === 'delete' ? null : rowFacts(c.order), old: c.old ? rowFacts(c.old) : null };
}

/**
 * The candidate rows a cursor may lack, as query parameters: rows at or above its xmax or of a
 * transaction it saw running ($1, $2), except its partial transactions, whose rows after the partial's
 * seq come from point look-ups ($3, $4).
 */
function candidateParams(c: Cursor): [number, number[], number[], number[]] {
  return [c.snapshot.xmax, [...c.snapshot.xip], c.partials.map((p) => p.xid), c.partials.map((p) => p.seq)];
}

const NO_RANGE = Number.MAX_SAFE_INTEGER;

/**
 * Rows matching candidateParams, in (xid, seq) order, below the xid bound $5, not of the transactions
 * $6 (those the reader's upper bound lacks) and not beyond the changes ($8, $9) of a transaction, $7 at
 * most.
 */
const CANDIDATES = `
  SELECT * FROM (
    (SELECT ${CHANGE_COLUMNS} FROM order_changes
     WHERE (xid >= $1::bigint OR xid = ANY($2::bigint[])) AND xid <> ALL($3::bigint[])
       AND xid < $5::bigint AND xid <> ALL($6::bigint[])
       AND NOT EXISTS (SELECT 1 FROM unnest($8::bigint[], $9::bigint[]) AS b(x, s) WHERE b.x = xid AND seq > b.s)
     ORDER BY xid, seq LIMIT $7)
    UNION ALL
    (SELECT ${CHANGE_COLUMNS} FROM order_changes JOIN unnest($3::bigint[], $4::bigint[]) AS p(x, s)
       ON order_changes.xid = p.x AND order_changes.seq > p.s
     WHERE xid < $5::bigint AND xid <> ALL($6::bigint[])
       AND NOT EXISTS (SELECT 1 FROM unnest($8::bigint[], $9::bigint[]) AS b(x, s) WHERE b.x = xid AND seq > b.s)
     ORDER BY xid, seq LIMIT $7)
  ) u ORDER BY xid, seq LIMIT $7`;

// The snapshot is taken in the same statement as the rows (txid_current_snapshot() returns the
// statement's own), so the rows are exactly the committed changes that snapshot sees. Rows at or above
// its xmax cannot be live ones: they can only come from another cluster's history (a restored dump), and
// are left out. The pruning mark comes from the same snapshot.
const READ_NEW_SQL = `
  WITH snap AS MATERIALIZED (SELECT txid_current_snapshot() AS s)
  SELECT snap.s::text AS snapshot, feed_history() AS history, p.mark, c.*
  FROM snap CROSS JOIN order_changes_pruned p LEFT JOIN LATERAL (
    ${CANDIDATES.replaceAll('xid < $5::bigint', 'xid < txid_snapshot_xmax(snap.s) AND $5::bigint > 0')}
  ) c ON true`;

export interface NewChanges {
  /** The snapshot the rows were read in. */
  snapshot: Snapshot;
  /** The database's history (migrations/0010): a change means a restore, recovery or failover. */
  history: string;
  /** Everything pruned from the log is had by this cursor. */
  mark: Cursor;
  /** Committed changes `after` lacks, in (xid, seq) order; `limit` of them at most. */
  changes: LoggedChange[];
  /** The read hit its limit: more follow. */
  full: boolean;
  /** When full: the transaction of the first row beyond the limit (the same as the last row's: it goes on). */
  nextXid: number | null;
}

/**
 * The committed changes a reader at `after` lacks, with the snapshot they were read in. With
 * `partialsOnly`, only the rest of its partial transactions (a large transaction is finished before any
 * other is handed out, so transactions never interleave).
 */
export async function readNewChanges(db: Database, after: Cursor, limit: number, partialsOnly = false): Promise<NewChanges> {
  const [xmax, xip, pxids, pseqs] = candidateParams(after);
  const rows = await withHistoryTag(db, async () => {
    const { rows } = await db.query<Row & { snapshot: string; history: string | null; mark: string }>(
      { name: 'feed_read_new', text: READ_NEW_SQL },
      [partialsOnly ? NO_RANGE : xmax, partialsOnly ? [] : xip, pxids, pseqs, NO_RANGE, [], limit + 1, [], []],
    );
    return { rows, history: rows[0]?.history ?? null };
  });
  const first = rows.rows[0];
  if (!first) throw new Error('order_changes_pruned has no row');
  const { page, full, nextXid } = cut(rows.rows, limit);
  return {
    snapshot: parseSnapshot(first.snapshot),
    history: rows.history,
    mark: parseMark(first.mark),
    changes: page.filter((r) => !has(after, r.xid, r.seq)).map(toChange),
    full,
    nextXid,
  };
}

/**
 * Runs a read that returns the history tag again if the tag is missing: after a crash of PostgreSQL
 * the generation is gone (migrations/0011) until a reader starts the next one.
 */
async function withHistoryTag<T extends { history: string | null }>(
  db: Database,
  read: () => Promise<T>,
): Promise<T & { history: string }> {
  const first = await read();
  if (first.history !== null) return first as T & { history: string };
  await db.query('SELECT feed_start_generation()');
  const again = await read();
  if (again.history === null) throw new Error('feed_generation is still empty after feed_start_generation()');
  return again as T & { history: string };
}

/** The first `limit` rows (read with one more, to know whether and how the page goes on). */
function cut<R extends Row>(rows: R[], limit: number): { page: R[]; full: boolean; nextXid: number | null } {
  const read = rows.filter((r) => r.xid !== null);
  const beyond = read[limit];
  return { page: read.slice(0, limit), full: beyond !== undefined, nextXid: beyond ? beyond.xid : null };
}

function parseMark(text: string): Cursor {
  const mark = parseCursor(text);
  if (!mark) throw new Error(`order_changes_pruned.mark is not a cursor: ${text.slice(0, 100)}`);
  return mark;
}

const READ_RANGE_SQL = `
  SELECT p.mark, c.*
  FROM order_changes_pruned p LEFT JOIN LATERAL (${CANDIDATES}) c ON true`;

export interface Range {
  /** Changes `after` lacks and `upTo` has, in (xid, seq) order. */
  changes: LoggedChange[];
  /** The page hit its limit: more follow. */
  full: boolean;
  /** When full: the transaction of the first row beyond the page. */
  nextXid: number | null;
  mark: Cursor;
}

/**
 * One page of history for a client catching up: the changes it lacks (at `after`) that the feed has
 * handed out (at `upTo`), the first `limit` candidates in (xid, seq) order (the next page asks again
 * with the cursor the client then has). Every transaction `upTo` has is committed, so
 * the set is stable from page to page, whatever commits meanwhile. With `partialsOnly`, only the rest of
 * the transactions `after` has the first changes of.
 */
export async function readRange(db: Database, after: Cursor, upTo: Cursor, limit: number, partialsOnly = false): Promise<Range> {
  const [xmax, xip, pxids, pseqs] = candidateParams(after);
  const { rows } = await db.query<Row & { mark: string }>({ name: 'feed_read_range', text: READ_RANGE_SQL }, [
    partialsOnly ? NO_RANGE : xmax,
    partialsOnly ? [] : xip,
    pxids,
    pseqs,
    Math.max(upTo.snapshot.xmax, ...upTo.partials.map((p) => p.xid + 1)),
    // upTo lacks these, except the first changes of its partial transactions (has() judges those).
    upTo.snapshot.xip.filter((x) => !upTo.partials.some((p) => p.xid === x)),
    limit + 1,
    [],
    [],
  ]);
  const mark = parseMark((rows[0] as { mark: string }).mark);
  const { page, full, nextXid } = cut(rows, limit);
  return {
    mark,
    // A transaction upTo has the first changes of is committed: all of it is final, and a client
    // catching up gets it whole (it is then ahead of the live stream until the feed has finished it).
    changes: page
      .filter((r) => !has(after, r.xid, r.seq) && (has(upTo, r.xid, r.seq) || upTo.partials.some((p) => p.xid === r.xid)))
      .map(toChange),
    full,
    nextXid,
  };
}

/** Where the database is now: its current snapshot, as a cursor of its history. */
export async function readSnapshot(db: Database): Promise<Cursor> {
  const row = await withHistoryTag(db, async () => {
    const { rows } = await db.query<{ s: string; history: string | null }>(
      'SELECT txid_current_snapshot()::text AS s, feed_history() AS history',
    );
    return rows[0] as { s: string; history: string | null };
  });
  return cursor(parseSnapshot(row.s), [], row.history);
}

/** The xid the next transaction will get: a cursor at or past it was never handed out by this database. */
export async function readNextXid(db: Database): Promise<number> {
  const { rows } = await db.query<{ next: number }>('SELECT txid_snapshot_xmax(txid_current_snapshot()) AS next');
  return rows[0]?.next ?? 0;
}

/**
 * The key this database generation signs its summaries with and the channel they travel on
 * (migrations/0014, 0015), and the history it belongs to; none while the generation is missing (after
 * a crash, until a read starts one) or was made in another database (a copy, until claimGeneration).
 */
export async function readSummaryKey(db: Database): Promise<{ key: Buffer | null; channel: string | null; history: string | null }> {
  const { rows } = await db.query<{ key: Buffer | null; channel: string | null; history: string | null }>(
    `SELECT CASE WHEN summary_database = current_database() THEN summary_key END AS key,
            CASE WHEN summary_database = current_database() THEN summary_channel END AS channel,
            feed_history() AS history
     FROM feed_generation`,
  );
  return rows[0] ?? { key: null, channel: null, history: null };
}

/**
 * A copy of another database or cluster (CREATE DATABASE … TEMPLATE, a pg_dump restore) carries the
 * origin's generation: its history tag and summary key. This gives it one of its own (migrations/0015),
 * before the feed reads anything, so no cursor or summary of the origin is ever trusted here.
 */
export async function claimGeneration(db: Database): Promise<void> {
  await db.query('SELECT feed_claim_generation()');
}

export async function readMark(db: Database): Promise<Cursor> {
  const { rows } = await db.query<{ mark: string }>('SELECT mark FROM order_changes_pruned');
  return parseMark((rows[0] as { mark: string }).mark);
}

/**
 * After the transaction-id counter went back (a restore, a point-in-time recovery, a failover that lost
 * commits) or a crash ended the generation: change rows at or above the current xmax belong to the
 * other history and would be mistaken for future transactions, so they go; and the pruning mark becomes
 * the current snapshot, tagged with the new history, so every cursor handed out before is reset rather
 * than trusted. The instances notice one by one: a mark already tagged with the current history was
 * written by one of them and is kept (moving it again would reset the first one's clients twice). They
 * take the mark's row first, so one that waited for another's sees the mark that one wrote.
 */
export async function forgetOtherHistory(db: Database): Promise<{ removed: number; mark: Cursor; history: string }> {
  // The tag first: the mark written below must belong to a history that exists.
  await readSnapshot(db);
  const row = await db.transaction(async (tx) => {
    await tx.query('SELECT 1 FROM order_changes_pruned FOR UPDATE');
    const { rows } = await tx.query<{ removed: number; mark: string; history: string }>(`
    WITH snap AS MATERIALIZED (SELECT txid_current_snapshot() AS s, feed_history() AS h),
    gone AS (DELETE FROM order_changes USING snap WHERE xid >= txid_snapshot_xmax(snap.s) RETURNING 1),
    marked AS (
      UPDATE order_changes_pruned SET mark = (SELECT s::text || '@' || h FROM snap), pruned_at = now()
      WHERE mark NOT LIKE '%@' || (SELECT h FROM snap) RETURNING mark)
    SELECT (SELECT count(*) FROM gone)::int AS removed,
           coalesce((SELECT mark FROM marked), (SELECT mark FROM order_changes_pruned)) AS mark,
           (SELECT h FROM snap) AS history`);
    return rows[0] as { removed: number; mark: string; history: string };
  });
  return { removed: row.removed, mark: parseMark(row.mark), history: row.history };
}

export interface TriggerState {
  name: string;
  /** pg_trigger.tgenabled: 'A' fires always, 'O' as usual (not for replication sessions), 'D' never. */
  mode: string;
}

/** The triggers on `orders` (the capture among them) and how they fire, for /debug/triggers. */
export async function readOrderTriggers(db: Database): Promise<TriggerState[]> {
  const { rows } = await db.query<TriggerState>(
    `SELECT tgname AS name, tgenabled::text AS mode FROM pg_trigger
     WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal ORDER BY tgname`,
  );
  return rows;
}

/** Rows in the change log, as the planner estimates them (counting would scan it), for /metrics. */
export async function estimateChangeLogRows(db: Database): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "SELECT greatest(reltuples, 0)::bigint AS n FROM pg_class WHERE oid = 'order_changes'::regclass",
  );
  return Number(rows[0]?.n ?? 0);
}
