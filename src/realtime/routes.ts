import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import websocket from '@fastify/websocket';
import { Type } from '@sinclair/typebox';
import type { Hub } from './hub.js';

export interface RealtimeRoutesOptions {
  hub: Hub;
  maxPayloadBytes: number;
}

export const realtimeRoutes: FastifyPluginAsyncTypebox<RealtimeRoutesOptions> = async (app, { hub, maxPayloadBytes }) => {
  await app.register(websocket, {
    options: { maxPayload: maxPayloadBytes, perMessageDeflate: false, clientTracking: false },
    // The hub closes sockets itself on shutdown (with 1012), before Fastify closes the server.
    preClose: (done) => done(),
  });
  app.get(
    '/ws',
    {
      websocket: true,
      schema: {
        querystring: Type.Object(
          { after: Type.Optional(Type.String({ maxLength: 20_000, description: 'Resume after this cursor.' })) },
          { additionalProperties: false },
        ),
      },
    },
    (socket, request) => {
      const { after } = request.query as { after?: string };
      hub.accept(socket, after, request.ip);
    },
  );
};
