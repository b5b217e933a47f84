/**
 * `npm run screenshots`: the dashboard at phone width (360 px) and on a desktop, light and dark, saved as
 * docs/dashboard-<size>-<scheme>.png for the README, and an order's page with its timeline
 * (docs/order-page-<size>-light.png). Runs its own embedded PostgreSQL and service with a
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

const NOTES = [
  'Gift wrap, no invoice in the box',
  'Deliver to the back door; the front bell is broken, call on arrival',
  'Customer asked for the matte version if it is back in stock before Friday',
  'Fragile',
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
      `INSERT INTO orders (customer_name, product_name, quantity, total_cents, notes, status, created_at, updated_at)
       SELECT ($1::text[])[1 + g % 12], ($2::text[])[1 + g % 8], 1 + g % 4, 1999 + (g * 7919) % 240000,
              CASE WHEN g % 3 = 0 THEN ($3::text[])[1 + g % 4] ELSE '' END,
              (ARRAY['delivered','shipped','processing','pending','cancelled','delivered','shipped'])[1 + g % 7],
              now() - make_interval(mins => (g * 37) % 58, secs => g % 60), now() - make_interval(mins => (g * 13) % 50)
       FROM generate_series(1, 140) g`,
      [CUSTOMERS, PRODUCTS, NOTES],
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
            // One with notes, so the Notes column (cut with an ellipsis) shows at the top of the table.
            ...(i === 1 ? { notes: NOTES[i] } : {}),
          });
        }
        await http(svc.url, 'PATCH', `/orders/${3 + 7 * round++}`, { status: 'shipped' });
        // Attached, not visible: on a phone the Activity panel is behind its tab.
        await page.page.getByTestId('activity').locator('li').nth(3).waitFor({ state: 'attached' });
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
    // An order's page: one order taken through a few changes, so its timeline has something to tell.
    const created = await http(svc.url, 'POST', '/orders', {
      customer_name: 'Grace Hopper',
      product_name: 'Mechanical keyboard',
      quantity: 1,
      total_cents: 12900,
      notes: 'Deliver to the back door; the front bell is broken, call on arrival',
    });
    const id = created.body.id as number;
    await http(svc.url, 'PATCH', `/orders/${id}`, { quantity: 2, total_cents: 25800 });
    await http(svc.url, 'PATCH', `/orders/${id}`, { status: 'processing' });
    await http(svc.url, 'PATCH', `/orders/${id}`, { status: 'shipped', reason: 'Left the warehouse with the 14:00 truck' });
    for (const [size, viewport] of [
      ['desktop', { width: 1440, height: 1000 }],
      ['phone', { width: 390, height: 844 }],
    ] as const) {
      const context = await browser.newContext({ viewport, colorScheme: 'light', deviceScaleFactor: size === 'phone' ? 2 : 1 });
      const page = await openDashboard(context, `${svc.url}/#/orders/${id}`);
      await page.page.getByTestId('timeline-entry').nth(3).waitFor();
      const file = path.join(DOCS, `order-page-${size}-light.png`);
      await page.page.screenshot(size === 'phone' ? { path: file, fullPage: true } : { path: file });
      console.log(`saved ${path.relative(process.cwd(), file)}`);
      await context.close();
    }
  } finally {
    await svc?.close();
    await browser.close();
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
