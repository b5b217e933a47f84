import { describe, expect, it } from 'vitest';
import { useBrowser, useService } from '../helpers/fixtures.js';
import { startService } from '../helpers/service.js';
import { type DashboardPage, openDashboard } from './page.js';

const SETTINGS = { WS_HEARTBEAT_MS: '1000' };
const { db, svc } = useService(SETTINGS, { emptyEachTest: true });
const web = useBrowser();

/** What the table shows: id → [customer, status], failing if an id appears twice. */
async function shownOrders(p: DashboardPage): Promise<Map<number, string>> {
  const rows = await p.page
    .getByTestId('order-row')
    .evaluateAll((els) =>
      els.map(
        (el) =>
          [
            Number(el.getAttribute('data-id')),
            `${el.querySelector('td.customer')?.textContent}|${el.querySelector('[data-testid=status]')?.textContent?.toLowerCase()}`,
          ] as const,
      ),
    );
  const shown = new Map<number, string>();
  for (const [id, text] of rows) {
    if (shown.has(id)) throw new Error(`order #${id} is shown twice`);
    shown.set(id, text);
  }
  return shown;
}

async function dbOrders(): Promise<Map<number, string>> {
  const { rows } = await db.sql.query('SELECT id, customer_name, status FROM orders ORDER BY id');
  return new Map(rows.map((r) => [Number(r.id), `${r.customer_name}|${r.status}`]));
}

describe('service restart', () => {
  it('shows reconnecting, then live, with every change from the outage exactly once', async () => {
    await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('Before One', 'P'), ('Before Two', 'P')");
    const p = web.watch(await openDashboard(web.context, svc.url));
    await p.rowNamed('Before Two').waitFor();

    await svc.close();
    await p.state.filter({ hasText: /^Reconnecting/ }).waitFor({ timeout: 5000 });
    // Another program keeps writing while the service is down.
    await db.sql.query(
      "INSERT INTO orders (customer_name, product_name) VALUES ('During One', 'P'), ('During Two', 'P'), ('During Three', 'P')",
    );
    await db.sql.query("UPDATE orders SET status = 'shipped' WHERE customer_name = 'Before One'");
    await db.sql.query("DELETE FROM orders WHERE customer_name = 'Before Two'");
    await db.sql.query("UPDATE orders SET status = 'processing' WHERE customer_name = 'During Two'");

    Object.assign(svc, await startService(db.url, { ...SETTINGS, PORT: String(svc.port) }));
    await p.waitLive(15_000);
    const expected = await dbOrders();
    await expect.poll(() => shownOrders(p), { timeout: 5000 }).toEqual(expected);
    expect(expected.size).toBe(4);
    // The activity feed has each change of the outage once.
    const activity = (await p.page.getByTestId('activity').locator('li').allTextContents()).map((t) => t.replace(/ · .*$/, ''));
    for (const line of [
      'During One: created (pending)',
      'During Three: created (pending)',
      'Before One: pending → shipped',
      'Before Two: deleted',
      'During Two: pending → processing',
    ]) {
      expect(
        activity.filter((a) => a.endsWith(line)),
        line,
      ).toHaveLength(1);
    }
    await expect.poll(() => p.page.getByTestId('total-orders').textContent()).toBe('4');
    await expect.poll(() => p.page.getByTestId('count-shipped').textContent()).toBe('1');
  });
});

describe('offline', () => {
  it('queues a create while offline and sends it once when back', async () => {
    const p = web.watch(await openDashboard(web.context, svc.url));
    await web.context.setOffline(true);
    await p.state.filter({ hasText: /^Offline$/ }).waitFor();
    await p.createOrder({ customer: 'Queued Quinn', product: 'Parcel', total: '10' });
    await expect.poll(() => p.page.getByTestId('queue-count').textContent()).toBe('1 queued');
    expect((await dbOrders()).size).toBe(0);

    await web.context.setOffline(false);
    await p.waitLive();
    await p.rowNamed('Queued Quinn').waitFor();
    await p.page.getByTestId('queue-count').waitFor({ state: 'detached' });
    expect([...(await dbOrders()).values()]).toEqual(['Queued Quinn|pending']);
    expect(await p.rowNamed('Queued Quinn').count()).toBe(1);
  });

  it('keeps a queued create across a reload and lands it once, even when the first answer was lost', async () => {
    const p = web.watch(await openDashboard(web.context, svc.url));
    await web.context.setOffline(true);
    await p.state.filter({ hasText: /^Offline$/ }).waitFor();
    await p.createOrder({ customer: 'Reload Rita', product: 'Parcel' });
    await expect.poll(() => p.page.getByTestId('queue-count').textContent()).toBe('1 queued');

    // Back online, the create reaches the server but its answer is lost on the way back.
    let lost = 0;
    await p.page.route('**/orders', async (route) => {
      if (route.request().method() !== 'POST') return route.continue();
      await route.fetch();
      lost++;
      await route.abort('connectionreset');
    });
    await web.context.setOffline(false);
    await expect.poll(() => lost).toBeGreaterThan(0);
    expect((await dbOrders()).size).toBe(1);
    expect(await p.page.getByTestId('queue-count').textContent()).toBe('1 queued');

    await p.page.unrouteAll({ behavior: 'wait' });
    await p.page.reload();
    await p.waitLive();
    await p.page.getByTestId('queue-count').waitFor({ state: 'detached' });
    await p.rowNamed('Reload Rita').waitFor();
    expect([...(await dbOrders()).values()]).toEqual(['Reload Rita|pending']);
    await expect.poll(() => p.rowNamed('Reload Rita').count()).toBe(1);
  });
});
