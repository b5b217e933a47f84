import type { BrowserContextOptions } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { useBrowser, useService } from '../helpers/fixtures.js';
import { http } from '../helpers/service.js';
import { type DashboardPage, openDashboard } from './page.js';

/** The last of issue 14's "what operators expect next": one currency, table density, notes in the table. */
const { svc } = useService({ CURRENCY: 'EUR' }, { emptyEachTest: true });
const web = useBrowser({ contextEachTest: false });

const DESKTOP = { viewport: { width: 1440, height: 900 } };

async function open(options: BrowserContextOptions = {}): Promise<DashboardPage> {
  return web.watch(await openDashboard(await web.newContext({ locale: 'en-US', ...options }), svc.url));
}

async function create(fields: Record<string, unknown>): Promise<number> {
  return (await http(svc.url, 'POST', '/orders', { product_name: 'Thing', total_cents: 1000, ...fields })).body.id as number;
}

describe('one configurable currency', () => {
  it('shows every amount in the server’s CURRENCY (EUR) and names it in the money input', async () => {
    expect((await http(svc.url, 'GET', '/me')).body.currency).toBe('EUR');
    const id = await create({ customer_name: 'Euro Eva', total_cents: 123450 });
    const p = await open(DESKTOP);
    await expect.poll(() => p.row(id).locator('td[data-label="Total"]').textContent()).toBe('€1,234.50');
    const summary = p.page.getByRole('region', { name: 'Summary' });
    await expect.poll(() => summary.textContent()).toContain('Revenue €1,234.50');
    expect(await summary.textContent()).not.toContain('$');
    await p.page.getByRole('button', { name: `Edit order #${id}` }).click();
    const dialog = p.page.getByRole('dialog', { name: `Edit order #${id}` });
    expect(await dialog.getByLabel('Total (EUR)', { exact: true }).inputValue()).toBe('1234.50');
  });
});
