/**
 * The service worker: the app shell (index.html and its hashed assets) when the network is gone, so a
 * reload while offline opens the dashboard, with its offline queue and the last data it saw (kept by the
 * page itself in sessionStorage and shown as stale, last-data.ts), instead of the browser's error page.
 *
 * What it caches, and how:
 * - `/` (any navigation to it): network first, always. The cached copy is only for when the network
 *   fails, so a new build is picked up on the next load as before (index.html is `no-cache`).
 * - `/assets/*`: cache first. Vite names them after their content hash, so a name never changes meaning;
 *   entries the current index.html no longer names are dropped.
 * - Nothing else. API answers (`/orders`, `/me`, `/readyz`, `/ws`, …) are never intercepted, so the page
 *   never takes a stored answer for a fresh one; it knows when it is showing old data and says so.
 *
 * Built by Vite to /sw.js (web/vite.config.ts), scope `/`; it works behind nginx unchanged (same origin,
 * same paths) and under the page's CSP (`script-src 'self'` covers workers from this origin).
 */
const worker = globalThis as unknown as ServiceWorkerGlobalScope;

const CACHE = 'orders-shell-v1';
const SHELL = '/';

function assetsNamedIn(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] as string);
}

/** Keeps `/` and the assets it names; drops assets of older builds. */
async function keepShell(response: Response): Promise<void> {
  const cache = await caches.open(CACHE);
  const html = await response.clone().text();
  await cache.put(SHELL, response);
  const wanted = new Set(assetsNamedIn(html));
  await Promise.all(
    [...wanted].map(async (path) => {
      if (!(await cache.match(path))) await cache.add(path);
    }),
  );
  for (const request of await cache.keys()) {
    const path = new URL(request.url).pathname;
    if (path.startsWith('/assets/') && !wanted.has(path) && !path.endsWith('.map')) await cache.delete(request);
  }
}

worker.addEventListener('install', (event: ExtendableEvent) => {
  event.waitUntil(
    fetch(SHELL, { cache: 'no-cache' })
      .then((res) => (res.ok ? keepShell(res) : undefined))
      .catch(() => undefined)
      .then(() => worker.skipWaiting()),
  );
});

worker.addEventListener('activate', (event: ExtendableEvent) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith('orders-shell-') && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => worker.clients.claim()),
  );
});

async function navigate(request: Request): Promise<Response> {
  try {
    const response = await fetch(request);
    if (response.ok) await keepShell(response.clone()).catch(() => undefined);
    return response;
  } catch (err) {
    const cached = await caches.match(SHELL);
    if (cached) return cached;
    throw err;
  }
}

async function asset(request: Request): Promise<Response> {
  const cached = await caches.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) {
    const cache = await caches.open(CACHE);
    await cache.put(request, response.clone());
  }
  return response;
}

worker.addEventListener('fetch', (event: FetchEvent) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== worker.location.origin) return;
  if (request.mode === 'navigate' && (url.pathname === '/' || url.pathname === '/index.html')) {
    event.respondWith(navigate(request));
  } else if (url.pathname.startsWith('/assets/')) {
    event.respondWith(asset(request));
  }
});
