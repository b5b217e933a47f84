import { randomUUID } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { dashboardStatic } from './dashboard/static.js';
import type { Database } from './db/database.js';
import type { ChangeFeed } from './feed/feed.js';
import type { Listener } from './feed/listener.js';
import { installProblemHandlers } from './http/problems.js';
import { validatorCompiler } from './http/validation.js';
import { healthRoutes } from './ops/health.js';
import { metricsRoutes } from './ops/metrics.js';
import { registerOpenApi } from './ops/openapi.js';
import { ordersRoutes } from './orders/routes.js';
import type { Hub } from './realtime/hub.js';
import { realtimeRoutes } from './realtime/routes.js';

export interface AppDeps {
  config: Config;
  log: Logger;
  db: Database;
  feed: ChangeFeed;
  listener: Listener;
  hub: Hub;
}

/** The HTTP application, without a port: `main.ts` listens, tests use it through a real socket or inject(). */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, db, feed, listener, hub } = deps;
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    return503OnClosing: true,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  // JSON only: text/plain and the rest get 415.
  app.removeContentTypeParser(['text/plain']);
  installProblemHandlers(app);

  await registerOpenApi(app as unknown as FastifyInstance);
  await app.register(metricsRoutes, { db, pool: db.pool, feed, listener, hub });
  await app.register(healthRoutes, { db, feed, listener, hub });
  await app.register(ordersRoutes, {
    db,
    idempotencyTtlHours: config.IDEMPOTENCY_TTL_HOURS,
    afterWrite: () => feed.wroteLocally(),
  });
  await app.register(realtimeRoutes, { hub, maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES });
  await app.register(dashboardStatic);
  return app as unknown as FastifyInstance;
}
