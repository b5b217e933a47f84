import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Database } from '../db/database.js';
import { ApiError } from '../errors.js';
import { ProblemSchema } from '../http/problem-schema.js';
import { requestedView, scopeOf } from '../http/view-filter.js';
import * as commands from './commands.js';
import * as repo from './repository.js';
import {
  IdempotencyKeyHeaderSchema,
  IdParamsSchema,
  ListQuerySchema,
  OrderCreateSchema,
  OrderSchema,
  OrderUpdateSchema,
  StatsSchema,
  WRITABLE_FIELDS,
} from './schemas.js';

export interface OrdersRoutesOptions {
  db: Database;
  idempotencyTtlHours: number;
  /** Called after every committed write, so the feed can relay it without waiting for a NOTIFY. */
  afterWrite: () => void;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * Orders arrive from the database as JSON text (order_json()); Fastify sends a string with a JSON content
 * type as it is, so the response schemas describe the API without costing a parse and a re-serialise.
 */
const preserialized = (json: string) => json as never;

function parseIfMatch(header: string | undefined): commands.Precondition | undefined {
  if (header === undefined) return undefined;
  if (header.trim() === '*') return { versions: '*' };
  const versions: number[] = [];
  for (const part of header.split(',')) {
    const m = /^\s*(?:W\/)?"(\d{1,9})"\s*$/.exec(part);
    if (!m) {
      throw new ApiError('validation-failed', 'If-Match must be an ETag such as "3" (with the quotes), a list of them, or *.', {
        errors: [{ field: 'If-Match', message: 'must be a quoted version such as "3"' }],
      });
    }
    versions.push(Number(m[1]));
  }
  return { versions };
}

/**
 * The Idempotency-Key of a write, scoped to who sent it and where: the same key from another credential,
 * or on another method or order, is a different key (so one caller can neither replay nor probe another's).
 */
function idempotencyOf(
  request: FastifyRequest,
  method: repo.IdempotencyScope['method'],
  path: string,
  ttlHours: number,
): commands.Idempotency | undefined {
  const key = request.headers['idempotency-key'];
  if (typeof key !== 'string') return undefined;
  return { scope: { principal: request.principal?.id ?? 'anonymous', method, path, key }, ttlHours };
}

function sendWrite(reply: FastifyReply, result: commands.WriteResult, afterWrite: () => void): FastifyReply {
  if (result.replayed) reply.header('idempotent-replayed', 'true');
  else afterWrite();
  reply.code(result.status).headers(result.headers);
  if (result.status === 204) return reply.send(null);
  return reply.type(JSON_TYPE).send(preserialized(result.body));
}

/**
 * Who a write is by, for the order's history: the credential (its id, name and role; `local` with
 * authentication off) and the reason the request gives (PATCH/PUT `reason`).
 */
function writeActor(request: FastifyRequest, reason?: string): repo.WriteActor {
  const p = request.principal;
  return {
    actor: p ? JSON.stringify({ credential: p.id, name: p.name, role: p.role }) : '',
    reason: reason?.trim() ?? '',
  };
}

/** Names are compared and stored trimmed; trimming before validation makes "1–200 after trim" exact. */
function trimNames(body: unknown): void {
  if (!body || typeof body !== 'object') return;
  const b = body as Record<string, unknown>;
  for (const f of ['customer_name', 'product_name']) if (typeof b[f] === 'string') b[f] = (b[f] as string).trim();
}

const errorResponses = {
  400: ProblemSchema,
  403: ProblemSchema,
  404: ProblemSchema,
  409: ProblemSchema,
  412: ProblemSchema,
  413: ProblemSchema,
  415: ProblemSchema,
  422: ProblemSchema,
  503: ProblemSchema,
};

export const ordersRoutes: FastifyPluginAsyncTypebox<OrdersRoutesOptions> = async (app, { db, idempotencyTtlHours, afterWrite }) => {
  app.get(
    '/orders',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'List orders, newest first',
        description:
          'Keyset-paginated. `X-Change-Cursor` is the feed position of this snapshot: stream `/ws?after=<cursor>` to receive every later change exactly once. A `Link: <…>; rel="next"` header points to the next page when there is one.',
        querystring: ListQuerySchema,
        response: { 200: Type.Array(OrderSchema), ...errorResponses },
      },
    },
    async (request, reply) => {
      const page = await repo.listOrders(db, request.query, requestedView(request.query, request.principal));
      reply.header('x-change-cursor', page.cursor);
      if (page.nextBefore !== null) {
        const next = new URLSearchParams();
        if (request.query.status) next.set('status', request.query.status);
        if (request.query.q) next.set('q', request.query.q);
        next.set('limit', String(request.query.limit));
        next.set('before', String(page.nextBefore));
        reply.header('link', `</orders?${next.toString()}>; rel="next"`);
      }
      return reply.type(JSON_TYPE).send(preserialized(page.json));
    },
  );

  app.get(
    '/orders/stats',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'Counts and totals per status, and orders created per minute over the last hour',
        description:
          'Sums of `total_cents` are exact JSON integers, written digit for digit by the database; past 2^53 a client must parse them as big numbers to keep every cent. `X-Change-Cursor` is the feed position of these numbers: add the `stats` of every message of `/ws?after=<cursor>&stats=1` to keep them exact. A scoped token sees the totals of its scope.',
        response: { 200: StatsSchema, 503: ProblemSchema },
      },
    },
    async (request, reply) => {
      const stats = await repo.orderStats(db, scopeOf(request.principal));
      reply.header('x-change-cursor', stats.cursor);
      return reply.type(JSON_TYPE).send(preserialized(stats.json));
    },
  );

  app.get(
    '/orders/:id',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'One order; its ETag is its version',
        params: IdParamsSchema,
        response: { 200: OrderSchema, 304: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      const order = await repo.getOrder(db, request.params.id, scopeOf(request.principal));
      if (!order) throw new ApiError('not-found', `Order ${request.params.id} does not exist.`);
      const etag = `"${order.version}"`;
      reply.header('etag', etag);
      if (request.headers['if-none-match'] === etag) return reply.code(304).send(null);
      return reply.type(JSON_TYPE).send(preserialized(order.json));
    },
  );

  app.post(
    '/orders',
    {
      config: { auth: 'operator' },
      preValidation: async (request) => trimNames(request.body),
      schema: {
        summary: 'Create an order',
        description:
          'With `Idempotency-Key`, the first outcome is stored and replayed for repeats with the same body (for IDEMPOTENCY_TTL_HOURS); the same key with a different body is 422, and a repeat while the first is in flight is 409. Keys are scoped to the credential, the method and the path.',
        body: OrderCreateSchema,
        headers: IdempotencyKeyHeaderSchema,
        response: { 201: OrderSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const idempotency = idempotencyOf(request, 'POST', '/orders', idempotencyTtlHours);
      return sendWrite(
        reply,
        await commands.createOrder(db, request.body, idempotency, scopeOf(request.principal), writeActor(request)),
        afterWrite,
      );
    },
  );

  for (const method of ['PUT', 'PATCH'] as const) {
    app.route({
      method,
      url: '/orders/:id',
      config: { auth: 'operator' },
      preValidation: async (request) => trimNames(request.body),
      schema: {
        summary: method === 'PATCH' ? 'Change some fields of an order' : 'Change some fields of an order (same as PATCH)',
        description:
          'Any non-empty subset of the writable fields, and optionally a `reason` (kept in the order\'s history, e.g. why it was cancelled). `If-Match: "<version>"` makes it conditional (412 when stale). Status moves forward only (409 names the allowed next statuses). `Idempotency-Key` works as on POST: a repeat with the same body and If-Match replays the first response instead of changing the order again.',
        params: IdParamsSchema,
        body: OrderUpdateSchema,
        headers: IdempotencyKeyHeaderSchema,
        response: { 200: OrderSchema, ...errorResponses },
      },
      handler: async (request, reply) => {
        const { id } = request.params;
        const precondition = parseIfMatch(request.headers['if-match']);
        const idempotency = idempotencyOf(request, method, `/orders/${id}`, idempotencyTtlHours);
        const { reason, ...patch } = request.body;
        if (!WRITABLE_FIELDS.some((f) => patch[f] !== undefined)) {
          throw new ApiError('validation-failed', 'Name at least one field to change; a reason alone changes nothing.', {
            errors: [{ field: 'body', message: `must have at least one of ${WRITABLE_FIELDS.join(', ')}` }],
          });
        }
        return sendWrite(
          reply,
          await commands.updateOrder(db, id, patch, precondition, idempotency, scopeOf(request.principal), writeActor(request, reason)),
          afterWrite,
        );
      },
    });
  }

  app.delete(
    '/orders/:id',
    {
      config: { auth: 'admin' },
      schema: {
        summary: 'Delete an order',
        description: 'Optional `If-Match`. With `Idempotency-Key` (as on POST) a repeat replays the first 204 instead of answering 404.',
        params: IdParamsSchema,
        headers: IdempotencyKeyHeaderSchema,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const precondition = parseIfMatch(request.headers['if-match']);
      const idempotency = idempotencyOf(request, 'DELETE', `/orders/${id}`, idempotencyTtlHours);
      return sendWrite(
        reply,
        await commands.deleteOrder(db, id, precondition, idempotency, scopeOf(request.principal), writeActor(request)),
        afterWrite,
      );
    },
  );
};
