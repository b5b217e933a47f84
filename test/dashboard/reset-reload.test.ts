import type { Route } from 'playwright-core';
import { expect, it } from 'vitest';
import { pruneChanges } from '../../src/feed/retention.js';
import { useBrowser, useService } from '../helpers/fixtures.js';
import { openDashboard } from './page.js';

/**
 * Issue 14, item 10: a `reset` reloads the snapshot. When that reload fails, the page must keep what it
 * shows (not an emptied table) and retry the reload, not reconnect the stream with the expired cursor.
 */
const { db, svc } = useService({ WS_HEARTBEAT_MS: '1000', FEED_MEMORY_CHANGES: '0' });
const chromium = useBrowser();

it('keeps every order shown while the reload after a reset fails, and retries the reload', async () => {
  await db.sql.query("INSERT INTO orders (customer_name, product_name) SELECT 'Kept ' || i, 'P' FROM generate_series(1, 30) i");
  const { context } = chromium;
  const p = chromium.watch(await openDashboard(context, svc.url));
  await expect.poll(() => p.page.getByTestId('order-row').count()).toBe(30);

  // Offline, the log moves on and is pruned past the page's cursor (and no change is kept in memory):
  // its reconnect gets `reset`.
  await context.setOffline(true);
  await p.state.filter({ hasText: /^Offline$/ }).waitFor();
  await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('While Away', 'P')");
  await db.sql.query("UPDATE orders SET notes = 'changed while away' WHERE customer_name = 'Kept 1'");
  await pruneChanges(svc.service.db, { maxAgeHours: 0, maxRows: 1 });

  // The first reload after the reset fails; the second is held until the table has been looked at.
  let statsRequests = 0;
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const sockets: string[] = [];
  p.page.on('websocket', (ws) => sockets.push(ws.url()));
  await p.page.route('**/orders/stats', async (route: Route) => {
    statsRequests++;
    if (statsRequests === 1) return route.abort('connectionreset');
    if (statsRequests === 2) await held;
    return route.continue();
  });
  await context.setOffline(false);
  await expect.poll(() => statsRequests, { timeout: 15_000 }).toBe(2);
  // Between the failed reload and the next one, the page still shows what it had, and did not stream
  // from the expired cursor again: the one socket is the one that was reset.
  expect(await p.page.getByTestId('order-row').count()).toBe(30);
  expect(sockets).toHaveLength(1);
  release();
  await p.waitLive();
  await p.rowNamed('While Away').waitFor();
  await expect.poll(() => p.page.getByTestId('order-row').count()).toBe(31);
  await p.page.unrouteAll({ behavior: 'wait' });
});
