import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { BrowserContext } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { useBrowser, useService } from '../helpers/fixtures.js';
import { http } from '../helpers/service.js';
import { type DashboardPage, openDashboard } from './page.js';

const { db, svc } = useService({ WS_HEARTBEAT_MS: '2000' }, { emptyEachTest: true });
const web = useBrowser();
const { browser } = web;

async function open(ctx: BrowserContext = web.context): Promise<DashboardPage> {
  return web.watch(await openDashboard(ctx, svc.url));
}

async function dbOrders(where = 'true'): Promise<{ id: number; customer_name: string; status: string; version: number }[]> {
  const { rows } = await db.sql.query(`SELECT id, customer_name, status, version FROM orders WHERE ${where} ORDER BY id`);
  return rows;
}

describe('two dashboards', () => {
  it('see each other’s create, status change and delete within a second', async () => {
    const a = await open();
    const b = await open(await web.newContext());

    await a.createOrder({ customer: 'Ada Lovelace', product: 'Analytical Engine', total: '1234.50' });
    let started = Date.now();
    await b.rowNamed('Ada Lovelace').waitFor({ timeout: 1000 });
    expect(Date.now() - started).toBeLessThan(1000);
    const [order] = await dbOrders();
    expect(order).toMatchObject({ customer_name: 'Ada Lovelace', status: 'pending' });
    const id = order?.id as number;
    await expect.poll(() => b.row(id).textContent()).toContain('$1,234.50');

    await b.moveStatus(id, 'shipped');
    started = Date.now();
    await expect.poll(() => a.status(id).textContent(), { timeout: 1000, interval: 20 }).toBe('Shipped');
    expect(Date.now() - started).toBeLessThan(1000);
    expect((await dbOrders())[0]?.status).toBe('shipped');
    // The activity feed tells the story, from the stream.
    await expect.poll(() => a.page.getByTestId('activity').textContent()).toMatch(`#${id} Ada Lovelace: pending → shipped`);
    await expect.poll(() => a.page.getByTestId('count-shipped').textContent()).toBe('1');

    await a.page.getByRole('button', { name: `Delete order #${id}` }).click();
    await a.page.getByRole('dialog').getByRole('button', { name: 'Delete order' }).click();
    started = Date.now();
    await b.row(id).waitFor({ state: 'detached', timeout: 1000 });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await dbOrders()).toEqual([]);
    await expect.poll(() => b.page.getByTestId('total-orders').textContent()).toBe('0');
  });
});

describe('changes made outside the dashboard', () => {
  it('shows an order inserted and then updated by raw SQL', async () => {
    const a = await open();
    const { rows } = await db.sql.query(
      "INSERT INTO orders (customer_name, product_name, quantity, total_cents) VALUES ('Grace Hopper', 'Compiler', 2, 9900) RETURNING id",
    );
    const id = rows[0].id as number;
    await a.row(id).waitFor({ timeout: 2000 });
    await expect.poll(() => a.status(id).textContent()).toBe('Pending');
    await db.sql.query("UPDATE orders SET status = 'processing', quantity = 7 WHERE id = $1", [id]);
    await expect.poll(() => a.status(id).textContent()).toBe('Processing');
    expect(await a.row(id).locator('td[data-label="Qty"]').textContent()).toBe('7');
    await expect.poll(() => a.page.getByTestId('count-processing').textContent()).toBe('1');
    await expect.poll(() => a.page.getByTestId('count-pending').textContent()).toBe('0');
  });
});

describe('actions', () => {
  it('shows the API’s message under a missing field and creates nothing', async () => {
    const a = await open();
    await a.createOrder({ product: 'Widget' });
    const error = a.page.getByTestId('error-customer_name');
    await error.waitFor();
    expect(await error.textContent()).toBe('Customer is required');
    expect(await a.page.getByLabel('Customer', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    expect(await dbOrders()).toEqual([]);
    // Fixing it and submitting again works from the same form.
    await a.page.getByRole('dialog').getByLabel('Customer', { exact: true }).fill('Fixed Customer');
    await a.page.getByRole('dialog').getByRole('button', { name: 'Create order' }).click();
    await a.rowNamed('Fixed Customer').waitFor();
    expect(await dbOrders()).toHaveLength(1);
  });

  it('rolls a refused status change back visibly and offers to reapply on a 412', async () => {
    const created = await http(svc.url, 'POST', '/orders', { customer_name: 'Linus', product_name: 'Kernel' });
    const id = created.body.id as number;
    const a = await open();
    await a.row(id).waitFor();
    // Someone else cancels the order while our request is on its way: the server must refuse ours.
    let intercepted = false;
    await a.page.route(`**/orders/${id}`, async (route) => {
      if (route.request().method() !== 'PATCH' || intercepted) return route.continue();
      intercepted = true;
      await expect.poll(() => a.status(id).textContent()).toBe('Processing'); // optimistic
      await db.sql.query("UPDATE orders SET status = 'cancelled' WHERE id = $1", [id]);
      await route.continue();
    });
    await a.moveStatus(id, 'processing');
    const conflict = a.page.getByTestId('conflict');
    await conflict.waitFor();
    expect(await conflict.textContent()).toContain('It is now at version 2: Linus · Kernel · Cancelled');
    await expect.poll(() => a.status(id).textContent()).toBe('Cancelled');
    expect((await dbOrders())[0]?.status).toBe('cancelled');
    // Cancelled is final: reapplying would only be refused, so it is not offered, and it says why.
    expect(await conflict.getByTestId('conflict-blocked').textContent()).toBe(
      'It is now Cancelled: moving it to Processing is no longer possible.',
    );
    expect(await conflict.getByRole('button', { name: 'Reapply my change' }).count()).toBe(0);
    await conflict.getByRole('button', { name: 'Dismiss' }).click();
    await conflict.waitFor({ state: 'detached' });
    await expect.poll(() => a.status(id).textContent()).toBe('Cancelled');
    expect(await a.page.getByLabel(`Change status of order #${id}`).count()).toBe(0);
  });

  it('offers only the allowed next statuses and edits an order', async () => {
    const created = await http(svc.url, 'POST', '/orders', { customer_name: 'Barbara', product_name: 'CLU', status: 'shipped' });
    const id = created.body.id as number;
    const a = await open();
    const select = a.page.getByLabel(`Change status of order #${id}`);
    await select.waitFor();
    await select.click();
    expect(await a.page.getByRole('menu').getByRole('menuitem').allTextContents()).toEqual(['Delivered']);
    await a.page.keyboard.press('Escape');
    await a.page.getByRole('button', { name: `Edit order #${id}` }).click();
    const dialog = a.page.getByRole('dialog', { name: `Edit order #${id}` });
    await dialog.getByLabel('Product').fill('CLU 2');
    await dialog.getByRole('button', { name: 'Save changes' }).click();
    await expect.poll(() => a.row(id).locator('td[data-label="Product"]').textContent()).toBe('CLU 2');
    await expect
      .poll(async () => (await db.sql.query('SELECT product_name FROM orders WHERE id = $1', [id])).rows[0].product_name)
      .toBe('CLU 2');
  });
});

describe('safety', () => {
  const XSS = '<img src=x onerror=alert(1)>';

  it('renders an XSS customer name as text and runs no script', async () => {
    await http(svc.url, 'POST', '/orders', { customer_name: XSS, product_name: '<script>alert(2)</script>' });
    const a = await open();
    await a.createOrder({ customer: `${XSS} 2`, product: 'x' });
    await a.rowNamed(`${XSS} 2`).waitFor();
    const names = await a.page.locator('td.customer').allTextContents();
    expect(names).toEqual([`${XSS} 2`, XSS]);
    expect(await a.page.locator('tbody img, #app img').count()).toBe(0);
    expect(await a.page.getByTestId('activity').textContent()).toContain(`${XSS} 2: created (pending)`);
    expect(a.dialogs).toEqual([]);
  });

  it('has no serious or critical axe-core violations, light and dark', async () => {
    await http(svc.url, 'POST', '/orders', { customer_name: 'Axe Person', product_name: 'Audit', total_cents: 1999 });
    // One badge of every status, so every badge's contrast is checked.
    for (const status of ['processing', 'shipped', 'delivered', 'cancelled']) {
      await http(svc.url, 'POST', '/orders', { customer_name: `Axe ${status}`, product_name: 'Audit', status });
    }
    const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    for (const colorScheme of ['light', 'dark'] as const) {
      const ctx = await browser.newContext({ colorScheme });
      try {
        const a = await openDashboard(ctx, svc.url);
        await a.rowNamed('Axe Person').waitFor();
        // Through the DevTools protocol, so the page's CSP does not apply to the audit script.
        await a.page.evaluate(axeSource);
        const audit = async () =>
          a.page.evaluate(async () => {
            const g = globalThis as any;
            const result = await g.axe.run(g.document, { resultTypes: ['violations'] });
            return result.violations
              .filter((v: any) => v.impact === 'serious' || v.impact === 'critical')
              .map((v: any) => `${v.id}: ${v.help} (${v.nodes.map((n: any) => n.target.join(' ')).join(', ')})`);
          });
        expect(await audit()).toEqual([]);
        await a.createOrder({ product: 'Only a product' });
        await a.page.getByTestId('error-customer_name').waitFor();
        expect(await audit()).toEqual([]);
        expect(a.errors).toEqual([]);
      } finally {
        await ctx.close();
      }
    }
  });

  it('serves the page with a strict CSP, caches hashed assets, and 404s path traversal', async () => {
    const index = await fetch(`${svc.url}/`);
    expect(index.status).toBe(200);
    const csp = index.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain('connect-src');
    expect(csp).not.toContain('unsafe-inline');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    expect(html).toContain('<meta charset="utf-8">');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=/);
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1] as string;
    const js = await fetch(svc.url + asset);
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    for (const path of [
      '/..%2fpackage.json',
      '/assets/..%2f..%2fpackage.json',
      '/%2e%2e/%2e%2e/package.json',
      '/assets/../../package.json',
      '/web/src/main.tsx',
    ]) {
      const res = await fetch(svc.url + path);
      expect(res.status, path).toBe(404);
      expect(await res.text()).not.toContain('orders-realtime');
    }
    // The API is unaffected by the static routes.
    expect((await fetch(`${svc.url}/orders`)).status).toBe(200);
  });
});
