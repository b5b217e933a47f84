import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/**
 * Serves the dashboard (web/, built by Vite into web/dist/) at `/`.
 *
 * Only the files that exist in web/dist when the service starts get a route (`wildcard: false`): a path
 * that is not one of them, `..` tricks included, falls through to the API's 404 and never reaches the
 * file system. Vite names every asset after its content hash, so assets are cached for a year;
 * index.html names them and is revalidated on every load, so a new build is picked up at once.
 *
 * The page runs under a strict Content-Security-Policy: scripts, styles and connections only from this
 * origin (WebSockets included), no inline code, no plugins, no framing.
 */
export interface DashboardStaticOptions {
  /** The built dashboard; web/dist beside this checkout unless given. */
  root?: string;
}

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const DEFAULT_ROOT = fileURLToPath(new URL('../../web/dist/', import.meta.url));
const NOT_BUILT =
  'The dashboard has not been built: run `npm run build:web` (or start the service with `npm start`, which builds it), then restart.\n';

export const dashboardStatic: FastifyPluginAsync<DashboardStaticOptions> = async (app, options) => {
  const root = options.root ?? DEFAULT_ROOT;
  if (!existsSync(`${root}/index.html`)) {
    app.log.warn({ event: 'dashboard.not_built', root }, 'web/dist is missing; / explains how to build the dashboard');
    app.get('/', async (_request, reply) =>
      reply.code(503).type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(NOT_BUILT),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    wildcard: false,
    index: 'index.html',
    decorateReply: false,
    cacheControl: false,
    etag: true,
    lastModified: true,
    dotfiles: 'ignore',
    setHeaders(res, filePath) {
      res.setHeader('x-content-type-options', 'nosniff');
      res.setHeader('referrer-policy', 'no-referrer');
      if (filePath.endsWith('.html')) {
        res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
        res.setHeader('cache-control', 'no-cache');
      } else if (/[\\/]assets[\\/]/.test(filePath)) {
        res.setHeader('cache-control', 'public, max-age=31536000, immutable');
      } else {
        res.setHeader('cache-control', 'no-cache');
      }
    },
  });
};
