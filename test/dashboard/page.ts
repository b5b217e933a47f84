import type { BrowserContext, Locator, Page } from 'playwright-core';
import { collectPageErrors } from '../helpers/browser.js';

/** What a person looks at on the dashboard, as locators. */
export interface DashboardPage {
  page: Page;
  errors: string[];
  dialogs: string[];
  state: Locator;
  row(id: number): Locator;
  rowNamed(customer: string): Locator;
  status(id: number): Locator;
  waitLive(timeout?: number): Promise<void>;
  createOrder(fields: { customer?: string; product?: string; total?: string }): Promise<void>;
  /** Moves an order to a status with the row's "Move to…" menu (a cancel is then confirmed, with `reason`). */
  moveStatus(id: number, to: string, options?: { reason?: string }): Promise<void>;
}

export async function openDashboard(context: BrowserContext, url: string): Promise<DashboardPage> {
  const dash = await openPage(context, url);
  await dash.waitLive();
  return dash;
}

/** The page as loaded, before it is live: on a server that requires a token, the sign-in screen. */
export async function openPage(context: BrowserContext, url: string): Promise<DashboardPage> {
  const page = await context.newPage();
  const errors = collectPageErrors(page);
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.goto(url);
  const state = page.getByTestId('connection-state');
  const dash: DashboardPage = {
    page,
    errors,
    dialogs,
    state,
    row: (id) => page.locator(`tr[data-id="${id}"]`),
    rowNamed: (customer) => page.getByTestId('order-row').filter({ has: page.locator('td.customer', { hasText: customer }) }),
    status: (id) => page.locator(`tr[data-id="${id}"] [data-testid="status"]`),
    async waitLive(timeout = 20_000) {
      try {
        await page
          .getByTestId('connection-state')
          .filter({ hasText: /^Live$/ })
          .waitFor({ timeout });
      } catch (err) {
        // Say what the page showed instead, so a failure on a loaded runner can be told from a bug.
        const shown = await page
          .locator('body')
          .first()
          .textContent()
          .catch(() => '(no body)');
        throw new Error(`not live within ${timeout} ms; the page showed: ${(shown ?? '').replace(/\s+/g, ' ').slice(0, 300)}`, {
          cause: err,
        });
      }
    },
    async createOrder({ customer, product, total }) {
      await page.getByRole('button', { name: 'New order' }).click();
      const dialog = page.getByRole('dialog', { name: 'New order' });
      if (customer !== undefined) await dialog.getByLabel('Customer', { exact: true }).fill(customer);
      if (product !== undefined) await dialog.getByLabel('Product', { exact: true }).fill(product);
      if (total !== undefined) await dialog.getByLabel(/^Total \(/).fill(total);
      await dialog.getByRole('button', { name: /Create order|Queue order/ }).click();
    },
    async moveStatus(id, to, options = {}) {
      const control = page.getByLabel(`Change status of order #${id}`);
      if ((await control.evaluate((el) => el.tagName)) === 'SELECT') {
        await control.selectOption(to);
        return;
      }
      await control.click();
      await page
        .getByRole('menu')
        .getByRole('menuitem', { name: new RegExp(`^${to}$`, 'i') })
        .click();
      if (to !== 'cancelled') return;
      const confirm = page.getByRole('dialog', { name: `Cancel order #${id}?` });
      if (options.reason !== undefined) await confirm.getByLabel('Reason (optional)').fill(options.reason);
      await confirm.getByRole('button', { name: 'Cancel order' }).click();
    },
  };
  return dash;
}

/** The sign-in screen: fills in the token (and "remember") and submits. */
export async function signIn(page: Page, token: string, options: { remember?: boolean } = {}): Promise<void> {
  const form = page.getByTestId('sign-in');
  await form.getByLabel('Access token').fill(token);
  if (options.remember) await form.getByLabel('Remember on this device').check();
  await form.getByRole('button', { name: 'Sign in' }).click();
}
