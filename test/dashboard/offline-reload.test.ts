import { expect, it } from 'vitest';
import { useBrowser, useService } from '../helpers/fixtures.js';
import { http, startService } from '../helpers/service.js';
import { openDashboard } from './page.js';

/**
 * A reload while the network is gone (issue 14, item 9): the service worker serves the page, which shows
 * its queued actions and the last data it saw, marked stale; nothing from the API is ever served from a
 * cache. The network is cut for the browser and the service is stopped too, so nothing can answer.
 */
const { db, svc } = useService({ WS_HEARTBEAT_MS: '1000' });
const web = useBrowser();

it('opens after a reload without network, with the queue and the last data marked stale, then catches up', async () => {
  const kept = (await http(svc.url, 'POST', '/orders', { customer_name: 'Shelly Shell', product_name: 'Cache' })).body.id as number;
  const gone = (await http(svc.url, 'POST', '/orders', { customer_name: 'Gone Gary', product_name: 'Cache' })).body.id as number;
  const { context } = web;
  const p = web.watch(await openDashboard(context, svc.url));
  await p.row(gone).waitFor();
  // The worker controls the page, and the page has written down what it saw.
  await expect
    .poll(
      () =>
        p.page.evaluate(async () => {
          const { serviceWorker } = (globalThis as any).navigator;
          return Boolean(await serviceWorker.ready) && serviceWorker.controller !== null;
        }),
      {
        timeout: 15_000,
      },
    )
    .toBe(true);
  await expect
    .poll(() => p.page.evaluate(() => (globalThis as any).sessionStorage.getItem('orders-dashboard.last-data.v1') ?? ''), {
      timeout: 15_000,
    })
    .toContain('Gone Gary');

  await context.setOffline(true);
  await p.state.filter({ hasText: /^Offline$/ }).waitFor();
  await p.createOrder({ customer: 'Queued Quentin', product: 'Parcel' });
  await expect.poll(() => p.page.getByTestId('queue-count').textContent()).toBe('1 queued');
  await svc.close();
  // While nobody can see it, the order shown is deleted.
  await db.sql.query('DELETE FROM orders WHERE id = $1', [gone]);

  await p.page.reload();
  await p.state.filter({ hasText: /^(Offline|Reconnecting)/ }).waitFor({ timeout: 15_000 });
  await p.row(kept).waitFor();
  expect(await p.page.getByTestId('stale').textContent()).toMatch(/^Showing data from .*: not current$/);
  expect(await p.page.getByTestId('queue-count').textContent()).toBe('1 queued');
  expect(await p.page.getByTestId('total-orders').textContent()).toBe('2');

  // Nothing the API answered was kept by the worker.
  const cached = await p.page.evaluate(async () => {
    const { caches } = globalThis as any;
    const urls: string[] = [];
    for (const name of await caches.keys()) for (const r of await (await caches.open(name)).keys()) urls.push(new URL(r.url).pathname);
    return urls;
  });
  expect(cached).toContain('/');
  expect(cached.filter((u) => u !== '/' && !u.startsWith('/assets/'))).toEqual([]);

  Object.assign(svc, await startService(db.url, { WS_HEARTBEAT_MS: '1000', PORT: String(svc.port) }));
  await context.setOffline(false);
  await p.waitLive(20_000);
  await p.rowNamed('Queued Quentin').waitFor();
  await p.page.getByTestId('stale').waitFor({ state: 'detached' });
  // The fresh snapshot replaced the old data: the order deleted meanwhile is gone.
  await p.row(gone).waitFor({ state: 'detached' });
  await expect.poll(() => p.page.getByTestId('total-orders').textContent()).toBe('2');
  const { rows } = await db.sql.query('SELECT customer_name FROM orders ORDER BY id');
  expect(rows.map((r) => r.customer_name)).toEqual(['Shelly Shell', 'Queued Quentin']);
});
