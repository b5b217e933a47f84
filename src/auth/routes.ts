import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { TokenStore } from './tokens.js';

/** GET /me: who the caller is, so a client (the dashboard) can adapt to its role. The server still enforces it. */
export const authRoutes: FastifyPluginAsync<{ tokens: TokenStore; currency: string }> = async (app, { tokens, currency }) => {
  app.get(
    '/me',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'The caller: name, role, whether authentication is on, and the currency amounts are in',
        response: {
          200: Type.Object({
            name: Type.String(),
            role: Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('admin')]),
            authentication: Type.Boolean({ description: 'false: no credentials are configured and every caller is admin (local use)' }),
            currency: Type.String({
              description: 'ISO 4217 code of every amount (total_cents is in its hundredths): the CURRENCY setting',
            }),
          }),
        },
      },
    },
    async (request) => {
      const principal = request.principal;
      return {
        name: principal?.name ?? 'unknown',
        role: principal?.role ?? 'viewer',
        authentication: await tokens.authRequired(),
        currency,
      };
    },
  );
};
