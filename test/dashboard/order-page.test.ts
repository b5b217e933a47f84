import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import pg from 'pg';
import type { BrowserContext, BrowserContextOptions } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateToken, hashToken } from '../../src/auth/tokens.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { http, type RunningService, startService } from '../helpers/service.js';
import { type DashboardPage, openPage, signIn } from './page.js';

/**
 * The order page and its timeline (issue 14): reachable from the table, the Activity panel and its own
 * address (`#/orders/<id>`), telling who made each change (a token's name and role; another program's
 * database user and application), when (UTC on hover), what (field: old → new) and a cancel's reason.
 */
let db: TestDatabase;
let svc: RunningService;
let browser: TestBrowser;
const contexts: BrowserContext[] = [];
const pages: DashboardPage[] = [];
const operator = generateToken();
const viewer = generateToken();
let dbUser: string;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.sql.query('INSERT INTO api_tokens (name, role, token_hash) VALUES ($1, $2, $3), ($4, $5, $6)', [
    'packing station 3',
    'operator',
    hashToken(operator),
    'wall screen',
    'viewer',
    hashToken(viewer),
  ]);
  dbUser = (await db.sql.query('SELECT session_user AS u')).rows[0].u;
  svc = await startService(db.url, { AUTH_CACHE_MS: '0', WS_HEARTBEAT_MS: '2000' });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await svc?.close();
  await db?.drop();
});

afterEach(async () => {
  const errors = pages.flatMap((p) => p.errors);
  pages.length = 0;
  for (const c of contexts.splice(0)) await c.close();
  expect(errors).toEqual([]);
});

async function openAs(token: string, options: BrowserContextOptions = {}): Promise<DashboardPage> {
  const context = await browser.newContext(options);
  contexts.push(context);
  const p = await openPage(context, svc.url);
  pages.push(p);
  await signIn(p.page, token, { remember: true });
  await p.waitLive();
  return p;
}

async function importerWrites(id: number): Promise<void> {
  const importer = new pg.Client({ connectionString: db.url, application_name: 'nightly-import' });
  await importer.connect();
  try {
    await importer.query("UPDATE orders SET total_cents = 2500, notes = 'repriced' WHERE id = $1", [id]);
  } finally {
    await importer.end();
  }
}

const axeSource = () => readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

async function audit(p: DashboardPage): Promise<string[]> {
  // Through the DevTools protocol, so the page's CSP does not apply to the audit script.
  await p.page.evaluate(axeSource());
  return p.page.evaluate(async () => {
    const g = globalThis as any;
    const result = await g.axe.run(g.document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v: any) => v.impact === 'serious' || v.impact === 'critical')
      .map((v: any) => `${v.id}: ${v.help} (${v.nodes.map((n: any) => n.target.join(' ')).join(', ')})`);
  });
}

describe('the order page', () => {
  it('tells every change, who made it, when and why; from the table, by its address, after a reload', async () => {
    const created = await http(
      svc.url,
      'POST',
      '/orders',
      { customer_name: 'Timeline Tess', product_name: 'Kettle', total_cents: 1999 },
      { authorization: `Bearer ${operator}` },
    );
    const id = created.body.id as number;
    const p = await openAs(operator);
    await p.moveStatus(id, 'processing');
    await expect.poll(async () => (await db.sql.query('SELECT status FROM orders WHERE id = $1', [id])).rows[0].status).toBe('processing');
    await importerWrites(id);
    await p.moveStatus(id, 'cancelled', { reason: 'customer called' });
    await expect.poll(async () => (await db.sql.query('SELECT status FROM orders WHERE id = $1', [id])).rows[0].status).toBe('cancelled');

    await p
      .row(id)
      .getByRole('link', { name: `Open order #${id} and its timeline` })
      .click();
    await p.page.getByTestId('order-page').waitFor();
    expect(new URL(p.page.url()).hash).toBe(`#/orders/${id}`);
    const entries = p.page.getByTestId('timeline-entry');
    await expect.poll(() => entries.count()).toBe(4);
    const texts = (await entries.allTextContents()).map((t) => t.replace(/\s+/g, ' '));
    expect(texts[0]).toMatch(/^Changed by packing station 3 \(operator\) · .+ · version 4/);
    expect(texts[0]).toContain('Status: Processing → Cancelled');
    expect(texts[0]).toContain('Reason: customer called');
    expect(texts[1]).toContain(`Changed by database user ${dbUser}, app nightly-import`);
    expect(texts[1]).toContain('Total: $19.99 → $25.00');
    expect(texts[1]).toContain('Notes: (empty) → repriced');
    expect(texts[2]).toContain('Status: Pending → Processing');
    expect(texts[3]).toMatch(/^Created by packing station 3 \(operator\)/);
    expect(texts[3]).toContain('Customer: Timeline Tess');
    // The exact time in the page's local zone, and UTC on hover.
    const title = await entries.first().locator('time').getAttribute('title');
    expect(title).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$/);

    await p.page.reload();
    await p.waitLive();
    await expect.poll(() => p.page.getByTestId('timeline-entry').count()).toBe(4);
    await p.page.getByRole('link', { name: '← All orders' }).click();
    await p.row(id).waitFor();
    expect(await p.page.getByTestId('order-page').count()).toBe(0);
  });

  it('names the actor in the Activity panel, keeps its entries across a reload, and opens the order from it', async () => {
    const p = await openAs(operator);
    await p.createOrder({ customer: 'Activity Abe', product: 'Lamp' });
    await p.rowNamed('Activity Abe').waitFor();
    const id = Number(await p.rowNamed('Activity Abe').getAttribute('data-id'));
    await importerWrites(id);
    const activity = p.page.getByTestId('activity');
    await expect.poll(() => activity.textContent(), { timeout: 10_000 }).toContain('Activity Abe: edited total, notes');
    await expect
      .poll(() => activity.textContent(), { timeout: 10_000 })
      .toMatch(/Activity Abe: created \(pending\).*packing station 3 \(operator\)/);
    await expect.poll(() => activity.textContent(), { timeout: 10_000 }).toContain(`database user ${dbUser}, app nightly-import`);

    await p.page.reload();
    await p.waitLive();
    await expect
      .poll(() => activity.textContent(), { timeout: 10_000 })
      .toMatch(/Activity Abe: created \(pending\).*packing station 3 \(operator\)/);
    await activity.getByRole('link', { name: new RegExp(`^#${id} Activity Abe: created`) }).click();
    await expect.poll(() => p.page.getByTestId('timeline-entry').count()).toBe(2);
    expect(new URL(p.page.url()).hash).toBe(`#/orders/${id}`);
  });

  it('is readable on a phone, light and dark, with no serious axe violations; a viewer gets no actions', async () => {
    const id = (
      await http(
        svc.url,
        'POST',
        '/orders',
        { customer_name: 'Phone Pia', product_name: 'A rather long product name that has to wrap', notes: 'Leave at the door' },
        { authorization: `Bearer ${operator}` },
      )
    ).body.id as number;
    await importerWrites(id);
    for (const colorScheme of ['light', 'dark'] as const) {
      const p = await openAs(viewer, { colorScheme, viewport: { width: 390, height: 844 } });
      await p.page.goto(`${svc.url}/#/orders/${id}`);
      await p.waitLive();
      await expect.poll(() => p.page.getByTestId('timeline-entry').count()).toBe(2);
      expect(
        await p.page
          .getByTestId('order-page')
          .getByRole('button', { name: /Change status|Edit/ })
          .count(),
      ).toBe(0);
      const overflow = await p.page.evaluate(() => {
        const g = globalThis as any;
        return g.document.documentElement.scrollWidth - g.innerWidth;
      });
      expect(overflow).toBeLessThanOrEqual(0);
      expect(await audit(p)).toEqual([]);
      // Nor bulk controls in the list.
      await p.page.getByRole('link', { name: '← All orders' }).click();
      await p.row(id).waitFor();
      expect(await p.page.getByRole('checkbox', { name: /^Select / }).count()).toBe(0);
      if (process.env.SCREENSHOTS_DIR)
        await p.page.screenshot({ path: `${process.env.SCREENSHOTS_DIR}/order-phone-${colorScheme}.png`, fullPage: true });
    }
  });
});
