import { expect, it } from 'vitest';
import { useBrowser, useService } from '../helpers/fixtures.js';
import { openDashboard } from './page.js';

/**
 * Bulk status moves (issue 14): select rows (keyboard too, or all shown), confirm once, and see per
 * order what the server did: moved, refused by the transition rules, or refused because someone else
 * changed it after it was selected.
 */
const { db, svc } = useService({ WS_HEARTBEAT_MS: '2000' });
const chromium = useBrowser();

const statusOf = async (id: number) => (await db.sql.query('SELECT status FROM orders WHERE id = $1', [id])).rows[0].status as string;

it('moves the selected orders with one confirmation and says which moved and which were refused, and why', async () => {
  const { rows } = await db.sql.query<{ id: string }>(
    `INSERT INTO orders (customer_name, product_name, status) VALUES
       ('Bulk Anna', 'P', 'pending'), ('Bulk Ben', 'P', 'processing'), ('Bulk Cleo', 'P', 'delivered'), ('Bulk Dan', 'P', 'pending')
     RETURNING id`,
  );
  const [anna, ben, cleo, dan] = rows.map((r) => Number(r.id)) as [number, number, number, number];
  const p = chromium.watch(await openDashboard(chromium.context, svc.url));
  await p.row(dan).waitFor();

  // Select all shown, then drop one and take it back with the keyboard.
  await p.page.getByLabel('Select all orders shown').check();
  await expect.poll(() => p.page.getByTestId('bulk-bar').locator('.bulk-count').textContent()).toBe('4 selected');
  await p.page.getByLabel(`Select order #${anna}`).uncheck();
  await expect.poll(() => p.page.getByTestId('bulk-bar').locator('.bulk-count').textContent()).toBe('3 selected');
  await p.page.getByLabel(`Select order #${anna}`).focus();
  await p.page.keyboard.press('Space');
  await expect.poll(() => p.page.getByTestId('bulk-bar').locator('.bulk-count').textContent()).toBe('4 selected');

  await p.page.getByTestId('bulk-bar').getByLabel('Move selected to').selectOption('shipped');
  await p.page.getByTestId('bulk-bar').getByRole('button', { name: 'Move…' }).click();
  const dialog = p.page.getByRole('dialog', { name: 'Move 4 orders to Shipped?' });
  await dialog.waitFor();
  expect(await dialog.textContent()).toContain(`1 of them cannot move to Shipped from their status (#${cleo})`);
  // Someone else changes Dan while the operator reads the question.
  await db.sql.query("UPDATE orders SET notes = 'changed meanwhile' WHERE id = $1", [dan]);
  // Nothing has been sent yet.
  expect(await statusOf(anna)).toBe('pending');
  await dialog.getByRole('button', { name: 'Move 4 orders' }).click();

  const done = p.page.getByRole('dialog', { name: 'Moved 2 of 4 to Shipped' });
  await done.waitFor();
  expect(await done.getByTestId('bulk-summary').textContent()).toBe('2 moved, 2 not moved.');
  const line = (id: number) => done.locator(`li[data-id="${id}"]`).textContent();
  expect(await line(anna)).toBe(`#${anna} Bulk Anna: moved to Shipped`);
  expect(await line(ben)).toBe(`#${ben} Bulk Ben: moved to Shipped`);
  expect(await line(cleo)).toMatch(/refused: An order in status delivered is final/);
  expect(await line(dan)).toMatch(/refused: changed by someone else since you selected it \(it is now pending, version 2\); not moved/);
  expect([await statusOf(anna), await statusOf(ben), await statusOf(cleo), await statusOf(dan)]).toEqual([
    'shipped',
    'shipped',
    'delivered',
    'pending',
  ]);
  await done.getByRole('button', { name: 'Close' }).click();
  await p.page.getByTestId('bulk-bar').waitFor({ state: 'detached' });
  await expect.poll(() => p.status(anna).textContent()).toBe('Shipped');
});
