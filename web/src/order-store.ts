import type { Change, Order } from '../../src/contract/protocol.ts';
import { ORDER_STATUSES, type OrderStatus } from '../../src/contract/statuses.ts';
import type { Stats } from './api.ts';
import type { Delta } from './feed-client.ts';

/**
 * Everything the page knows about orders, and the one rule that keeps it true: an order (from a page of
 * the list, a change on the stream, or a response to our own request) replaces what is held only when
 * its version is newer. Deleted ids keep a tombstone with the delete's version (one past the order's
 * last), so a late or repeated change cannot bring a deleted order back. The order of arrival between
 * pages, stream and responses therefore does not matter: once changes stop, the store equals the
 * database for every id it has heard of.
 *
 * The store holds the page's view (its status chips and search, streamed filtered by the server): a
 * change marked `"view":"leave"` removes the row, remembering its version like a tombstone, so an older
 * change cannot bring it back and a newer one (it enters again) can.
 *
 * The summary (counts, revenue, per-minute chart) is the server's: /orders/stats with its own cursor,
 * plus the `stats` delta of every message after it, which counts every change whatever the view's
 * filter. The stream starts at that cursor and sends each message once, so the deltas neither miss
 * nor repeat one, and no list/stats bracket is needed.
 *
 * It holds one page of the view, not everything the stream ever touched (at 10 changes/s that was
 * ~860,000 entries a day, all walked on every render): `keep` (the page's stretch of the sort order,
 * page-window.ts) decides which rows stay; the rest are only counted (`outside`, and `elsewhere` for
 * new orders of the view that belong on another page). Tombstones and versions of rows that left are
 * kept for the most recent REMEMBERED ids only: they guard against a late answer or repeated change
 * bringing a row back for the moment it takes the stream to deliver the change that follows.
 *
 * `viewTotal` is the number of orders in the view: the server's count at the stats cursor
 * (`view_orders`) plus every enter and leave the stream reports after it, so it stays exact while the
 * page holds only a slice of the view.
 *
 * Views subscribe; notifications are batched to one per animation frame however many changes arrive.
 */

export interface Activity {
  key: string;
  id: number;
  customer: string;
  text: string;
  at: number;
}

export interface Summary {
  count: Record<OrderStatus, number>;
  /** Exact sums in cents: bigints, since they can pass 2^53 (see money.ts). */
  cents: Record<OrderStatus, bigint>;
  /** Orders per created minute (epoch ms of the minute), for the chart. */
  perMinute: Map<number, number>;
}

const MAX_ACTIVITY = 100;
const REMEMBERED = 2000;

/** Sets `id` last in `map`, and forgets the oldest entry past REMEMBERED. */
function remember(map: Map<number, number>, id: number, version: number): void {
  map.delete(id);
  map.set(id, version);
  if (map.size > REMEMBERED) map.delete(map.keys().next().value as number);
}
const MINUTE = 60_000;

function emptyByStatus(): Record<OrderStatus, number> {
  return { pending: 0, processing: 0, shipped: 0, delivered: 0, cancelled: 0 };
}

function emptyCents(): Record<OrderStatus, bigint> {
  return { pending: 0n, processing: 0n, shipped: 0n, delivered: 0n, cancelled: 0n };
}

function minuteOf(iso: string): number {
  return Math.floor(Date.parse(iso) / MINUTE) * MINUTE;
}

function describeChange(change: Change): string {
  const { order, old } = change;
  if (change.op === 'insert') return `created (${order.status})`;
  if (change.op === 'delete') return 'deleted';
  if (old && old.status !== order.status) return `${old.status} → ${order.status}`;
  const fields = old
    ? (['customer_name', 'product_name', 'quantity', 'total_cents', 'notes'] as const).filter((f) => old[f] !== order[f])
    : [];
  return fields.length ? `edited ${fields.map((f) => f.replace('_name', '').replace('total_cents', 'total')).join(', ')}` : 'updated';
}

export class OrderStore {
  readonly orders = new Map<number, Order>();
  private readonly tombstones = new Map<number, number>();
  /** Rows that left the view: id → the version they left at. */
  private readonly left = new Map<number, number>();
  summary: Summary = { count: emptyByStatus(), cents: emptyCents(), perMinute: new Map() };
  summaryLoaded = false;
  activity: Activity[] = [];
  /** id → time of its last change, for the row flash. */
  readonly changedAt = new Map<number, number>();
  lastChange: { receivedAt: number; lagMs: number } | null = null;
  /** Bumped on every mutation; views memoise on it. */
  revision = 0;
  /** Which rows of the view the page holds (the page's stretch of the sort order). */
  keep: (order: Order) => boolean = () => true;
  /** Orders in the view, kept exact by the stream (see above); null until the first stats. */
  viewTotal: number | null = null;
  /** Changes to rows the page does not hold, since it loaded. */
  outside = 0;
  /** New orders of the view that belong on another page, since it loaded. */
  elsewhere = 0;
  private listeners = new Set<() => void>();
  private frame = 0;

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    this.revision++;
    if (this.frame) return;
    const flush = () => {
      this.frame = 0;
      for (const l of this.listeners) l();
    };
    // A hidden tab gets no animation frames; it still has to keep its state current for when it returns.
    this.frame = document.visibilityState === 'hidden' ? window.setTimeout(flush, 250) : requestAnimationFrame(flush);
  }

  /** Held version of an id, counting deletes; 0 when never seen. */
  versionOf(id: number): number {
    return this.orders.get(id)?.version ?? this.tombstones.get(id) ?? this.left.get(id) ?? 0;
  }

  isDeleted(id: number): boolean {
    return this.tombstones.has(id);
  }

  /** Take an order if it is newer than what is held (and on the page). Returns whether it was taken. */
  put(order: Order): boolean {
    if (order.version <= this.versionOf(order.id)) return false;
    this.take(order);
    this.changed();
    return this.orders.has(order.id);
  }

  putAll(orders: readonly Order[]): void {
    for (const o of orders) if (o.version > this.versionOf(o.id)) this.orders.set(o.id, o);
    this.changed();
  }

  /** Another page of the same view: its rows replace the page's (the counts and summary go on). */
  replacePage(orders: readonly Order[]): void {
    // The page is read after every change applied so far, so its rows win over what is remembered of
    // rows that left the old page; only our own deletes' tombstones can be newer than it.
    this.orders.clear();
    for (const o of orders) {
      this.left.delete(o.id);
      if (o.version > (this.tombstones.get(o.id) ?? 0)) this.orders.set(o.id, o);
    }
    this.outside = 0;
    this.elsewhere = 0;
    this.changed();
  }

  /** Rows that no longer fit on the page (page-window.ts trims an overfull one). */
  drop(orders: readonly Order[]): void {
    for (const o of orders) {
      this.orders.delete(o.id);
      remember(this.left, o.id, o.version);
    }
    this.changed();
  }

  /** A newer version of a row of the view: on the page if it sorts there, otherwise off it. */
  private take(order: Order): void {
    if (this.keep(order)) {
      this.left.delete(order.id);
      this.orders.set(order.id, order);
    } else {
      this.orders.delete(order.id);
      remember(this.left, order.id, order.version);
    }
  }

  /** A delete we made ourselves: `version` is the version we deleted (the tombstone is one past it). */
  markDeleted(id: number, version: number): void {
    if (version + 1 <= this.versionOf(id)) return;
    this.orders.delete(id);
    remember(this.tombstones, id, version + 1);
    this.changed();
  }

  applyChanges(changes: readonly Change[], deltas: readonly Delta[] = []): void {
    const now = Date.now();
    for (const d of deltas) this.applyDelta(d);
    for (const change of changes) {
      const { order } = change;
      // Every change counts once towards the view's total, whatever the page holds (the stream sends
      // each once, from the stats' cursor): `view` on a filtered stream, the operation otherwise.
      const entering = change.view ? change.view === 'enter' : change.op === 'insert';
      const leaving = change.view ? change.view === 'leave' : change.op === 'delete';
      if (this.viewTotal !== null) this.viewTotal += entering ? 1 : leaving ? -1 : 0;
      if (order.version > this.versionOf(order.id)) {
        if (change.op === 'delete') {
          this.orders.delete(order.id);
          this.left.delete(order.id);
          remember(this.tombstones, order.id, order.version);
        } else if (change.view === 'leave') {
          this.orders.delete(order.id);
          remember(this.left, order.id, order.version);
        } else {
          this.take(order);
          if (!this.orders.has(order.id) && change.op === 'insert') this.elsewhere++;
        }
        if (this.orders.has(order.id)) this.changedAt.set(order.id, now);
        else this.outside++;
      }
      this.activity.unshift({
        key: `${order.id}:${order.version}`,
        id: order.id,
        customer: order.customer_name,
        text: describeChange(change),
        at: Date.parse(change.at),
      });
    }
    if (this.activity.length > MAX_ACTIVITY) this.activity.length = MAX_ACTIVITY;
    const last = changes[changes.length - 1];
    if (last) this.lastChange = { receivedAt: now, lagMs: Math.max(0, now - Date.parse(last.at)) };
    if (this.changedAt.size > 5000) this.changedAt.clear();
    this.changed();
  }

  private applyDelta(d: Delta): void {
    const s = this.summary;
    for (const [status, v] of Object.entries(d.by_status)) {
      if (!(ORDER_STATUSES as readonly string[]).includes(status)) continue;
      s.count[status as OrderStatus] += v.count;
      s.cents[status as OrderStatus] += v.total_cents;
    }
    for (const [minute, n] of Object.entries(d.per_minute)) {
      const m = minuteOf(minute);
      s.perMinute.set(m, (s.perMinute.get(m) ?? 0) + n);
    }
  }

  setStats(stats: Stats): void {
    this.viewTotal = stats.view_orders ?? null;
    const count = emptyByStatus();
    const cents = emptyCents();
    for (const status of ORDER_STATUSES) {
      count[status] = stats.by_status[status]?.count ?? 0;
      cents[status] = stats.by_status[status]?.total_cents ?? 0n;
    }
    const perMinute = new Map<number, number>();
    for (const p of stats.per_minute) perMinute.set(Date.parse(p.minute), p.count);
    this.summary = { count, cents, perMinute };
    this.summaryLoaded = true;
    this.changed();
  }

  /** A new snapshot replaces everything (after a reset). */
  clear(): void {
    this.orders.clear();
    this.tombstones.clear();
    this.left.clear();
    this.changedAt.clear();
    this.summaryLoaded = false;
    this.viewTotal = null;
    this.outside = 0;
    this.elsewhere = 0;
    this.changed();
  }

  /** Re-render without a data change (e.g. the optimistic overlay moved). */
  touch(): void {
    this.changed();
  }
}
