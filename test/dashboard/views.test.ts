import { expect, it } from 'vitest';
import { useBrowser, useService } from '../helpers/fixtures.js';
import { http } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';
import { type DashboardPage, openDashboard } from './page.js';

/**
 * The dashboard subscribes to what it shows: a status chip or a search reloads the first page of that
 * view and re-subscribes the stream with the same filter; rows entering the view appear, rows leaving
 * it go, the "new orders" button counts only matching ones, and the cards are the server's totals
 * (GET /orders/stats + deltas), not sums of the rows the page holds.
 */
const { db, svc } = useService({ WS_HEARTBEAT_MS: '2000' });
const web = useBrowser();
let dash: DashboardPage | undefined;

async function serverCounts(): Promise<Record<string, number>> {
  const stats = (await http(svc.url, 'GET', '/orders/stats')).body as { by_status: Record<string, { count: number }> };
  return Object.fromEntries(['pending', 'processing', 'shipped'].map((s) => [s, stats.by_status[s]?.count ?? 0]));
}

async function pageCounts(d: DashboardPage): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of ['pending', 'processing', 'shipped'])
    out[s] = Number((await d.page.getByTestId(`count-${s}`).textContent())?.replace(/\D/g, ''));
  return out;
}

it('re-subscribes on a status chip: rows enter and leave, the banner counts only matching ones, the cards stay the server’s', async () => {
  const { rows } = await db.sql.query<{ id: string }>(
    `INSERT INTO orders (customer_name, product_name, status, total_cents) VALUES
       ('Ada', 'Laptop', 'pending', 100), ('Bob', 'Desk', 'processing', 200), ('Cy', 'Lamp', 'shipped', 300) RETURNING id`,
  );
  const [ada, bob, cy] = rows.map((r) => Number(r.id)) as [number, number, number];
  const sockets: string[] = [];
  dash = web.watch(await openDashboard(web.context, svc.url));
  dash.page.on('websocket', (ws) => sockets.push(ws.url()));
  await dash.row(cy).waitFor();

  await dash.page.locator('label.chip', { hasText: 'Processing' }).click();
  await dash.row(ada).waitFor({ state: 'detached' });
  await dash.row(cy).waitFor({ state: 'detached' });
  await dash.row(bob).waitFor();
  await waitFor(() => sockets.some((u) => u.includes('status=processing') && u.includes('stats=1')), {
    message: 'the stream re-subscribed with the filter',
  });
  await dash.waitLive();

  // Ada enters the view, Bob leaves it: both shown at once (the page is at the top, but a filter is on,
  // so a new id would wait behind the button; these are not new ids).
  await db.sql.query("UPDATE orders SET status = 'processing' WHERE id = $1", [ada]);
  await db.sql.query("UPDATE orders SET status = 'shipped' WHERE id = $1", [bob]);
  await dash.row(bob).waitFor({ state: 'detached' });
  await expect.poll(async () => dash?.row(ada).count(), { timeout: 10_000 }).toBe(1);

  // New orders: only the processing one is announced.
  await db.sql.query(
    "INSERT INTO orders (customer_name, product_name, status) VALUES ('New', 'One', 'processing'), ('Other', 'Two', 'pending')",
  );
  await expect.poll(async () => dash?.page.getByTestId('new-orders').textContent(), { timeout: 10_000 }).toMatch(/^1 new order/);

  // The cards count every order, whatever the filter, exactly as the server does.
  await expect
    .poll(async () => JSON.stringify(await pageCounts(dash as DashboardPage)), { timeout: 10_000 })
    .toBe(JSON.stringify(await serverCounts()));
});

it('re-subscribes on a search, and keeps the cards exact under writes', async () => {
  await db.sql.query(
    "INSERT INTO orders (customer_name, product_name, status) SELECT 'Zed ' || g, 'Gadget', 'pending' FROM generate_series(1, 20) g",
  );
  dash = web.watch(await openDashboard(web.context, svc.url));
  await dash.page.getByPlaceholder('Search customer or product').fill('LAPTOP');
  await expect.poll(async () => dash?.page.getByTestId('order-row').count(), { timeout: 10_000 }).toBe(1);
  await dash.waitLive();
  for (let i = 0; i < 30; i++) {
    await db.sql.query(
      "UPDATE orders SET status = CASE status WHEN 'pending' THEN 'processing' ELSE 'shipped' END, total_cents = total_cents + 7 WHERE id = (SELECT id FROM orders WHERE status <> 'shipped' ORDER BY random() LIMIT 1)",
    );
  }
  await expect
    .poll(async () => JSON.stringify(await pageCounts(dash as DashboardPage)), { timeout: 10_000 })
    .toBe(JSON.stringify(await serverCounts()));
  await expect.poll(async () => dash?.page.getByTestId('order-row').count(), { timeout: 10_000 }).toBe(1);
});
