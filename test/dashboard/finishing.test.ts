import type { BrowserContextOptions } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { useBrowser, useService } from '../helpers/fixtures.js';
import { http } from '../helpers/service.js';
import { type DashboardPage, openDashboard } from './page.js';

/** The last of issue 14's "what operators expect next": one currency, table density, notes in the table. */
const { svc } = useService({ CURRENCY: 'EUR' }, { emptyEachTest: true });
const web = useBrowser({ contextEachTest: false });

const DESKTOP = { viewport: { width: 1440, height: 900 } };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };

async function open(options: BrowserContextOptions = {}): Promise<DashboardPage> {
  return web.watch(await openDashboard(await web.newContext({ locale: 'en-US', ...options }), svc.url));
}

async function create(fields: Record<string, unknown>): Promise<number> {
  return (await http(svc.url, 'POST', '/orders', { product_name: 'Thing', total_cents: 1000, ...fields })).body.id as number;
}

/** How far the page is wider than the window (> 0: something spills sideways). */
function overflow(p: DashboardPage): Promise<number> {
  return p.page.evaluate(() => {
    const g = globalThis as any;
    return g.document.documentElement.scrollWidth - g.innerWidth;
  });
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

describe('table density', () => {
  it.each([
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ])('switches to compact rows from the keyboard, says which is on, and keeps it after a reload (%s)', async (_, size) => {
    const id = await create({ customer_name: 'Dense Dora' });
    const p = await open(size);
    const group = p.page.getByRole('group', { name: 'Row density' });
    const comfortable = group.getByRole('button', { name: 'Comfortable' });
    const compact = group.getByRole('button', { name: 'Compact' });
    expect(await comfortable.getAttribute('aria-pressed')).toBe('true');
    expect(await compact.getAttribute('aria-pressed')).toBe('false');
    await p.row(id).waitFor();
    const before = (await p.row(id).boundingBox())?.height ?? 0;
    await compact.focus();
    await p.page.keyboard.press('Space');
    await expect.poll(() => compact.getAttribute('aria-pressed')).toBe('true');
    expect(await comfortable.getAttribute('aria-pressed')).toBe('false');
    const after = (await p.row(id).boundingBox())?.height ?? 0;
    expect(after).toBeLessThan(before * 0.85);
    expect(await overflow(p)).toBeLessThanOrEqual(0);

    await p.page.reload();
    await p.waitLive();
    await p.row(id).waitFor();
    expect(await compact.getAttribute('aria-pressed')).toBe('true');
    expect((await p.row(id).boundingBox())?.height).toBeCloseTo(after, 0);
    await comfortable.focus();
    await p.page.keyboard.press('Enter');
    await expect.poll(async () => (await p.row(id).boundingBox())?.height).toBeCloseTo(before, 0);
  });
});

describe('notes in the table', () => {
  const note = `Leave it with the neighbour at number 12 if nobody answers; ${'call first, the bell is broken. '.repeat(8)}Thanks!`;

  it.each([
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ])('shows an order’s notes on one line cut with an ellipsis, the whole text on hover and on its page (%s)', async (_, size) => {
    const id = await create({ customer_name: 'Noted Nora', notes: note });
    const plain = await create({ customer_name: 'Plain Paul' });
    const p = await open(size);
    const cell = p.row(id).locator('td[data-label="Notes"]');
    await cell.waitFor();
    expect(await cell.getAttribute('title')).toBe(note);
    const text = cell.locator('.notes-text');
    expect(await text.textContent()).toBe(note);
    const cut = await text.evaluate((el) => {
      const style = (globalThis as any).getComputedStyle(el);
      return {
        clipped: el.scrollWidth > el.clientWidth,
        ellipsis: style.textOverflow,
        lines: Math.round(el.getBoundingClientRect().height / Number.parseFloat(style.lineHeight)),
      };
    });
    expect(cut).toEqual({ clipped: true, ellipsis: 'ellipsis', lines: 1 });
    expect(await overflow(p)).toBeLessThanOrEqual(0);
    // The note costs the row no more than one line.
    const noted = (await p.row(id).boundingBox())?.height ?? 0;
    const without = (await p.row(plain).boundingBox())?.height ?? 0;
    expect(noted - without).toBeLessThan(size === PHONE ? 30 : 2);
    if (size === DESKTOP) {
      expect(await p.page.getByRole('columnheader', { name: 'Notes' }).isVisible()).toBe(true);
      // The row's actions stay inside the table's panel (the table has fixed column widths).
      const panel = await p.page.locator('section.orders').boundingBox();
      const del = await p.page.getByRole('button', { name: `Delete order #${id}` }).boundingBox();
      expect((del?.x ?? 0) + (del?.width ?? 0)).toBeLessThanOrEqual((panel?.x ?? 0) + (panel?.width ?? 0));
    } else expect(await p.row(plain).locator('td[data-label="Notes"]').isVisible()).toBe(false);

    await p.page.getByRole('link', { name: `Open order #${id} and its timeline` }).click();
    const page = p.page.getByTestId('order-page');
    await page.waitFor();
    await expect.poll(() => page.textContent()).toContain(note);
    expect(await overflow(p)).toBeLessThanOrEqual(0);
  });
});
