import { foldCase } from './fold.js';
import type { Order } from './protocol.js';
import type { OrderStatus } from './statuses.js';

/**
 * The orders' sort orders, defined once for the server's SQL (orders/list-sql.ts) and the dashboard,
 * which places live changes among the rows of a page by the same rule: a row the stream brings belongs
 * on the page shown exactly when its key falls between the page's first and last keys.
 *
 * Every order is total: ties are broken by id in the same direction, so a keyset page boundary
 * (key, id) is a unique position that stays meaningful while rows change around it. Names compare
 * folded the way search folds them (filter/fold.ts: only A–Z fold) and then by code point, which is
 * what `COLLATE "C"` does on the folded text in PostgreSQL (UTF-8 byte order is code point order), so
 * no database locale can make the two sides disagree. Statuses sort in lifecycle order.
 */
export const SORT_KEYS = ['id', 'customer_name', 'product_name', 'quantity', 'total_cents', 'status', 'created_at', 'updated_at'] as const;
export type SortKey = (typeof SORT_KEYS)[number];
export type SortDirection = 'asc' | 'desc';

export const LIFECYCLE: readonly OrderStatus[] = ['pending', 'processing', 'shipped', 'delivered', 'cancelled'];

export type KeyKind = 'number' | 'text' | 'status' | 'time';

export const KEY_KIND: Record<SortKey, KeyKind> = {
  id: 'number',
  customer_name: 'text',
  product_name: 'text',
  quantity: 'number',
  total_cents: 'number',
  status: 'status',
  created_at: 'time',
  updated_at: 'time',
};

/** The first click on a column: names and statuses A→Z (lifecycle order), numbers and times largest/newest first. */
export function firstDirection(key: SortKey): SortDirection {
  const kind = KEY_KIND[key];
  return kind === 'text' || kind === 'status' ? 'asc' : 'desc';
}

/** An order's place in the sort, as the page token carries it (a number, folded name, status or ISO time). */
export function sortValue(order: Pick<Order, SortKey>, key: SortKey): string | number {
  switch (KEY_KIND[key]) {
    case 'text':
      return foldCase(order[key] as string);
    default:
      return order[key];
  }
}

/** Code point order (what `COLLATE "C"` gives on UTF-8); JavaScript's `<` compares UTF-16 units. */
function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i) as number;
    const y = b.codePointAt(i) as number;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

/** Compares two sort values of `key` in ascending order. */
export function compareValues(key: SortKey, a: string | number, b: string | number): number {
  switch (KEY_KIND[key]) {
    case 'number':
      return (a as number) - (b as number);
    case 'status':
      return LIFECYCLE.indexOf(a as OrderStatus) - LIFECYCLE.indexOf(b as OrderStatus);
    case 'time':
      // Fixed-width ISO 8601 UTC with microseconds (order_json()): text order is time order.
      return a < b ? -1 : a > b ? 1 : 0;
    default:
      return compareCodePoints(a as string, b as string);
  }
}

/** A position in a sort: the key's value and the id that breaks ties. */
export interface SortPosition {
  value: string | number;
  id: number;
}

export function positionOf(order: Pick<Order, SortKey>, key: SortKey): SortPosition {
  return { value: sortValue(order, key), id: order.id };
}

/** Negative when `a` comes first in the sort (key, direction), ties broken by id the same way. */
export function comparePositions(key: SortKey, dir: SortDirection, a: SortPosition, b: SortPosition): number {
  const c = compareValues(key, a.value, b.value) || a.id - b.id;
  return dir === 'asc' ? c : -c;
}

/**
 * The `page` token of GET /orders: base64url of `[1, sort, dir, value, id]`, the position a page ends
 * at. Opaque to API clients (they follow the Link header); defined here, beside the orders it encodes,
 * because the dashboard makes one too when it trims a live page (web/src/page-window.ts). The server
 * decodes it as hostile input (orders/page-token.ts). Written without Buffer, so it runs in a browser.
 */
export function encodePageToken(sort: SortKey, dir: SortDirection, at: SortPosition): string {
  const bytes = new TextEncoder().encode(JSON.stringify([1, sort, dir, at.value, at.id]));
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
