import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { type Browser, type BrowserContext, type BrowserContextOptions, chromium, type Page } from 'playwright-core';

/**
 * A real Chromium for the dashboard tests: Chromium's headless shell, Debian's `chromium-headless-shell`
 * (Playwright's own download cannot work on these machines; its default headless browser is this same
 * build). Same Blink and V8 as the full browser without its windowing layers: workday.test.ts ran
 * in 40 s instead of 66 s, with about 40% less CPU and the same results. Playwright gives every launch
 * a fresh temporary profile (user-data-dir) and removes it on close. CHROMIUM_PATH overrides the binary
 * (`/usr/bin/chromium`, the full browser, works too, and is used when the headless shell is missing).
 */
export const FULL_CHROMIUM = '/usr/bin/chromium';
const HEADLESS_SHELL = '/usr/bin/chromium-headless-shell';
export const CHROMIUM_PATH =
  process.env.CHROMIUM_PATH ?? (existsSync(HEADLESS_SHELL) || !existsSync(FULL_CHROMIUM) ? HEADLESS_SHELL : FULL_CHROMIUM);

/** Flags that work on these machines (no sandbox as root, no background traffic to a closed network). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export const WEB_DIST = path.resolve(import.meta.dirname, '../../web/dist');

/** Stops with one line saying what to do when Chromium is not there. */
export function requireChromium(): void {
  if (existsSync(CHROMIUM_PATH)) return;
  const how =
    process.getuid?.() === 0
      ? 'apt-get update && apt-get install -y chromium-headless-shell'
      : 'sudo apt-get install -y chromium-headless-shell (or set CHROMIUM_PATH)';
  throw new Error(`Chromium is missing at ${CHROMIUM_PATH}: install it with \`${how}\` and run the tests again.`);
}

const WEB = path.resolve(import.meta.dirname, '../../web');

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds web/dist when it is missing or older than a source in web/ (or src/contract/, which web/ imports). */
export function ensureDashboardBuilt(): void {
  const built = path.join(WEB_DIST, 'index.html');
  if (existsSync(built)) {
    const sources = Math.max(
      newestSource(path.join(WEB, 'src')),
      statSync(path.join(WEB, 'index.html')).mtimeMs,
      statSync(path.join(WEB, 'vite.config.ts')).mtimeMs,
      newestSource(path.resolve(WEB, '../src/contract')),
    );
    if (statSync(built).mtimeMs >= sources) return;
  }
  execFileSync('npx', ['vite', 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], {
    cwd: path.resolve(WEB, '..'),
    stdio: 'inherit',
  });
}

export interface TestBrowser {
  browser: Browser;
  /** A new context (its own storage, like another person's browser). Closed with the browser. */
  newContext(options?: BrowserContextOptions): Promise<BrowserContext>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<TestBrowser> {
  requireChromium();
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 30_000 });
  const contexts: BrowserContext[] = [];
  return {
    browser,
    async newContext(options) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
      contexts.push(context);
      return context;
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => undefined);
      await browser.close();
    },
  };
}

/**
 * Page errors and console errors (CSP violations show up there), for a test to assert there are none.
 * Chromium logs every 4xx answer as a console error; the refusals the dashboard handles (400, 409, 412,
 * and 401/403 when the server requires a token) are expected, and so are failed requests while a test
 * has cut the network or stopped the service. A 503 from `/readyz` is that route's answer "not ready"
 * (the listener of a service that has just started is still connecting, say), which the page asks for
 * and reads (api-health.ts); a 503 from any other route is not expected unless a test says so.
 */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  const expected =
    /Failed to load resource: (the server responded with a status of (400|401|403|409|412)|net::ERR_)|WebSocket connection to .* failed/;
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error' || expected.test(msg.text())) return;
    if (/status of 503/.test(msg.text()) && new URL(msg.location().url || 'about:blank').pathname === '/readyz') return;
    errors.push(`console: ${msg.text()}`);
  });
  return errors;
}
