import { beforeAll, expect, it } from 'vitest';
import type { Change, Order } from '../../src/contract/protocol.js';

/**
 * Item 11 of issue 14: the dashboard's store held every order and tombstone the stream ever touched
 * (about 860,000 entries a day at 10 changes/s) and the table walked them all on every render. It now
 * holds the page's rows and counts the rest. Run in Node: the store needs only a frame scheduler.
 */
// The dashboard's modules are typechecked with the DOM (web/tsconfig.json), not with the server's
// settings this file is checked with: they are imported by a path TypeScript does not follow.
interface Store {
  orders: Map<number, Order>;
  keep: (o: Order) => boolean;
  elsewhere: number;
  viewTotal: number | null;
  putAll(orders: Order[]): void;
  setStats(stats: unknown): void;
  applyChanges(changes: Change[]): void;
  drop(orders: Order[]): void;
}
interface Window {
  next: string | null;
  reset(sort: string, dir: string): void;
  loaded(page: { orders: Order[]; cursor: string; total: number; offset: number; next: string | null }): void;
  contains(o: Order): boolean;
  trim(orders: Map<number, Order>): Order[];
}
let OrderStore: new () => Store;
let PageWindow: new (limit: number) => Window;
const web = (file: string) => import(/* @vite-ignore */ `../../web/src/${file}`);

beforeAll(async () => {
  const g = globalThis as Record<string, unknown>;
  g.document ??= { visibilityState: 'visible' };
  // Frames never come here: nothing renders, and no timer is left running.
  g.requestAnimationFrame ??= () => 1;
  ({ OrderStore } = await web('order-store.ts'));
  ({ PageWindow } = await web('page-window.ts'));
});

const at = '2026-12-01T10:00:00.000000Z';
function order(id: number, total: number, version = 1): Order {
  return {
    id,
    customer_name: `C${id}`,
    product_name: 'P',
    quantity: 1,
    total_cents: total,
    notes: '',
    status: 'pending',
    version,
    created_at: at,
    updated_at: at,
  };
}
const change = (op: Change['op'], o: Order, old: Order | null): Change => ({ op, order: o, old, at });

it('keeps one page of orders however many others change, and counts them', () => {
  const store = new OrderStore();
  const page = new PageWindow(50);
  page.reset('total_cents', 'desc');
  // Page 1 of a view sorted by total, largest first: totals 1,000,000 down to 951,000.
  const rows = Array.from({ length: 50 }, (_, i) => order(i + 1, 1_000_000 - i * 1000));
  page.loaded({ orders: rows, cursor: '', total: 50, offset: 0, next: 'page-2' });
  store.keep = (o) => page.contains(o);
  store.putAll(rows);
  store.setStats({ total_orders: 50, view_orders: 50, total_cents: 0n, by_status: {}, per_minute: [] });

  // A day's worth of traffic elsewhere in the view: 30,000 orders created, edited and deleted, all of
  // them sorting after this page.
  const n = 30_000;
  for (let i = 0; i < n; i++) {
    const id = 1000 + i;
    const created = order(id, i % 900_000);
    const edited = order(id, (i % 900_000) + 1, 2);
    store.applyChanges([change('insert', created, null), change('update', edited, created)]);
    if (i % 2 === 0) store.applyChanges([change('delete', order(id, edited.total_cents, 3), edited)]);
  }
  const inner = store as unknown as { tombstones: Map<number, number>; left: Map<number, number>; changedAt: Map<number, number> };
  expect(store.orders.size).toBe(50);
  expect(inner.tombstones.size).toBeLessThanOrEqual(2000);
  expect(inner.left.size).toBeLessThanOrEqual(2000);
  expect(inner.changedAt.size).toBeLessThanOrEqual(50);
  expect(store.elsewhere).toBe(n);
  expect(store.viewTotal).toBe(50 + n / 2);

  // A new order that sorts onto this page appears on it, in place; one edited off the page leaves it.
  store.applyChanges([change('insert', order(99_999, 990_500), null)]);
  expect(store.orders.has(99_999)).toBe(true);
  store.applyChanges([change('update', order(1, 10, 2), rows[0] as Order)]);
  expect(store.orders.has(1)).toBe(false);
  expect(store.orders.size).toBe(50);
});

it('trims a first page that takes every live insert back to its size', () => {
  const store = new OrderStore();
  const page = new PageWindow(50);
  page.reset('id', 'desc');
  const rows = Array.from({ length: 50 }, (_, i) => order(100 - i, 0));
  page.loaded({ orders: rows, cursor: '', total: 50, offset: 0, next: 'page-2' });
  store.keep = (o) => page.contains(o);
  store.putAll(rows);
  for (let id = 101; id < 5101; id++) {
    store.applyChanges([change('insert', order(id, 0), null)]);
    const dropped = page.trim(store.orders);
    if (dropped.length) store.drop(dropped);
  }
  expect(store.orders.size).toBeLessThanOrEqual(100);
  expect(Math.max(...store.orders.keys())).toBe(5100);
  expect(page.next).not.toBeNull();
});
