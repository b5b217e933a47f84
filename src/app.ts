import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { authPlugin, bearerToken } from './auth/plugin.js';
import { authRoutes } from './auth/routes.js';
import type { TokenStore } from './auth/tokens.js';
import type { Config } from './config.js';
import { CONTENT_SECURITY_POLICY, dashboardStatic } from './dashboard/static.js';
import type { Database } from './db/database.js';
import { ApiError } from './errors.js';
import type { ChangeFeed } from './feed/feed.js';
import type { Listener } from './feed/listener.js';
import { limitConnections, slowClientOptions } from './http/connection-limits.js';
import { HttpDrain } from './http/drain.js';
import { installProblemHandlers } from './http/problems.js';
import { validatorCompiler } from './http/validation.js';
import { debugRoutes } from './ops/debug.js';
import { healthRoutes } from './ops/health.js';
import { metricsRoutes } from './ops/metrics.js';
import { registerOpenApi } from './ops/openapi.js';
import { historyRoutes } from './orders/history-routes.js';
import { ordersRoutes } from './orders/routes.js';
import type { Hub } from './realtime/hub.js';
import { realtimeRoutes, registerWebSocketSupport } from './realtime/routes.js';

export interface AppDeps {
  config: Config;
  log: Logger;
  db: Database;
  feed: ChangeFeed;
  listener: Listener;
  hub: Hub;
  tokens: TokenStore;
}

const list = (value: string) =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** The HTTP application, without a port: `main.ts` listens, tests use it through a real socket or inject(). */
export async function buildApp(deps: AppDeps): Promise<{ app: FastifyInstance; drain: HttpDrain }> {
  const { config, db, feed, listener, hub, tokens } = deps;
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    // A caller's X-Request-Id is kept only when it is a plain short id; anything else would let a
    // caller write arbitrary bytes into every log line of its request.
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID();
    },
    // Requests still arriving on open connections while stopping are answered (HttpDrain closes each
    // connection after its answer); a bare 503 would fail a write nginx cannot replay elsewhere.
    return503OnClosing: false,
    ...slowClientOptions(config),
    trustProxy: config.TRUST_PROXY === 'true' ? true : config.TRUST_PROXY ? list(config.TRUST_PROXY) : false,
  }).withTypeProvider<TypeBoxTypeProvider>();

  limitConnections(app.server, {
    total: config.HTTP_MAX_CONNECTIONS,
    perAddress: config.HTTP_MAX_CONNECTIONS_PER_ADDRESS,
    trustProxy: config.TRUST_PROXY,
    log: deps.log,
  });
  const drain = new HttpDrain(app.server);
  drain.install(app as unknown as FastifyInstance);
  app.setValidatorCompiler(validatorCompiler);
  // JSON only: text/plain and the rest get 415.
  app.removeContentTypeParser(['text/plain']);
  installProblemHandlers(app);

  await registerWebSocketSupport(app as unknown as FastifyInstance, config.WS_MAX_PAYLOAD_BYTES);
  // Security headers everywhere; one Content-Security-Policy (the dashboard's) for every response.
  await app.register(helmet, { contentSecurityPolicy: false, crossOriginEmbedderPolicy: false });
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
  });
  const corsOrigins = list(config.CORS_ORIGINS);
  if (corsOrigins.length > 0) {
    await app.register(cors, {
      origin: corsOrigins,
      exposedHeaders: [
        'x-change-cursor',
        'x-total-count',
        'x-page-offset',
        'link',
        'etag',
        'location',
        'retry-after',
        'content-disposition',
      ],
    });
  }
  if (config.RATE_LIMIT_PER_MINUTE > 0) {
    await app.register(rateLimit, {
      global: true,
      max: config.RATE_LIMIT_PER_MINUTE,
      timeWindow: 60_000,
      keyGenerator: (request) => request.ip,
      errorResponseBuilder: (_request, context) =>
        new ApiError('too-many-requests', `At most ${context.max} requests per minute from one address; retry after ${context.after}.`),
    });
  }
  await app.register(authPlugin, {
    tokens,
    allowedOrigins: list(config.WS_ALLOWED_ORIGINS),
    perTokenPerMinute: config.RATE_LIMIT_PER_TOKEN_PER_MINUTE,
    allowedHosts: list(config.ALLOWED_HOSTS).map((h) => h.toLowerCase()),
  });

  await registerOpenApi(app as unknown as FastifyInstance);
  await app.register(metricsRoutes, { db, pool: db.pool, feed, listener, hub });
  await app.register(healthRoutes, {
    db,
    feed,
    listener,
    hub,
    draining: () => drain.draining,
    mayReadDetails: async (request) => {
      if (!tokens.knownRequired) return true;
      const token = bearerToken(request);
      return token !== undefined && (await tokens.authenticate(token))?.role === 'admin';
    },
  });
  await app.register(authRoutes, { tokens, currency: config.CURRENCY });
  if (config.DEBUG_ENDPOINTS) await app.register(debugRoutes, { db, feed, hub });
  await app.register(ordersRoutes, {
    db,
    idempotencyTtlHours: config.IDEMPOTENCY_TTL_HOURS,
    exports: { max: config.CSV_EXPORTS_MAX, stallMs: config.CSV_EXPORT_STALL_MS, maxMs: config.CSV_EXPORT_MAX_MS },
    afterWrite: () => feed.wroteLocally(),
  });
  await app.register(historyRoutes, { db });
  await app.register(realtimeRoutes, { hub });
  await app.register(dashboardStatic);
  return { app: app as unknown as FastifyInstance, drain };
}
