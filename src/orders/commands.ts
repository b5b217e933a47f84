import { createHash } from 'node:crypto';
import { canMove, NEXT_STATUSES } from '../contract/statuses.js';
import type { Database, Queryable } from '../db/database.js';
import { ApiError } from '../errors.js';
import { EVERYTHING, type Filter, formatFilter, isEverything } from '../filter/filter.js';
import { type Matchable, matches } from '../filter/match.js';
import * as repo from './repository.js';
import type { OrderCreate, OrderUpdate } from './schemas.js';

/** The write paths of the orders API: each one transaction, with the checks that must hold inside it. */

/** The API's changes wait for another program's row locks only so long (Database.lockTimeout). */
const WRITE = { write: true };

/** A write's response: what the route sends, and whether it is a stored one replayed. */
export interface WriteResult {
  status: number;
  /** JSON text; 'null' for a 204. */
  body: string;
  headers: Record<string, string>;
  replayed: boolean;
}

function createdResponse(order: repo.OrderText): WriteResult {
  return {
    status: 201,
    body: order.json,
    headers: { location: `/orders/${order.id}`, etag: `"${order.version}"` },
    replayed: false,
  };
}

function updatedResponse(order: repo.OrderText): WriteResult {
  return { status: 200, body: order.json, headers: { etag: `"${order.version}"` }, replayed: false };
}

const DELETED: WriteResult = { status: 204, body: 'null', headers: {}, replayed: false };

function requestHash(request: unknown): string {
  const canonical = JSON.stringify(request, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
  return createHash('sha256').update(canonical).digest('hex');
}

/** An Idempotency-Key as it arrived, with its scope (principal, method, path) and how long it is kept. */
export interface Idempotency {
  scope: repo.IdempotencyScope;
  ttlHours: number;
}

/**
 * Runs a write under an Idempotency-Key, the same way for every method. The stored outcome is written in
 * the same transaction as the write, so a crash leaves neither and the key free to retry; a refusal (an
 * ApiError) rolls back and stores nothing, so a corrected retry may use the same key. A concurrent
 * request with the same key finds the advisory lock taken and gets 409 rather than waiting. `request`
 * is everything that makes two requests "the same" besides the scope (the body, If-Match); a stored key
 * whose hash is that of `storedBefore` instead (how an earlier release described the same request) is
 * the same request too.
 */
async function idempotent(
  db: Database,
  idempotency: Idempotency,
  request: unknown,
  write: (tx: Queryable) => Promise<WriteResult>,
  storedBefore?: unknown,
): Promise<WriteResult> {
  const { scope, ttlHours } = idempotency;
  const hash = requestHash(request);
  const earlierHash = storedBefore === undefined ? undefined : requestHash(storedBefore);
  return db.transaction(async (tx) => {
    if (!(await repo.tryLockIdempotencyKey(tx, scope))) {
      throw new ApiError(
        'idempotency-key-in-use',
        'A request with this Idempotency-Key is still being processed; retry shortly.',
        {},
        { 'retry-after': '1' },
      );
    }
    const stored = await repo.findIdempotentResponse(tx, scope, ttlHours);
    if (stored) {
      if (stored.request_hash !== hash && stored.request_hash !== earlierHash) {
        throw new ApiError(
          'idempotency-key-reused',
          'This Idempotency-Key was first used with a different request; use a new key for a new request.',
        );
      }
      return { status: stored.status_code, body: stored.body, headers: stored.headers, replayed: true };
    }
    const result = await write(tx);
    await repo.storeIdempotentResponse(tx, scope, {
      request_hash: hash,
      status_code: result.status,
      headers: result.headers,
      body: result.body,
    });
    return result;
  }, WRITE);
}

/**
 * A scoped token (auth/tokens.ts) may only leave orders inside its scope: a write whose result would be
 * outside it is refused with 403 `outside-scope` (and an order already outside it is not found, 404).
 */
function checkInScope(scope: Filter, row: Matchable, id: number | null): void {
  if (matches(scope, row)) return;
  throw new ApiError(
    'outside-scope',
    `${id === null ? 'The new order' : `Order ${id}`} would be outside this token's scope (${formatFilter(scope)}).`,
    { scope: formatFilter(scope) },
  );
}

export async function createOrder(
  db: Database,
  input: OrderCreate,
  idempotency?: Idempotency,
  scope: Filter = EVERYTHING,
  by: repo.WriteActor = repo.NO_ACTOR,
): Promise<WriteResult> {
  if (!isEverything(scope))
    checkInScope(scope, { status: input.status ?? 'pending', customer_name: input.customer_name, product_name: input.product_name }, null);
  if (!idempotency) return createdResponse(await repo.insertOrder(db, input, by));
  return idempotent(db, idempotency, input, async (tx) => createdResponse(await repo.insertOrder(tx, input, by)));
}

export interface Precondition {
  /** Versions from If-Match; `'*'` matches any existing order. */
  versions: number[] | '*';
}

function checkPrecondition(current: { version: number }, precondition: Precondition | undefined): boolean {
  if (!precondition || precondition.versions === '*') return true;
  return precondition.versions.includes(current.version);
}

async function preconditionFailed(db: Parameters<typeof repo.getOrder>[0], id: number): Promise<ApiError> {
  const current = await repo.getOrder(db, id);
  return new ApiError(
    'precondition-failed',
    `Order ${id} is at version ${current?.version}; re-read it and apply your change again.`,
    { current_version: current?.version, order: current ? JSON.parse(current.json) : null },
    current ? { etag: `"${current.version}"` } : {},
  );
}

async function updateLocked(
  tx: Queryable,
  id: number,
  patch: OrderUpdate,
  precondition: Precondition | undefined,
  scope: Filter,
  by: repo.WriteActor,
): Promise<WriteResult> {
  const current = await repo.lockOrder(tx, id);
  if (!current || !matches(scope, current)) throw new ApiError('not-found', `Order ${id} does not exist.`);
  if (!checkPrecondition(current, precondition)) throw await preconditionFailed(tx, id);
  if (patch.status && !canMove(current.status, patch.status)) {
    const allowed = NEXT_STATUSES[current.status];
    throw new ApiError(
      'invalid-transition',
      allowed.length
        ? `An order in status ${current.status} can move to ${allowed.join(', ')}, not ${patch.status}.`
        : `An order in status ${current.status} is final and cannot move to ${patch.status}.`,
      { current_status: current.status, allowed_next_statuses: allowed },
    );
  }
  if (!isEverything(scope)) checkInScope(scope, { ...current, ...patch }, id);
  return updatedResponse(await repo.updateOrder(tx, id, patch, by));
}

export async function updateOrder(
  db: Database,
  id: number,
  patch: OrderUpdate,
  precondition?: Precondition,
  idempotency?: Idempotency,
  scope: Filter = EVERYTHING,
  by: repo.WriteActor = repo.NO_ACTOR,
): Promise<WriteResult> {
  if (!idempotency) return db.transaction((tx) => updateLocked(tx, id, patch, precondition, scope, by), WRITE);
  // The reason goes into the order's history, so it is part of what makes two requests the same; left
  // out when there is none, so requests without one hash as they did before it counted. A key stored by
  // a release that left it out (during a rolling upgrade, and for IDEMPOTENCY_TTL_HOURS after) still
  // replays for the same request: a retry must never turn into a 422 because the server was upgraded.
  const withoutReason = { body: patch, precondition: precondition ?? null };
  const request = by.reason ? { ...withoutReason, reason: by.reason } : withoutReason;
  return idempotent(
    db,
    idempotency,
    request,
    (tx) => updateLocked(tx, id, patch, precondition, scope, by),
    by.reason ? withoutReason : undefined,
  );
}

async function deleteLocked(
  tx: Queryable,
  id: number,
  precondition: Precondition,
  scope: Filter,
  by: repo.WriteActor,
): Promise<WriteResult> {
  const current = await repo.lockOrder(tx, id);
  if (!current || !matches(scope, current)) throw new ApiError('not-found', `Order ${id} does not exist.`);
  if (!checkPrecondition(current, precondition)) throw await preconditionFailed(tx, id);
  await repo.deleteOrder(tx, id, by);
  return DELETED;
}

export async function deleteOrder(
  db: Database,
  id: number,
  precondition?: Precondition,
  idempotency?: Idempotency,
  scope: Filter = EVERYTHING,
  by: repo.WriteActor = repo.NO_ACTOR,
): Promise<WriteResult> {
  if (idempotency) {
    return idempotent(db, idempotency, { precondition: precondition ?? null }, (tx) =>
      deleteLocked(tx, id, precondition ?? { versions: '*' }, scope, by),
    );
  }
  if (precondition || !isEverything(scope))
    return db.transaction((tx) => deleteLocked(tx, id, precondition ?? { versions: '*' }, scope, by), WRITE);
  if (!(await repo.deleteOrder(db, id, by))) throw new ApiError('not-found', `Order ${id} does not exist.`);
  return DELETED;
}
