import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { encodePageToken, firstDirection, KEY_KIND } from '../contract/sort-order.js';
import type { Database } from '../db/database.js';
import { ApiError } from '../errors.js';
import { ProblemSchema } from '../http/problem-schema.js';
import { requestedView, scopeOf } from '../http/view-filter.js';
import * as commands from './commands.js';
import { CsvExports, type ExportLimits } from './csv.js';
import { listOrders } from './list-repository.js';
import { decodePageToken } from './page-token.js';
import * as repo from './repository.js';
import {
  ExportQuerySchema,
  IdempotencyKeyHeaderSchema,
  IdParamsSchema,
  ListQuerySchema,
  OrderCreateSchema,
  OrderSchema,
  OrderUpdateSchema,
  StatsQuerySchema,
  StatsSchema,
  WRITABLE_FIELDS,
} from './schemas.js';

export interface OrdersRoutesOptions {
  db: Database;
  idempotencyTtlHours: number;
  /** CSV exports: how many at once, how long one waits for a client that takes nothing, how long one may run. */
  exports: ExportLimits;
  /** Called after every committed write, so the feed can relay it without waiting for a NOTIFY. */
  afterWrite: () => void;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * Orders arrive from the database as JSON text (order_json()); Fastify sends a string with a JSON content
 * type as it is, so the response schemas describe the API without costing a parse and a re-serialise.
 *
 * Just over 300 lines, most of it the OpenAPI description of each route, which belongs beside it.
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

export const ordersRoutes: FastifyPluginAsyncTypebox<OrdersRoutesOptions> = async (
  app,
  { db, idempotencyTtlHours, exports: limits, afterWrite },
) => {
  const exports = new CsvExports(db, limits);
  // Runs once the service's drain is over (service.ts): an export still running then is cut off.
  app.addHook('preClose', async () => exports.abortAll());
  app.get(
    '/orders',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'List orders in a sort order, a page at a time, with the total',
        description:
          'Keyset-paginated in any sort (`sort`, `dir`; ties broken by id), so a page boundary stays put while rows change. `X-Total-Count` is the number of orders in the view and `X-Page-Offset` how many come before this page, both in the snapshot of the rows. `X-Change-Cursor` is the feed position of that snapshot: stream `/ws?after=<cursor>` to receive every later change exactly once. A `Link: <…>; rel="next"` header points to the next page (an opaque `page` token) when there is one.',
        querystring: ListQuerySchema,
        response: { 200: Type.Array(OrderSchema), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { query } = request;
      const sort = query.sort ?? 'id';
      const dir = query.dir ?? firstDirection(sort);
      let at = query.page === undefined ? null : decodePageToken(query.page, sort, dir);
      if (query.before !== undefined) {
        if (sort !== 'id' || dir !== 'desc' || at) {
          throw new ApiError('validation-failed', 'before works only with the default order (sort=id, dir=desc) and without page.', {
            errors: [{ field: 'query.before', message: 'use the page token of the Link header with other orders' }],
          });
        }
        at = { value: query.before, id: query.before };
      }
      const page = await listOrders(db, requestedView(query, request.principal), sort, dir, query.limit, at);
      reply.header('x-change-cursor', page.cursor);
      reply.header('x-total-count', String(page.total));
      reply.header('x-page-offset', String(page.offset));
      const last = page.rows[page.rows.length - 1];
      if (page.hasMore && last) {
        const next = new URLSearchParams();
        if (query.status) next.set('status', query.status);
        if (query.q) next.set('q', query.q);
        next.set('sort', sort);
        next.set('dir', dir);
        next.set('limit', String(query.limit));
        const value = KEY_KIND[sort] === 'number' ? Number(last.key) : last.key;
        next.set('page', encodePageToken(sort, dir, { value, id: last.id }));
        reply.header('link', `</orders?${next.toString()}>; rel="next"`);
      }
      return reply.type(JSON_TYPE).send(preserialized(`[${page.rows.map((r) => r.json).join(',')}]`));
    },
  );

  app.get(
    '/orders.csv',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'The orders of a view as CSV, from one snapshot',
        description:
          "The same `status`, `q`, `sort` and `dir` as GET /orders (a scoped token sees its scope), every matching order, streamed from one REPEATABLE READ snapshot (its feed position is `X-Change-Cursor`). RFC 4180 quoting; a cell starting with = + - @, tab or CR is prefixed with `'` so spreadsheets do not run it as a formula.",
        querystring: ExportQuerySchema,
        produces: ['text/csv'],
        response: { 200: Type.String({ description: 'text/csv; header row first' }), ...errorResponses, 429: ProblemSchema },
      },
    },
    async (request, reply) => {
      const sort = request.query.sort ?? 'id';
      const dir = request.query.dir ?? firstDirection(sort);
      const asFile = () => {
        const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '-');
        reply.header('content-disposition', `attachment; filename="orders-${stamp}Z.csv"`);
        reply.header('cache-control', 'no-store');
        return reply.type('text/csv; charset=utf-8; header=present');
      };
      // HEAD gets the headers only. Fastify answers HEAD with the GET handler and then reads the body to
      // its end, so an export started for a HEAD would run whole, holding a place, for nobody.
      if (request.method === 'HEAD') return asFile().send('' as never);
      if (limits.max === 0) {
        throw new ApiError(
          'exports-off',
          'This instance runs no CSV exports: its database pool (DB_POOL_MAX) has no connection to spare for one.',
        );
      }
      const started = await exports.start(requestedView(request.query, request.principal), sort, dir);
      if (!started) {
        throw new ApiError(
          'export-busy',
          `${limits.max === 1 ? 'An export is' : `${limits.max} exports are`} running on this instance, the most it runs at once; try again in a few seconds.`,
          {},
          { 'retry-after': '5' },
        );
      }
      reply.header('x-change-cursor', started.cursor);
      return asFile().send(started.body as never);
    },
  );

  app.get(
    '/orders/stats',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'Counts and totals per status, and orders created per minute over the last hour',
        description:
          'Sums of `total_cents` are exact JSON integers, written digit for digit by the database; past 2^53 a client must parse them as big numbers to keep every cent. `X-Change-Cursor` is the feed position of these numbers: add the `stats` of every message of `/ws?after=<cursor>&stats=1` to keep them exact. A scoped token sees the totals of its scope. `view_orders` counts the orders matching `status` and `q` (as on GET /orders) in the same snapshot.',
        querystring: StatsQuerySchema,
        response: { 200: StatsSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const stats = await repo.orderStats(db, scopeOf(request.principal), requestedView(request.query, request.principal));
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
