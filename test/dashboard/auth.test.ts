import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { generateToken, hashToken } from '../../src/auth/tokens.js';
import { useBrowser, useService } from '../helpers/fixtures.js';
import { sleep } from '../helpers/wait.js';
import { type DashboardPage, openPage, signIn } from './page.js';

/**
 * The dashboard against a server that requires tokens: the sign-in screen, a page that offers only what
 * the role may do (and a server that refuses the rest anyway), revocation, and an offline queue that
 * never sends one person's actions with another's token.
 */
const tokens = {
  viewer: generateToken(),
  operator: generateToken(),
  nightShift: generateToken(),
};

const SESSION_KEY = 'orders-dashboard.session.v1';
/** Every control that changes an order, found in the DOM whether visible or not. */
const EDIT_CONTROLS = 'button.new-order, [aria-label*="change status of order"], [aria-label^="Edit order"], td.row-actions, dialog';
const DELETE_CONTROLS = '[aria-label^="Delete order"]';

// The cache off, so a revoked token is refused at once (the socket sweep then runs every second).
const { db, svc } = useService(
  { AUTH_CACHE_MS: '0', WS_HEARTBEAT_MS: '2000' },
  {
    emptyEachTest: true,
    beforeStart: async () => {
      await addToken('Vera (viewer)', 'viewer', tokens.viewer);
      await addToken('Otto (operator)', 'operator', tokens.operator);
      await addToken('Night shift', 'operator', tokens.nightShift);
    },
  },
);
const web = useBrowser();
const { browser } = web;

async function addToken(
  name: string,
  role: 'viewer' | 'operator' | 'admin',
  token = generateToken(),
): Promise<{ id: number; token: string }> {
  const { rows } = await db.sql.query('INSERT INTO api_tokens (name, role, token_hash) VALUES ($1, $2, $3) RETURNING id', [
    name,
    role,
    hashToken(token),
  ]);
  return { id: Number(rows[0].id), token };
}

async function insertOrder(customer: string): Promise<number> {
  const { rows } = await db.sql.query("INSERT INTO orders (customer_name, product_name) VALUES ($1, 'Widget') RETURNING id", [customer]);
  return Number(rows[0].id);
}

async function dbOrders(): Promise<{ id: number; customer_name: string; status: string }[]> {
  return (await db.sql.query('SELECT id::int AS id, customer_name, status FROM orders ORDER BY id')).rows;
}

async function open(): Promise<DashboardPage> {
  const p = web.watch(await openPage(web.context, svc.url));
  await p.page.getByTestId('sign-in').waitFor();
  return p;
}

async function openSignedIn(token: string, options: { remember?: boolean } = {}): Promise<DashboardPage> {
  const p = await open();
  await signIn(p.page, token, options);
  await p.waitLive();
  return p;
}

const stored = (page: Page) =>
  page.evaluate((key) => {
    const g = globalThis as any;
    return { tab: g.sessionStorage.getItem(key) !== null, device: g.localStorage.getItem(key) !== null };
  }, SESSION_KEY);

describe('sign-in', () => {
  it('asks for a token, refuses a wrong one, is keyboard usable and passes axe', async () => {
    const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    const audit = async (page: Page) => {
      // Through the DevTools protocol, so the page's CSP does not apply to the audit script.
      await page.evaluate(axeSource);
      return page.evaluate(async () => {
        const g = globalThis as any;
        const result = await g.axe.run(g.document, { resultTypes: ['violations'] });
        return result.violations
          .filter((v: any) => v.impact === 'serious' || v.impact === 'critical')
          .map((v: any) => `${v.id}: ${v.help} (${v.nodes.map((n: any) => n.target.join(' ')).join(', ')})`);
      });
    };
    await insertOrder('Secret Customer');
    const { page } = await open();
    // No order data, and no table to put it in, before signing in.
    expect(await page.locator('table, [data-testid="order-row"]').count()).toBe(0);
    expect(await page.textContent('body')).not.toContain('Secret Customer');
    expect(await audit(page)).toEqual([]);

    // The field has focus: type and press Enter.
    await expect.poll(() => page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('sign-in-token');
    await page.keyboard.type('ord_this-is-not-a-real-token');
    await page.keyboard.press('Enter');
    const error = page.getByTestId('sign-in-error');
    await error.waitFor();
    expect(await error.textContent()).toContain('not accepted');
    expect(await page.getByLabel('Access token').getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByLabel('Access token').getAttribute('aria-describedby')).toBe('sign-in-error');
    expect(await page.locator('table').count()).toBe(0);
    expect(await stored(page)).toEqual({ tab: false, device: false });
    expect(await audit(page)).toEqual([]);

    // Something that cannot be a token is caught before it is sent.
    await signIn(page, 'two words');
    await expect.poll(() => error.textContent()).toContain('not an access token');

    const dark = await browser.newContext({ colorScheme: 'dark' });
    try {
      const darkPage = await dark.newPage();
      await darkPage.goto(svc.url);
      await darkPage.getByTestId('sign-in').waitFor();
      expect(await audit(darkPage)).toEqual([]);
    } finally {
      await dark.close();
    }
  });
});

describe('roles', () => {
  it('shows a viewer orders live with no edit controls, and the server refuses a forged delete', async () => {
    const id = await insertOrder('Viewer Visible');
    const p = await openSignedIn(tokens.viewer);
    await p.row(id).waitFor();
    expect(await p.page.getByTestId('identity').textContent()).toBe('Vera (viewer) · viewer');
    // Live: a change by another program arrives without a reload.
    const later = await insertOrder('Arrived Later');
    await p.row(later).waitFor({ timeout: 2000 });

    // Absent from the DOM, not merely hidden.
    expect(await p.page.locator(EDIT_CONTROLS).count()).toBe(0);
    expect(await p.page.locator(DELETE_CONTROLS).count()).toBe(0);
    expect(await p.page.locator('thead th').allTextContents()).not.toContain('Actions');
    // The token lives in this tab only.
    expect(await stored(p.page)).toEqual({ tab: true, device: false });

    const forged = await p.page.evaluate(async (token) => {
      const res = await fetch('/orders/1', { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, body: await res.json() };
    }, tokens.viewer);
    expect(forged.status).toBe(403);
    expect(forged.body).toMatchObject({ code: 'forbidden', role: 'viewer', required: 'admin' });
    expect((await dbOrders()).map((o) => o.id)).toEqual([id, later]);
  });

  it('lets an operator create and change status but offers no delete; remembers the device; signs out', async () => {
    const p = await openSignedIn(tokens.operator, { remember: true });
    await p.createOrder({ customer: 'Operator Olga', product: 'Crate', total: '12' });
    await p.rowNamed('Operator Olga').waitFor();
    const [order] = await dbOrders();
    expect(order).toMatchObject({ customer_name: 'Operator Olga', status: 'pending' });
    const id = order?.id as number;
    await p.moveStatus(id, 'processing');
    await expect.poll(async () => (await dbOrders())[0]?.status).toBe('processing');
    expect(await p.page.locator(`[aria-label="Edit order #${id}"]`).count()).toBe(1);
    expect(await p.page.locator(DELETE_CONTROLS).count()).toBe(0);

    // Remembered: a reload (and this device's other tabs) go straight to the dashboard.
    expect(await stored(p.page)).toEqual({ tab: false, device: true });
    await p.page.reload();
    await p.waitLive();
    expect(await p.page.getByTestId('identity').textContent()).toBe('Otto (operator) · operator');

    await p.page.getByRole('button', { name: 'Sign out' }).click();
    await p.page.getByTestId('sign-in').waitFor();
    expect(await p.page.locator('table').count()).toBe(0);
    expect(await stored(p.page)).toEqual({ tab: false, device: false });
  });

  it('rolls back a change refused with 403 and adapts when the role was lowered', async () => {
    const demoted = await addToken('Demoted', 'operator');
    const id = await insertOrder('Roll Back');
    const p = await openSignedIn(demoted.token);
    await p.page.getByLabel(`Change status of order #${id}`).waitFor();
    await db.sql.query("UPDATE api_tokens SET role = 'viewer' WHERE id = $1", [demoted.id]);
    await p.moveStatus(id, 'shipped');
    const alert = p.page.getByTestId('notices').getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/Could not change the status to shipped for #\d+; rolled back\..*viewer/);
    await expect.poll(() => p.status(id).textContent()).toBe('Pending');
    expect((await dbOrders())[0]?.status).toBe('pending');
    // The page asked who it is again and took the controls away.
    await expect.poll(() => p.page.locator(EDIT_CONTROLS).count()).toBe(0);
    expect(await p.page.getByTestId('identity').textContent()).toBe('Demoted · viewer');
  });
});

describe('revocation', () => {
  it('sends the page back to sign-in when its token is revoked', async () => {
    const revocable = await addToken('Soon gone', 'viewer');
    const id = await insertOrder('Before Revocation');
    const p = await openSignedIn(revocable.token);
    await p.row(id).waitFor();
    await db.sql.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1', [revocable.id]);
    const started = Date.now();
    const reason = p.page.getByTestId('sign-in-reason');
    // The socket sweep runs every second; the page then finds the 401 and signs out.
    await reason.waitFor({ timeout: 5000 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await reason.textContent()).toContain('revoked');
    expect(await p.page.locator('table, [data-testid="order-row"]').count()).toBe(0);
    expect(await stored(p.page)).toEqual({ tab: false, device: false });
    // Changes made now do not reach the signed-out page.
    await insertOrder('After Revocation');
    await sleep(300);
    expect(await p.page.textContent('body')).not.toContain('After Revocation');
  });
});

describe('offline queue', () => {
  it('holds actions queued by one sign-in until it returns, never sending them as someone else', async () => {
    const p = await openSignedIn(tokens.operator);
    await web.context.setOffline(true);
    await p.state.filter({ hasText: /^Offline$/ }).waitFor();
    await p.createOrder({ customer: 'Held Harry', product: 'Parcel' });
    await expect.poll(() => p.page.getByTestId('queue-count').textContent()).toBe('1 queued');
    await p.page.getByRole('button', { name: 'Sign out' }).click();
    await p.page.getByTestId('sign-in').waitFor();

    await web.context.setOffline(false);
    await signIn(p.page, tokens.nightShift);
    await p.waitLive();
    const held = p.page.getByTestId('held-queue');
    await held.waitFor({ timeout: 5000 });
    expect(await held.textContent()).toContain('1 action queued on this device under another sign-in is held');
    expect(await p.page.getByTestId('queue-count').count()).toBe(0);
    // Live and flushed: a wrongful replay would have happened by now.
    await sleep(500);
    expect(await dbOrders()).toEqual([]);

    await p.page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(p.page, tokens.operator);
    await p.waitLive();
    await p.rowNamed('Held Harry').waitFor();
    await p.page.getByTestId('held-queue').waitFor({ state: 'detached' });
    expect((await dbOrders()).map((o) => o.customer_name)).toEqual(['Held Harry']);
  });
});
