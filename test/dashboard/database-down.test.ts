import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import type { BrowserContext } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { http, type RunningService, startService } from '../helpers/service.js';
import { type DashboardPage, openDashboard } from './page.js';

/**
 * The header tells the truth about the database, and the queue goes out as soon as the API answers
 * (issue 14, item 2). A private PostgreSQL (the shared one serves the other test files), stopped and
 * started again on the same port and data folder under a running service.
 */
const log = pino({ level: 'silent' });
let dir: string;
let postgres: EmbeddedPostgres;
let sql: pg.Pool;
let svc: RunningService;
let port: number;
let browser: TestBrowser;
let context: BrowserContext | undefined;
const pages: DashboardPage[] = [];
const SETTINGS = {
  WS_HEARTBEAT_MS: '1000',
  LISTENER_BACKOFF_MIN_MS: '50',
  LISTENER_BACKOFF_MAX_MS: '300',
  DB_CONNECT_TIMEOUT_MS: '1000',
  FEED_POLL_MS: '300',
};
/** While the database is down the API answers 503 on purpose; Chromium logs each one. */
const EXPECTED_WHILE_DOWN = /status of 503/;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'orders-dashboard-db-down-'));
  postgres = await startEmbeddedPostgres({ dataDir: dir, port: 0, log });
  sql = new pg.Pool({ connectionString: postgres.url, max: 2 });
  sql.on('error', () => undefined);
  await migrate(sql, log);
  svc = await startService(postgres.url, SETTINGS);
  port = svc.port;
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  await sql?.end();
  await postgres?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  await sql.query("SELECT set_config('orders.allow_truncate', 'on', true); TRUNCATE orders RESTART IDENTITY");
  context = await browser.newContext();
});

afterEach(async () => {
  const errors = pages.flatMap((p) => p.errors).filter((e) => !EXPECTED_WHILE_DOWN.test(e));
  pages.length = 0;
  await context?.close();
  context = undefined;
  // A test that failed half-way leaves the next one a running database and service.
  if (
    !(await sql.query('SELECT 1').then(
      () => true,
      () => false,
    ))
  ) {
    postgres = await startEmbeddedPostgres({ dataDir: dir, port: postgres.port, log });
  }
  if (
    !(await fetch(`${svc.url}/healthz`).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    svc = await startService(postgres.url, { ...SETTINGS, PORT: String(port) });
  }
  expect(errors).toEqual([]);
});

async function statusOf(id: number): Promise<string> {
  return (await sql.query('SELECT status FROM orders WHERE id = $1', [id])).rows[0]?.status;
}

describe('the database stops under a live page', () => {
  it('stops saying Live, queues a move, and sends it as soon as the API answers again', async () => {
    const created = await http(svc.url, 'POST', '/orders', { customer_name: 'Dora Down', product_name: 'Disk' });
    const id = created.body.id as number;
    const p = await openDashboard(context as BrowserContext, svc.url);
    pages.push(p);
    await p.row(id).waitFor();

    await postgres.stop();
    // The socket stays open (the service rides out the restart), so only a readiness check can tell.
    await p.state.filter({ hasText: /^Database unavailable$/ }).waitFor({ timeout: 25_000 });
    expect(await p.page.locator('.connection').getAttribute('data-state')).not.toBe('live');

    await p.moveStatus(id, 'processing');
    await expect.poll(() => p.page.getByTestId('queue-count').textContent(), { timeout: 15_000 }).toBe('1 queued');
    expect(await p.page.getByRole('button', { name: 'Retry now' }).count()).toBe(1);

    postgres = await startEmbeddedPostgres({ dataDir: dir, port: postgres.port, log });
    // No socket reconnect happens: the queue must go out because the API answers again.
    await expect.poll(() => statusOf(id), { timeout: 25_000, interval: 250 }).toBe('processing');
    await p.page.getByTestId('queue-count').waitFor({ state: 'detached', timeout: 10_000 });
    await p.waitLive(20_000);
    await expect.poll(() => p.status(id).textContent()).toBe('Processing');
    expect(await p.page.getByTestId('notices').textContent()).toContain('Sent 1 queued action.');
  });
});

describe('waiting to reconnect', () => {
  it('offers "Retry now", which connects at once instead of after the grown backoff', async () => {
    const p = await openDashboard(context as BrowserContext, svc.url);
    pages.push(p);
    await svc.close();
    // Let the backoff grow to several seconds.
    const detail = p.page.locator('.connection-detail');
    const secondsToRetry = async () => Number(/next try in (\d+) s/.exec((await detail.textContent().catch(() => '')) ?? '')?.[1] ?? 0);
    await expect.poll(secondsToRetry, { timeout: 30_000, interval: 200 }).toBeGreaterThanOrEqual(4);
    svc = await startService(postgres.url, { ...SETTINGS, PORT: String(port) });
    // The scheduled retry is more than (shown - 1) s away: live sooner than that is the button's doing.
    const shown = await secondsToRetry();
    const started = Date.now();
    await p.page.getByRole('button', { name: 'Retry now' }).click();
    await p.waitLive(10_000);
    expect(shown).toBeGreaterThanOrEqual(2);
    expect(Date.now() - started).toBeLessThan((shown - 1) * 1000);
  });
});

describe('sending the queue', () => {
  it('counts only the queued actions the server accepted and names the refused ones', async () => {
    const a = (await http(svc.url, 'POST', '/orders', { customer_name: 'Accepted Ann', product_name: 'Box' })).body.id as number;
    const b = (await http(svc.url, 'POST', '/orders', { customer_name: 'Refused Rob', product_name: 'Box' })).body.id as number;
    const p = await openDashboard(context as BrowserContext, svc.url);
    pages.push(p);
    await p.row(b).waitFor();
    await context?.setOffline(true);
    await p.state.filter({ hasText: /^Offline$/ }).waitFor();
    await p.moveStatus(a, 'processing');
    await p.moveStatus(b, 'shipped');
    await expect.poll(() => p.page.getByTestId('queue-count').textContent()).toBe('2 queued');
    // Meanwhile someone else delivers b: the queued move to shipped is now refused.
    await sql.query("UPDATE orders SET status = 'shipped' WHERE id = $1", [b]);
    await sql.query("UPDATE orders SET status = 'delivered' WHERE id = $1", [b]);

    await context?.setOffline(false);
    await p.page.getByTestId('queue-count').waitFor({ state: 'detached', timeout: 20_000 });
    const notices = p.page.getByTestId('notices');
    await expect.poll(() => notices.textContent(), { timeout: 10_000 }).toContain('Sent 1 of 2 queued actions');
    const text = (await notices.textContent()) ?? '';
    expect(text).not.toContain('Sent 2');
    expect(text).toMatch(new RegExp(`refused: change the status to shipped for #${b}`));
    expect(await statusOf(a)).toBe('processing');
    expect(await statusOf(b)).toBe('delivered');
  });
});
