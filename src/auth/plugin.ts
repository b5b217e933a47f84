import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { allows } from '../contract/roles.js';
import { ApiError } from '../errors.js';
import { hostAllowed } from './hosts.js';
import type { AuthRequirement, Principal } from './roles.js';
import type { TokenStore } from './tokens.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route: a minimum role, or 'public'. */
    auth?: AuthRequirement;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export interface AuthOptions {
  tokens: TokenStore;
  /** Extra origins allowed to open WebSockets (same origin always is). */
  allowedOrigins: readonly string[];
  /** Requests per minute per credential (0: unlimited). */
  perTokenPerMinute: number;
  /** Host names served while authentication is off, besides the loopback ones (ALLOWED_HOSTS). */
  allowedHosts: readonly string[];
}

/** When no credential is configured at all (local use on loopback), everyone acts as this. */
const LOCAL_PRINCIPAL: Principal = { id: 'local', name: 'local (authentication off)', role: 'admin' };

/** Paths whose routes must say who may call them; forgetting is a startup error, not an open door. */
const GUARDED = /^\/(orders|ws|metrics|debug|me)(\/|$)/;

/** The bearer token: an Authorization header, or (browsers cannot set headers on WebSockets) a `bearer.<token>` subprotocol. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header) {
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    return m?.[1];
  }
  // Only a WebSocket upgrade may carry it there; on plain HTTP that header means nothing.
  const protocols = request.headers['sec-websocket-protocol'];
  if (typeof protocols === 'string' && isUpgrade(request)) {
    for (const p of protocols.split(',')) {
      const t = p.trim();
      if (t.startsWith('bearer.')) return t.slice('bearer.'.length);
    }
  }
  return undefined;
}

function isUpgrade(request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket';
}

function sameOrigin(request: FastifyRequest, origin: string): boolean {
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}

/**
 * Authentication and authorisation for every route, as an onRequest hook (so a WebSocket upgrade is
 * refused before any 101). Also the WebSocket Origin check: browsers send cookies and open sockets for
 * any page, so a socket from a foreign origin is refused (cross-site WebSocket hijacking).
 */
const auth: FastifyPluginAsync<AuthOptions> = async (app, { tokens, allowedOrigins, perTokenPerMinute, allowedHosts }) => {
  app.decorateRequest('principal', null);
  app.addHook('onRoute', (route) => {
    const url = route.url ?? route.path;
    if (GUARDED.test(url) && !route.config?.auth) {
      throw new Error(`route ${route.method} ${url} must declare config.auth (a role or 'public')`);
    }
  });

  const windows = new Map<string, { start: number; count: number }>();
  const overLimit = (id: string): number => {
    if (perTokenPerMinute === 0) return 0;
    const now = Date.now();
    let w = windows.get(id);
    if (!w || now - w.start >= 60_000) {
      if (windows.size > 50_000) windows.clear();
      w = { start: now, count: 0 };
      windows.set(id, w);
    }
    w.count++;
    return w.count > perTokenPerMinute ? Math.ceil((w.start + 60_000 - now) / 1000) : 0;
  };

  // With authentication off, every request (pages and probes included) must name this machine: a
  // rebinding DNS name would otherwise make an attacker's page same-origin with an admin service.
  app.addHook('onRequest', async (request) => {
    if (hostAllowed(request.headers.host, allowedHosts) || (await tokens.authRequired())) return;
    throw new ApiError(
      'misdirected-request',
      `This service has authentication off and answers only to localhost, 127.0.0.1 and [::1]${allowedHosts.length ? ` and ${allowedHosts.join(', ')}` : ''}; add the host name to ALLOWED_HOSTS, or turn authentication on.`,
    );
  });

  app.addHook('onRequest', async (request, reply) => {
    const need: AuthRequirement = request.routeOptions.config?.auth ?? 'public';
    if (need === 'public') return;
    if (isUpgrade(request)) {
      const origin = request.headers.origin;
      if (origin && !sameOrigin(request, origin) && !allowedOrigins.includes(origin)) {
        throw new ApiError('forbidden', `WebSockets from origin ${origin.slice(0, 200)} are not allowed.`);
      }
    }
    if (!(await tokens.authRequired())) {
      request.principal = LOCAL_PRINCIPAL;
      return;
    }
    const token = bearerToken(request);
    if (!token) {
      throw new ApiError('unauthorized', 'Send a token: Authorization: Bearer <token>.', {}, { 'www-authenticate': 'Bearer' });
    }
    const principal = await tokens.authenticate(token);
    if (!principal) {
      throw new ApiError(
        'unauthorized',
        'This token is not valid (unknown or revoked).',
        {},
        {
          'www-authenticate': 'Bearer error="invalid_token"',
        },
      );
    }
    if (!allows(principal.role, need)) {
      throw new ApiError('forbidden', `This needs the ${need} role; your token has ${principal.role}.`, {
        role: principal.role,
        required: need,
      });
    }
    const retryAfter = overLimit(principal.id);
    if (retryAfter > 0) {
      reply.header('retry-after', String(retryAfter));
      throw new ApiError(
        'too-many-requests',
        `At most ${perTokenPerMinute} requests per minute per token.`,
        {},
        { 'retry-after': String(retryAfter) },
      );
    }
    request.principal = principal;
  });
};

export const authPlugin = fp(auth, { name: 'auth' });
