import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Database } from '../db/database.js';
import { ApiError } from '../errors.js';
import { isEverything } from '../filter/filter.js';
import { ProblemSchema } from '../http/problem-schema.js';
import { scopeOf } from '../http/view-filter.js';
import * as history from './history.js';
import * as repo from './repository.js';
import { IdParamsSchema } from './schemas.js';

const Id = (description: string) => Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description });

const HistoryQuerySchema = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    before: Type.Optional(Id('Keyset pagination: entries older than this entry id (the `Link: rel="next"` header has it).')),
  },
  { additionalProperties: false },
);

const RecentQuerySchema = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    before: Type.Optional(Id('Entries older than this entry id.')),
    after: Type.Optional(Id('Only entries newer than this entry id (to catch up).')),
  },
  { additionalProperties: false },
);

const ActorSchema = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('token'),
      credential: Type.String({ description: '`db:<id>` (npm run token), `env:<n>` (AUTH_TOKENS), or `local` (authentication off).' }),
      name: Type.String(),
      role: Type.String(),
    },
    { description: 'A write through the API or the dashboard, by this credential.' },
  ),
  Type.Object(
    {
      kind: Type.Literal('database'),
      user: Type.String({ description: 'The database role that wrote it (session_user).' }),
      application: Type.String({ description: 'Its application_name (may be empty).' }),
    },
    { description: 'A write by another program (or psql) straight into the database.' },
  ),
]);

export const HistoryEntrySchema = Type.Object({
  id: Type.Integer({ description: 'Entry id: increasing in write order.' }),
  order_id: Type.Integer(),
  op: Type.Union([Type.Literal('insert'), Type.Literal('update'), Type.Literal('delete')]),
  version: Type.Integer({ description: "The order's version after the change (a delete: one past its last)." }),
  at: Type.String({ format: 'date-time', description: 'When it was written, UTC with microseconds.' }),
  changes: Type.Record(Type.String(), Type.Array(Type.Unknown(), { minItems: 2, maxItems: 2 }), {
    description: 'Each changed field as [old, new]; a creation lists every field as [null, value]; a delete none.',
  }),
  reason: Type.Union([Type.String(), Type.Null()], { description: 'The reason given with the change (e.g. a cancel), if any.' }),
  actor: ActorSchema,
});

export interface HistoryRoutesOptions {
  db: Database;
}

function nextLink(path: string, limit: number, before: number | null): string | undefined {
  if (before === null) return undefined;
  return `<${path}?limit=${limit}&before=${before}>; rel="next"`;
}

/** Order timelines (migrations/0013): who changed what and when, kept HISTORY_RETENTION_DAYS. */
export const historyRoutes: FastifyPluginAsyncTypebox<HistoryRoutesOptions> = async (app, { db }) => {
  app.get(
    '/orders/:id/history',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: "An order's history, newest first",
        description:
          'Every change since the order was created (within HISTORY_RETENTION_DAYS): who (a token, or the database user and application of another writer), when, what (field: [old, new]) and why. Keyset-paginated with `Link: rel="next"`. A deleted order keeps its history; a scoped token sees the history of orders in its scope only (404 otherwise).',
        params: IdParamsSchema,
        querystring: HistoryQuerySchema,
        response: { 200: Type.Array(HistoryEntrySchema), 400: ProblemSchema, 404: ProblemSchema, 503: ProblemSchema },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const scope = scopeOf(request.principal);
      // The same visibility as GET /orders/:id; a deleted order is in no scope, only unscoped callers see it.
      const exists = (await repo.getOrder(db, id, scope)) !== undefined;
      if (!exists && (!isEverything(scope) || !(await history.hasHistory(db, id)))) {
        throw new ApiError('not-found', `Order ${id} does not exist.`);
      }
      const page = await history.orderHistory(db, id, request.query);
      const link = nextLink(`/orders/${id}/history`, request.query.limit, page.nextBefore);
      if (link) reply.header('link', link);
      return page.entries;
    },
  );

  app.get(
    '/orders/history',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'The latest history entries of all orders, newest first',
        description:
          "What the dashboard's Activity panel shows. `after` returns only newer entries (to catch up); `before` pages back. A scoped token sees the entries of the orders its scope selects.",
        querystring: RecentQuerySchema,
        response: { 200: Type.Array(HistoryEntrySchema), 400: ProblemSchema, 503: ProblemSchema },
      },
    },
    async (request, reply) => {
      const page = await history.recentHistory(db, scopeOf(request.principal), request.query);
      const link = nextLink('/orders/history', request.query.limit, page.nextBefore);
      if (link) reply.header('link', link);
      return page.entries;
    },
  );
};
