import type { Order } from '../../src/contract/protocol.ts';
import {
  comparePositions,
  encodePageToken,
  positionOf,
  type SortDirection,
  type SortKey,
  type SortPosition,
} from '../../src/contract/sort-order.ts';
import type { OrdersPage } from './api.ts';

/**
 * Which page of the view the table shows, and which live changes belong on it.
 *
 * A page is a stretch of the view's sort order: from its first row (open on the first page) to its
 * last (open on the last page). A row the stream brings (new, edited, entering the view) is shown when
 * its position falls in that stretch, in its sorted place; a row whose change moves it out of the
 * stretch leaves the page (it now belongs to another one). New orders landing on other pages are only
 * counted (the "N new" button). Positions come from contract/sort-order.ts, the same rule as the
 * server's SQL, so a row the page takes is a row the server would have put there.
 *
 * Paging is keyset: "Next" asks for the rows after the last one shown (a token of its position),
 * "Previous" goes back to the token the previous page was asked with. The offset ("101–200") is the
 * server's count of rows before the page when it loaded; the total is live (store.viewTotal).
 *
 * A first page taking every live insert would grow without end on a busy day; past `limit + SLACK`
 * rows its tail is dropped and "Next" starts after the new last row (a token the page writes itself).
 */
const SLACK = 50;

export class PageWindow {
  sort: SortKey = 'id';
  dir: SortDirection = 'desc';
  /** The tokens the pages so far were asked with (null: the first page); the last is the current page's. */
  private trail: (string | null)[] = [null];
  offset = 0;
  next: string | null = null;
  private first: SortPosition | null = null;
  private last: SortPosition | null = null;

  constructor(readonly limit: number) {}

  /** The token the current page was asked with (for the URL). */
  get token(): string | null {
    return this.trail[this.trail.length - 1] ?? null;
  }

  get hasPrevious(): boolean {
    return this.offset > 0 || this.trail.length > 1;
  }

  /** A new order or view: back to the first page (or to `token`, from a link). */
  reset(sort: SortKey, dir: SortDirection, token: string | null = null): void {
    this.sort = sort;
    this.dir = dir;
    this.trail = [token];
  }

  /** The token to ask for the next page with; remembered, so Previous can come back. */
  forward(): string | null {
    if (this.next === null) return null;
    this.trail.push(this.next);
    return this.next;
  }

  /** The token of the previous page (null: the first). */
  back(): string | null {
    if (this.trail.length > 1) this.trail.pop();
    else this.trail = [null];
    return this.token;
  }

  /** A page arrived: its stretch of the order. */
  loaded(page: OrdersPage): void {
    this.offset = page.offset;
    this.next = page.next;
    const head = page.orders[0];
    const tail = page.orders[page.orders.length - 1];
    this.first = page.offset === 0 || !head ? null : positionOf(head, this.sort);
    this.last = page.next === null || !tail ? null : positionOf(tail, this.sort);
  }

  compare = (a: Order, b: Order): number => comparePositions(this.sort, this.dir, positionOf(a, this.sort), positionOf(b, this.sort));

  /** Whether `order` sorts inside the page's stretch. */
  contains(order: Order): boolean {
    const at = positionOf(order, this.sort);
    if (this.first && comparePositions(this.sort, this.dir, at, this.first) < 0) return false;
    if (this.last && comparePositions(this.sort, this.dir, at, this.last) > 0) return false;
    return true;
  }

  /** Drops the tail of an overfull page from `orders`; returns the ids dropped. */
  trim(orders: Map<number, Order>): Order[] {
    if (orders.size <= this.limit + SLACK) return [];
    const sorted = [...orders.values()].sort(this.compare);
    const dropped = sorted.slice(this.limit);
    const tail = sorted[this.limit - 1] as Order;
    this.last = positionOf(tail, this.sort);
    this.next = encodePageToken(this.sort, this.dir, this.last);
    return dropped;
  }
}
