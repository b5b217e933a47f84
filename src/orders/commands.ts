import { createHash } from 'node:crypto';
import type { Database } from '../db/database.js';
import { ApiError } from '../errors.js';
import * as repo from './repository.js';
import type { OrderCreate, OrderUpdate } from './schemas.js';
import { canMove, NEXT_STATUSES } from './transitions.js';

/** The write paths of the orders API: each one transaction, with the checks that must hold inside it. */

export interface CreateResult {
  status: number;
  body: string;
  headers: Record<string, string>;
  replayed: boolean;
}

function createdResponse(order: repo.OrderText): CreateResult {
  return {
    status: 201,
    body: order.json,
    headers: { location: `/orders/${order.id}`, etag: `"${order.version}"` },
    replayed: false,
  };
}

function requestHash(body: unknown): string {
  const canonical = JSON.stringify(body, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
  return createHash('sha256').update(canonical).digest('hex');
}

export async function createOrder(db: Database, input: OrderCreate): Promise<CreateResult> {
  return createdResponse(await repo.insertOrder(db, input));
}

/**
 * POST /orders with an Idempotency-Key. The stored outcome is written in the same transaction as the
 * order, so a crash leaves neither and the key free to retry. A concurrent request with the same key
 * finds the advisory lock taken and gets 409 rather than waiting.
 */
export async function createOrderIdempotent(
  db: Database,
  input: OrderCreate,
  scope: string,
  key: string,
  ttlHours: number,
): Promise<CreateResult> {
  const hash = requestHash(input);
  return db.transaction(async (tx) => {
    if (!(await repo.tryLockIdempotencyKey(tx, scope, key))) {
      throw new ApiError(
        'idempotency-key-in-use',
        'A request with this Idempotency-Key is still being processed; retry shortly.',
        {},
        { 'retry-after': '1' },
      );
    }
    const stored = await repo.findIdempotentResponse(tx, scope, key, ttlHours);
    if (stored) {
      if (stored.request_hash !== hash) {
        throw new ApiError(
          'idempotency-key-reused',
          'This Idempotency-Key was first used with a different request body; use a new key for a new request.',
        );
      }
      return { status: stored.status_code, body: stored.body, headers: stored.headers, replayed: true };
    }
    const result = createdResponse(await repo.insertOrder(tx, input));
    await repo.storeIdempotentResponse(tx, scope, key, {
      request_hash: hash,
      status_code: result.status,
      headers: result.headers,
      body: result.body,
    });
    return result;
  });
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

export async function updateOrder(db: Database, id: number, patch: OrderUpdate, precondition?: Precondition): Promise<repo.OrderText> {
  return db.transaction(async (tx) => {
    const current = await repo.lockOrder(tx, id);
    if (!current) throw new ApiError('not-found', `Order ${id} does not exist.`);
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
    return repo.updateOrder(tx, id, patch);
  });
}

export async function deleteOrder(db: Database, id: number, precondition?: Precondition): Promise<void> {
  if (!precondition) {
    if (!(await repo.deleteOrder(db, id))) throw new ApiError('not-found', `Order ${id} does not exist.`);
    return;
  }
  await db.transaction(async (tx) => {
    const current = await repo.lockOrder(tx, id);
    if (!current) throw new ApiError('not-found', `Order ${id} does not exist.`);
    if (!checkPrecondition(current, precondition)) throw await preconditionFailed(tx, id);
    await repo.deleteOrder(tx, id);
  });
}
