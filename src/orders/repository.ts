import type { OrderStatus } from '../contract/statuses.js';
import type { Database, Queryable } from '../db/database.js';
import { EVERYTHING, type Filter } from '../filter/filter.js';
import { filterParams, filterShape, filterSql } from './list-repository.js';
import type { OrderCreate, OrderUpdate } from './schemas.js';
import { WRITABLE_FIELDS } from './schemas.js';

/**
 * Every SQL statement of the orders API, one function each. Orders leave the database already rendered
 * as JSON text by order_json() (the same rendering the change feed carries), so the API passes them
 * through without parsing and re-serialising.
 */

/** An order as JSON text plus the two fields the HTTP layer needs for headers. */
export interface OrderText {
  id: number;
  version: number;
  json: string;
}

/** One order, if it exists and `scope` (a scoped token's; everything by default) selects it. */
export async function getOrder(db: Queryable, id: number, scope: Filter = EVERYTHING): Promise<OrderText | undefined> {
  const { rows } = await db.query<OrderText>(
    `SELECT o.id, o.version, order_json(o)::text AS json FROM orders o WHERE o.id = $1 AND ${filterSql('o', 2, 3, scope)}`,
    [id, ...filterParams(scope)],
  );
  return rows[0];
}

// The CTE runs before the row is inserted, so the capture trigger (which fires at the end of the
// statement) sees orders.skip_notify for this transaction only; see db/database.ts. Parameters carry
// their column's type: left to inference, coalesce($4, 0) made total_cents an int4 and refused totals
// above 2^31 − 1 that the column and the schema accept.
const INSERT_SQL = `
  WITH settings AS (SELECT set_config('orders.skip_notify', $7, true), set_config('app.actor', $8, true), set_config('app.reason', $9, true))
  INSERT INTO orders (customer_name, product_name, quantity, total_cents, notes, status)
  SELECT $1::text, $2::text, coalesce($3::integer, 1), coalesce($4::bigint, 0), coalesce($5::text, ''), coalesce($6::text, 'pending')
  FROM settings
  RETURNING id, version, order_json(orders)::text AS json`;

/**
 * Who a write is by, for the order's history (migrations/0013): set for the write's transaction only, so
 * a pooled connection never carries it into the next one. Empty strings when there is nobody to name.
 */
export interface WriteActor {
  /** JSON text: the credential's id, name and role. */
  actor: string;
  /** The operator's reason, e.g. for a cancel ('' for none). */
  reason: string;
}

export const NO_ACTOR: WriteActor = { actor: '', reason: '' };

export async function insertOrder(db: Queryable, input: OrderCreate, by: WriteActor = NO_ACTOR): Promise<OrderText> {
  const { rows } = await db.query<OrderText>({ name: 'orders_insert', text: INSERT_SQL }, [
    input.customer_name,
    input.product_name,
    input.quantity ?? null,
    input.total_cents ?? null,
    input.notes ?? null,
    input.status ?? null,
    db.skipNotify,
    by.actor,
    by.reason,
  ]);
  return rows[0] as OrderText;
}

export interface LockedOrder {
  status: OrderStatus;
  version: number;
  customer_name: string;
  product_name: string;
}

export async function lockOrder(tx: Queryable, id: number): Promise<LockedOrder | undefined> {
  const { rows } = await tx.query<LockedOrder>('SELECT status, version, customer_name, product_name FROM orders WHERE id = $1 FOR UPDATE', [
    id,
  ]);
  return rows[0];
}

const COLUMN_TYPES: Record<(typeof WRITABLE_FIELDS)[number], string> = {
  customer_name: 'text',
  product_name: 'text',
  quantity: 'integer',
  total_cents: 'bigint',
  notes: 'text',
  status: 'text',
};

export async function updateOrder(tx: Queryable, id: number, patch: OrderUpdate, by: WriteActor = NO_ACTOR): Promise<OrderText> {
  const columns = WRITABLE_FIELDS.filter((f) => patch[f] !== undefined);
  const sets = columns.map((c, i) => `${c} = $${i + 4}::${COLUMN_TYPES[c]}`).join(', ');
  // The settings CTE is joined, so it runs before the row changes and the history trigger (at the end
  // of the statement) sees them.
  const { rows } = await tx.query<OrderText>(
    `WITH settings AS (SELECT set_config('app.actor', $2, true), set_config('app.reason', $3, true))
     UPDATE orders SET ${sets} FROM settings WHERE id = $1 RETURNING id, version, order_json(orders)::text AS json`,
    [id, by.actor, by.reason, ...columns.map((c) => patch[c])],
  );
  return rows[0] as OrderText;
}

export async function deleteOrder(db: Queryable, id: number, by: WriteActor = NO_ACTOR): Promise<boolean> {
  const { rowCount } = await db.query(
    // One statement, so its own transaction: the settings, lock_timeout among them, hold for it alone.
    `WITH settings AS (SELECT set_config('orders.skip_notify', $2, true), set_config('app.actor', $3, true), set_config('app.reason', $4, true),
                              set_config('lock_timeout', coalesce($5, current_setting('lock_timeout')), true))
     DELETE FROM orders USING settings WHERE id = $1`,
    [id, db.skipNotify, by.actor, by.reason, db.lockTimeout],
  );
  return rowCount === 1;
}

/**
 * The round-trip probe (POST /debug/roundtrip): an order written and removed the way another program
 * would, so the capture trigger rings the doorbell itself and the probe times the path external writes take.
 */
export async function insertProbeOrder(db: Database, name: string): Promise<number> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO orders (customer_name, product_name, notes) VALUES ($1, 'probe', 'written by POST /debug/roundtrip and deleted at once') RETURNING id`,
    [name],
  );
  return rows[0]?.id ?? 0;
}

export async function deleteProbeOrder(db: Database, id: number): Promise<void> {
  await db.query('DELETE FROM orders WHERE id = $1', [id]);
}

/**
 * /orders/stats as JSON text, for the orders in `scope` (a scoped token's; everything otherwise), with
 * the snapshot it was read in as a feed cursor: stats plus the `stats` deltas of every message after
 * that cursor are exactly the stats of later (realtime/summary.ts). Sums are numeric (sum(bigint) is
 * numeric; a cast back to bigint overflowed once totals were large) and json_build_object writes
 * numeric with every digit, so the text is exact even past 2^53, where parsing it into a JavaScript
 * number would round. It is sent as it is. `view_orders` counts the orders of `view` (the request's
 * `status`/`q` within the scope) in the same snapshot: the total a paged list starts from, kept exact by
 * the stream's enter/leave from the same cursor.
 */
export async function orderStats(db: Database, scope: Filter, view: Filter = scope): Promise<{ json: string; cursor: string }> {
  const read = () =>
    db.query<{ stats: string; cursor: string | null }>(
      {
        name: `orders_stats_${filterShape(scope)}_${filterShape(view)}`,
        text: `
    WITH scoped AS (
      SELECT o.status, o.total_cents, o.created_at FROM orders o WHERE ${filterSql('o', 1, 2, scope)}
    ), by_status AS (
      SELECT status, count(*)::bigint AS count, coalesce(sum(total_cents), 0)::numeric AS total_cents
      FROM scoped GROUP BY status
    ), minutes AS (
      SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()), interval '1 minute') AS minute
    ), created AS (
      SELECT date_trunc('minute', created_at) AS minute, count(*)::bigint AS count
      FROM scoped WHERE created_at >= date_trunc('minute', now()) - interval '59 minutes'
      GROUP BY 1
    )
    SELECT feed_snapshot_cursor() AS cursor, json_build_object(
      'total_orders', (SELECT coalesce(sum(count), 0) FROM by_status),
      'view_orders', (SELECT count(*) FROM orders o WHERE ${filterSql('o', 3, 4, view)}),
      'total_cents', (SELECT coalesce(sum(total_cents), 0) FROM by_status),
      'by_status', (SELECT coalesce(json_object_agg(status, json_build_object('count', count, 'total_cents', total_cents)), '{}') FROM by_status),
      'per_minute', (SELECT json_agg(json_build_object(
          'minute', to_char(m.minute AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
          'count', coalesce(c.count, 0)) ORDER BY m.minute)
        FROM minutes m LEFT JOIN created c USING (minute))
    )::text AS stats`,
      },
      [...filterParams(scope), ...filterParams(view)],
    );
  let { rows } = await read();
  if (rows[0]?.cursor === null) {
    // After a crash of PostgreSQL, as in listOrders.
    await db.query('SELECT feed_start_generation()');
    ({ rows } = await read());
  }
  const row = rows[0] as { stats: string; cursor: string };
  return { json: row.stats, cursor: row.cursor };
}

export interface StoredResponse {
  request_hash: string;
  status_code: number;
  headers: Record<string, string>;
  /** The response body as JSON text ('null' for a 204). */
  body: string;
}

/**
 * What an Idempotency-Key is unique within: the credential that sent it and the route it was sent to.
 * The same key from another token, or on another method or order, is another key.
 */
export interface IdempotencyScope {
  /** The principal's id: `db:<id>`, `env:<n>`, or `local` when authentication is off. */
  principal: string;
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** The canonical path: `/orders` or `/orders/<id>`. */
  path: string;
  key: string;
}

/**
 * False when another transaction holds the key right now (a concurrent request with the same key).
 * The lock is transaction-scoped: it ends with the transaction that stores the outcome.
 */
export async function tryLockIdempotencyKey(tx: Queryable, scope: IdempotencyScope): Promise<boolean> {
  const { rows } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 4242)) AS locked', [
    JSON.stringify([scope.principal, scope.method, scope.path, scope.key]),
  ]);
  return rows[0]?.locked === true;
}

export async function findIdempotentResponse(
  tx: Queryable,
  scope: IdempotencyScope,
  ttlHours: number,
): Promise<StoredResponse | undefined> {
  const { rows } = await tx.query<StoredResponse>(
    `SELECT request_hash, status_code, headers, body::text AS body FROM idempotency_keys
     WHERE principal = $1 AND method = $2 AND path = $3 AND key = $4 AND created_at > now() - make_interval(hours => $5)`,
    [scope.principal, scope.method, scope.path, scope.key, ttlHours],
  );
  return rows[0];
}

export async function storeIdempotentResponse(tx: Queryable, scope: IdempotencyScope, response: StoredResponse): Promise<void> {
  await tx.query(
    `INSERT INTO idempotency_keys (principal, method, path, key, request_hash, status_code, headers, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json)
     ON CONFLICT (principal, method, path, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
       status_code = EXCLUDED.status_code, headers = EXCLUDED.headers, body = EXCLUDED.body, created_at = now()`,
    [
      scope.principal,
      scope.method,
      scope.path,
      scope.key,
      response.request_hash,
      response.status_code,
      JSON.stringify(response.headers),
      response.body,
    ],
  );
}

export async function pruneIdempotencyKeys(db: Database, ttlHours: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM idempotency_keys WHERE ctid IN (
       SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1) LIMIT 5000)`,
    [ttlHours],
  );
  return rowCount ?? 0;
}
