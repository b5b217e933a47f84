import type { Order } from '../../src/contract/protocol.ts';
import { ORDER_STATUSES } from '../../src/contract/statuses.ts';
import type { Stats } from './api.ts';
import type { OrderStore } from './order-store.ts';

/**
 * The last orders and summary this tab saw, so that a reload while offline (the service worker serves
 * the page, sw/sw.ts) shows them, marked as stale with the time they were current, instead of nothing.
 * Kept in sessionStorage: this tab only, gone when it closes, so order data does not stay on a shared
 * computer after the operator leaves. Written at most every few seconds and when the page is hidden.
 * Never merged with fresh data: the first snapshot that loads replaces it whole (dashboard.ts).
 */
const KEY = 'orders-dashboard.last-data.v1';
const MAX_ORDERS = 1000;
const EVERY_MS = 3000;

interface Saved {
  owner: string;
  savedAt: number;
  orders: Order[];
  stats: { by_status: Record<string, { count: number; total_cents: string }>; per_minute: { minute: string; count: number }[] };
}

export interface LastData {
  savedAt: number;
  orders: Order[];
  stats: Stats;
}

export function readLastData(owner: string, storage: Storage = sessionStorage): LastData | null {
  try {
    const saved = JSON.parse(storage.getItem(KEY) ?? 'null') as Saved | null;
    if (!saved || saved.owner !== owner) return null;
    const by_status: Stats['by_status'] = {};
    let total = 0;
    let cents = 0n;
    for (const [status, s] of Object.entries(saved.stats.by_status)) {
      by_status[status] = { count: s.count, total_cents: BigInt(s.total_cents) };
      total += s.count;
      cents += BigInt(s.total_cents);
    }
    return {
      savedAt: saved.savedAt,
      orders: saved.orders,
      stats: { total_orders: total, total_cents: cents, by_status, per_minute: saved.stats.per_minute },
    };
  } catch {
    return null;
  }
}

/** Saves the store now and then while `isFresh()`; returns a function that stops it. */
export function keepLastData(store: OrderStore, owner: string, isFresh: () => boolean, storage: Storage = sessionStorage): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const save = () => {
    timer = undefined;
    if (!isFresh() || !store.summaryLoaded) return;
    const orders = [...store.orders.values()].sort((a, b) => b.id - a.id).slice(0, MAX_ORDERS);
    const s = store.summary;
    const saved: Saved = {
      owner,
      savedAt: Date.now(),
      orders,
      stats: {
        by_status: Object.fromEntries(ORDER_STATUSES.map((st) => [st, { count: s.count[st], total_cents: String(s.cents[st]) }])),
        per_minute: [...s.perMinute].map(([m, count]) => ({ minute: new Date(m).toISOString(), count })),
      },
    };
    try {
      storage.setItem(KEY, JSON.stringify(saved));
    } catch {
      // Full storage: the offline view is a convenience, not worth an error.
    }
  };
  const unsubscribe = store.subscribe(() => {
    timer ??= setTimeout(save, EVERY_MS);
  });
  const onHide = () => {
    if (document.visibilityState === 'hidden') save();
  };
  document.addEventListener('visibilitychange', onHide);
  window.addEventListener('pagehide', save);
  return () => {
    unsubscribe();
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onHide);
    window.removeEventListener('pagehide', save);
  };
}

export function forgetLastData(storage: Storage = sessionStorage): void {
  storage.removeItem(KEY);
}
