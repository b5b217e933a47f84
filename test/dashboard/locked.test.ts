import { expect, it } from 'vitest';
import { useBrowser, useService } from '../helpers/fixtures.js';
import { openDashboard } from './page.js';

/**
 * Another program holds an order (its transaction changed it and has not committed). The operator's move
 * of that order is answered 409 `locked` after DB_LOCK_TIMEOUT_MS: that is no refusal, so the page keeps
 * the move queued and pending, says why once, and sends it again until it goes through. Before, the same
 * wait ended in a 503 and the move was treated as an outage; a `locked` answer handled as a refusal would
 * drop it.
 */
const { db, svc } = useService({ DB_LOCK_TIMEOUT_MS: '300', WS_HEARTBEAT_MS: '2000' });
const chromium = useBrowser();

const statusOf = async (id: number) => (await db.sql.query('SELECT status FROM orders WHERE id = $1', [id])).rows[0].status as string;

it('keeps a move of an order another transaction holds queued, and sends it once the order is released', async () => {
  const { rows } = await db.sql.query<{ id: string }>(
    "INSERT INTO orders (customer_name, product_name) VALUES ('Held Hugo', 'Lock') RETURNING id",
  );
  const id = Number(rows[0]?.id);
  const p = chromium.watch(await openDashboard(chromium.context, svc.url));
  await p.row(id).waitFor();

  const other = await db.sql.connect();
  try {
    await other.query('BEGIN');
    await other.query("UPDATE orders SET notes = 'a long import' WHERE id = $1", [id]);
    await p.moveStatus(id, 'processing');
    await p.page.getByTestId('notices').getByText(`#${id} is held by another transaction`).waitFor();
    expect(await p.page.getByTestId('queue-count').textContent()).toBe('1 queued');
    // Pending, not rolled back: the row still shows the operator's move.
    expect(await p.status(id).textContent()).toMatch(/processing/i);
    // Sent again meanwhile (every 2 s, then longer) and still held: nothing changed yet.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await statusOf(id)).toBe('pending');
    // The other program gives up. (Had it committed, the move would meet a newer version: a 412 and the
    // offer to apply it again, as for any change made meanwhile.)
    await other.query('ROLLBACK');
  } finally {
    other.release();
  }
  await expect.poll(() => statusOf(id), { timeout: 15_000 }).toBe('processing');
  await p.page.getByTestId('queue-count').waitFor({ state: 'detached' });
  expect(await p.page.getByTestId('notices').textContent()).not.toMatch(/refused|rolled back/i);
});

it('sends a bulk move of a held order again until it is released, and reports one held throughout as not moved, never refused', async () => {
  const { rows } = await db.sql.query<{ id: string }>(
    "INSERT INTO orders (customer_name, product_name) VALUES ('Bulk Free', 'P'), ('Bulk Briefly', 'P'), ('Bulk Held', 'P') RETURNING id",
  );
  const [free, briefly, held] = rows.map((r) => Number(r.id)) as [number, number, number];
  const p = chromium.watch(await openDashboard(chromium.context, svc.url));
  await p.row(held).waitFor();
  for (const id of [free, briefly, held]) await p.page.getByLabel(`Select order #${id}`).check();
  await expect.poll(() => p.page.getByTestId('bulk-bar').locator('.bulk-count').textContent()).toBe('3 selected');

  const hold = async (id: number) => {
    const c = await db.sql.connect();
    await c.query('BEGIN');
    await c.query("UPDATE orders SET notes = 'a long import' WHERE id = $1", [id]);
    return c;
  };
  const shortHold = await hold(briefly);
  const longHold = await hold(held);
  try {
    await p.page.getByTestId('bulk-bar').getByLabel('Move selected to').selectOption('processing');
    await p.page.getByTestId('bulk-bar').getByRole('button', { name: 'Move…' }).click();
    await p.page.getByRole('dialog', { name: 'Move 3 orders to Processing?' }).getByRole('button', { name: 'Move 3 orders' }).click();
    // The first answer for the held ones is `locked` (after DB_LOCK_TIMEOUT_MS); one program gives up soon after.
    await expect.poll(() => statusOf(free)).toBe('processing');
    await new Promise((r) => setTimeout(r, 800));
    await shortHold.query('ROLLBACK');
    const done = p.page.getByRole('dialog', { name: 'Moved 2 of 3 to Processing' });
    await done.waitFor({ timeout: 20_000 });
    const line = (id: number) => done.locator(`li[data-id="${id}"]`).textContent();
    expect(await line(free)).toBe(`#${free} Bulk Free: moved to Processing`);
    expect(await line(briefly)).toBe(`#${briefly} Bulk Briefly: moved to Processing`);
    expect(await line(held)).toBe(
      `#${held} Bulk Held: not moved: another transaction still holds it (a program changed it and has not committed yet); try again later`,
    );
    expect(await done.textContent()).not.toMatch(/refused/);
  } finally {
    await shortHold.query('ROLLBACK').catch(() => undefined);
    shortHold.release();
    await longHold.query('ROLLBACK');
    longHold.release();
  }
  expect([await statusOf(free), await statusOf(briefly), await statusOf(held)]).toEqual(['processing', 'processing', 'pending']);
});
