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

  /** Take an order if it is newer than what is held. Returns whether it was taken. */
  put(order: Order): boolean {
    if (order.version <= this.versionOf(order.id)) return false;
    this.orders.set(order.id, order);
    this.changed();
    return true;
  }

  putAll(orders: readonly Order[]): void {
    for (const o of orders) if (o.version > this.versionOf(o.id)) this.orders.set(o.id, o);
    this.changed();
  }

  /** A delete we made ourselves: `version` is the version we deleted (the tombstone is one past it). */
  markDeleted(id: number, version: number): void {
    if (version + 1 <= this.versionOf(id)) return;
    this.orders.delete(id);
    this.tombstones.set(id, version + 1);
    this.changed();
  }

  applyChanges(changes: readonly Change[], deltas: readonly Delta[] = []): void {
    const now = Date.now();
    for (const d of deltas) this.applyDelta(d);
    for (const change of changes) {
      const { order } = change;
      if (order.version > this.versionOf(order.id)) {
        if (change.op === 'delete') {
          this.orders.delete(order.id);
          this.left.delete(order.id);
          this.tombstones.set(order.id, order.version);
        } else if (change.view === 'leave') {
          this.orders.delete(order.id);
          this.left.set(order.id, order.version);
        } else {
          this.left.delete(order.id);
          this.orders.set(order.id, order);
        }
        this.changedAt.set(order.id, now);
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
    this.changed();
  }

  /** Re-render without a data change (e.g. the optimistic overlay moved). */
  touch(): void {
    this.changed();
  }
}
