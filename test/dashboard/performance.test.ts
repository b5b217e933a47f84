import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type RunningService, startService } from '../helpers/service.js';
import { type DashboardPage, openDashboard } from './page.js';

interface TraceEvent {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  tdur?: number;
  args?: { name?: string };
}

/** The renderer main thread's top-level tasks (the page runs in one renderer here). */
function mainThreadTasks(trace: TraceEvent[]): TraceEvent[] {
  const main = trace.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain');
  const threads = new Set(main.map((e) => `${e.pid}:${e.tid}`));
  return trace.filter((e) => e.name === 'RunTask' && e.ph === 'X' && threads.has(`${e.pid}:${e.tid}`));
}

/**
 * 10,000 orders, a page of 1,000 of them in the table (the largest page: the store holds one page of
 * the view since issue 14), then about 50 changes a second for four seconds (updates of random orders,
 * on the page and off it, and some inserts, written by another program). Chromium's Long Tasks API reports every
 * main-thread task over 50 ms by wall clock, and a Chromium trace gives each task's thread CPU time: no
 * task may spend over 100 ms of main-thread time, and afterwards the page must equal the database.
 */
let db: TestDatabase;
let svc: RunningService;
let browser: TestBrowser;
let context: BrowserContext | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startService(db.url);
  browser = await launchBrowser();
  await db.sql.query(`
    INSERT INTO orders (customer_name, product_name, quantity, total_cents, status)
    SELECT 'Customer ' || g, 'Product ' || (g % 97), 1 + g % 9, 100 * (g % 500),
           (ARRAY['pending','processing','shipped','delivered','cancelled'])[1 + g % 5]
    FROM generate_series(1, 10000) g`);
});

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await svc?.close();
  await db?.drop();
});

describe('under load', () => {
  it('keeps every main-thread task under 100 ms with a 1,000-row page of 10,000 orders and 50 changes a second', {
    timeout: 90_000,
  }, async () => {
    context = await browser.newContext();
    const p: DashboardPage = await openDashboard(context, `${svc.url}/?limit=1000`);
    // The largest page there is: 1,000 of the 10,000 orders, sorted and counted by the server.
    await expect.poll(() => p.page.getByTestId('orders-count').textContent(), { timeout: 20_000 }).toBe('1–1,000 of 10,000 orders');
    // Scrolled down, new orders would only be announced; at the top they come straight in.
    await p.page.evaluate(() => (globalThis as any).scrollTo(0, 0));

    await p.page.evaluate(() => {
      const g = globalThis as any;
      g.__longTasks = [];
      new g.PerformanceObserver((list: any) => {
        for (const e of list.getEntries()) g.__longTasks.push(Math.round(e.duration));
      }).observe({ type: 'longtask' });
    });

    await browser.browser.startTracing(p.page, { categories: ['toplevel', 'devtools.timeline', 'disabled-by-default-devtools.timeline'] });
    const started = Date.now();
    let writes = 0;
    while (Date.now() - started < 4000) {
      const tick = Date.now();
      // 5.5 changes every 100 ms: 5 updates and, every other tick, an insert.
      const ids = Array.from({ length: 5 }, () => 1 + Math.floor(Math.random() * 10_000));
      await db.sql.query('UPDATE orders SET quantity = quantity + 1, notes = $2 WHERE id = ANY($1::bigint[])', [ids, `w${writes}`]);
      if (writes % 2 === 0) {
        await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('Load ' || $1::text, 'Widget')", [writes]);
      }
      writes++;
      await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - tick))));
    }
    const last = await db.sql.query("SELECT max(id) AS id FROM orders WHERE customer_name LIKE 'Load %'");
    await p.row(Number(last.rows[0].id)).waitFor({ timeout: 5000 });
    const trace = JSON.parse((await browser.browser.stopTracing()).toString()).traceEvents as TraceEvent[];
    const tasks = mainThreadTasks(trace);
    const longTasks = (await p.page.evaluate(() => (globalThis as any).__longTasks)) as number[];
    const domRows = await p.page.getByTestId('order-row').count();
    console.log(
      `dashboard under load: ${writes * 5 + Math.ceil(writes / 2)} changes, ${domRows} rows in the DOM, long tasks (ms): ${JSON.stringify(longTasks)}`,
    );
    const cpu = tasks.map((t) => Math.round((t.tdur ?? 0) / 1000)).sort((x, y) => y - x);
    console.log(`  ${tasks.length} main-thread tasks; longest by thread CPU time (ms): ${JSON.stringify(cpu.slice(0, 8))}`);
    // Wall-clock durations include the time the renderer waited for a core while the other test files'
    // browsers and servers ran on this 2-core machine; thread CPU time is the page's own work.
    expect(cpu[0] ?? 0).toBeLessThan(100);
    if (process.env.DASHBOARD_STRICT_WALL_CLOCK) expect(Math.max(0, ...longTasks)).toBeLessThan(100);
    const total = (await db.sql.query('SELECT count(*)::int AS n FROM orders')).rows[0].n as number;
    await expect.poll(() => p.page.getByTestId('total-orders').textContent()).toBe(total.toLocaleString('en-US'));
    expect(p.errors).toEqual([]);
  });
});
