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
