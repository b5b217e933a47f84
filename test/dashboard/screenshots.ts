/**
 * `npm run screenshots`: the dashboard at phone width (360 px) and on a desktop, light and dark, saved as
 * docs/dashboard-<size>-<scheme>.png for the README. Runs its own embedded PostgreSQL and service with a
 * little history, so the pictures show a working day rather than an empty page.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { ensureDashboardBuilt, launchBrowser } from '../helpers/browser.js';
import { http, startService } from '../helpers/service.js';
import { openDashboard } from './page.js';

const DOCS = path.resolve(import.meta.dirname, '../../docs');
const log = pino({ level: 'silent' });

const CUSTOMERS = [
  'Ada Lovelace',
  'Grace Hopper',
  'Alan Turing',
  'Katherine Johnson',
  'Linus Torvalds',
  'Margaret Hamilton',
  'Dennis Ritchie',
  'Barbara Liskov',
  'Edsger Dijkstra',
  'Frances Allen',
  'Ken Thompson',
  'Radia Perlman',
];
const PRODUCTS = [
  'Laptop',
  'Mechanical keyboard',
  '4K monitor',
  'USB-C dock',
  'Noise-cancelling headphones',
  'Standing desk',
  'Webcam',
  'Ergonomic chair',
];

async function main() {
  ensureDashboardBuilt();
  const dir = await mkdtemp(path.join(tmpdir(), 'orders-screens-'));
  const pg = await startEmbeddedPostgres({ dataDir: dir, port: 0, log });
  const browser = await launchBrowser();
  let svc: Awaited<ReturnType<typeof startService>> | undefined;
  try {
    const pool = new (await import('pg')).default.Pool({ connectionString: pg.url, max: 1 });
    await migrate(pool, log);
    // A spread of orders over the last hour, so the per-minute chart has a shape.
    await pool.query(
      `INSERT INTO orders (customer_name, product_name, quantity, total_cents, status, created_at, updated_at)
       SELECT ($1::text[])[1 + g % 12], ($2::text[])[1 + g % 8], 1 + g % 4, 1999 + (g * 7919) % 240000,
              (ARRAY['delivered','shipped','processing','pending','cancelled','delivered','shipped'])[1 + g % 7],
              now() - make_interval(mins => (g * 37) % 58, secs => g % 60), now() - make_interval(mins => (g * 13) % 50)
       FROM generate_series(1, 140) g`,
      [CUSTOMERS, PRODUCTS],
    );
    await pool.end();
    svc = await startService(pg.url);
    let round = 0;
    for (const [size, viewport] of [
      ['phone', { width: 360, height: 780 }],
      ['desktop', { width: 1440, height: 1000 }],
    ] as const) {
      for (const colorScheme of ['light', 'dark'] as const) {
        const context = await browser.newContext({ viewport, colorScheme, deviceScaleFactor: size === 'phone' ? 2 : 1 });
        const page = await openDashboard(context, svc.url);
        // A few live changes, so the activity feed and a flashing row show (orders 3, 10, 17… are pending).
        for (const i of [0, 1, 2]) {
          await http(svc.url, 'POST', '/orders', {
            customer_name: CUSTOMERS[(i * 5) % 12],
            product_name: PRODUCTS[i + 1],
            total_cents: 4999 + i * 1000,
          });
        }
        await http(svc.url, 'PATCH', `/orders/${3 + 7 * round++}`, { status: 'shipped' });
        await page.page.getByTestId('activity').locator('li').nth(3).waitFor();
        await page.page.waitForTimeout(300); // let the chart's bars settle
        const file = path.join(DOCS, `dashboard-${size}-${colorScheme}.png`);
        // On a phone, show the summary and the first order cards below it.
        await page.page.screenshot(
          size === 'phone' ? { path: file, fullPage: true, clip: { x: 0, y: 0, width: 360, height: 1900 } } : { path: file },
        );
        console.log(`saved ${path.relative(process.cwd(), file)}`);
        await context.close();
      }
    }
  } finally {
    await svc?.close();
    await browser.close();
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
