import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import websocket from '@fastify/websocket';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { ApiError } from '../errors.js';
import { requestedView, scopeOf } from '../http/view-filter.js';
import type { Hub } from './hub.js';
import { makeView, type View } from './view.js';

/**
 * WebSocket support for the whole app. Registered before any hook that can refuse a request (auth,
 * rate limits): @fastify/websocket marks upgrade requests in an onRequest hook of its own and only
 * then cleans up the socket of a refused upgrade, so it must see every request first.
 */
export async function registerWebSocketSupport(app: FastifyInstance, maxPayloadBytes: number): Promise<void> {
  await app.register(websocket, {
    options: {
      maxPayload: maxPayloadBytes,
      perMessageDeflate: false,
      clientTracking: false,
      // The hub answers pings itself, counting them against the client's message rate (hub.ts, admit).
      autoPong: false,
      // Browsers pass the token as a `bearer.<token>` subprotocol next to `orders.v1`; the answer names
      // only `orders.v1`, so the token is never echoed.
      handleProtocols: (protocols) => (protocols.has('orders.v1') ? 'orders.v1' : false),
    },
    // The hub closes sockets itself on shutdown (with 1012), before Fastify closes the server.
    preClose: (done) => done(),
  });
}

/**
 * An idle socket should cost a few kilobytes, and the upgrade's HTTP objects are most of it: the
 * plugin leaves the ServerResponse attached to the TCP socket (which keeps the IncomingMessage too) and
 * an 'error' listener closing over request and reply. Neither is needed once the hub owns the socket
 * (it handles errors itself), so they are let go. Measured by `npm run bench -- --only connections`.
 */
function releaseUpgradeRequest(ws: WebSocket, raw: IncomingMessage): void {
  const tcp = raw.socket as (Socket & { _httpMessage?: { detachSocket?(s: Socket): void } | null }) | null;
  tcp?._httpMessage?.detachSocket?.(tcp);
  ws.removeAllListeners('error');
}

interface StreamQuery {
  after?: string;
  status?: string;
  q?: string;
  stats?: '1' | '0' | 'true' | 'false';
}

const wantsStats = (q: StreamQuery) => q.stats === '1' || q.stats === 'true';

/** The view each upgrade asked for, from the check before the upgrade to the handler after it. */
const views = new WeakMap<object, View>();

export interface RealtimeRoutesOptions {
  hub: Hub;
}

export const realtimeRoutes: FastifyPluginAsyncTypebox<RealtimeRoutesOptions> = async (app, { hub }) => {
  app.get(
    '/ws',
    {
      websocket: true,
      config: { auth: 'viewer' },
      // Refused before the upgrade, as an HTTP answer the client can read.
      preHandler: async (request) => {
        // Stopping: refused as HTTP (not accepted and closed), so that a proxy-level retry or the
        // client's next attempt goes to another instance.
        if (!hub.accepting) throw new ApiError('shutting-down', 'This instance is shutting down; reconnect.', {}, { 'retry-after': '1' });
        const query = request.query as StreamQuery;
        const view = makeView(requestedView(query, request.principal), wantsStats(query) ? scopeOf(request.principal) : null);
        views.set(request, view);
        const why = hub.refusal(request.principal?.id ?? 'local', request.ip, view);
        if (why) throw new ApiError('too-many-requests', why, {}, { 'retry-after': '5' });
      },
      schema: {
        querystring: Type.Object(
          {
            after: Type.Optional(Type.String({ maxLength: 20_000, description: 'Resume after this cursor.' })),
            status: Type.Optional(
              Type.String({ maxLength: 100, description: 'Only orders in these statuses (comma-separated), as on GET /orders.' }),
            ),
            q: Type.Optional(
              Type.String({ maxLength: 200, description: 'Only orders whose customer or product name contains this, as on GET /orders.' }),
            ),
            stats: Type.Optional(
              Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')], {
                description: 'Add live totals (`stats` deltas) to every message.',
              }),
            ),
          },
          { additionalProperties: false },
        ),
      },
    },
    (socket, request) => {
      const { after } = request.query as StreamQuery;
      const principal = request.principal?.id ?? 'local';
      const view = views.get(request) as View;
      releaseUpgradeRequest(socket, request.raw);
      hub.accept(socket, after, request.ip, principal, view);
    },
  );
};
