import { readFile } from 'node:fs/promises';
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';

/**
 * The OpenAPI document, generated from the same TypeBox schemas the server validates with, at
 * GET /docs/openapi.json (and /docs, which redirects there). Registered before the routes so it sees them.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Orders',
        version: '1',
        description:
          'Real-time order management. Errors are application/problem+json (RFC 9457). The live change feed is a WebSocket at /ws; its protocol is described in docs/protocol.md.',
      },
    },
  });
  app.get('/docs/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/docs', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/docs/openapi.json'));
  // The WebSocket protocol, which OpenAPI cannot describe, beside it.
  const protocol = new URL('../../docs/protocol.md', import.meta.url);
  app.get('/docs/protocol.md', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/markdown; charset=utf-8').send(await readFile(protocol, 'utf8')),
  );
}
