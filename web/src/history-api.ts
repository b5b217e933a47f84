import type { Actor, HistoryEntry } from '../../src/contract/history.ts';
import type { Order } from '../../src/contract/protocol.ts';
import { request } from './api.ts';

export type { Actor, HistoryEntry };

export interface HistoryPage {
  entries: HistoryEntry[];
  /** `before` of the next (older) page; null on the last. */
  nextBefore: number | null;
}

async function page(path: string): Promise<HistoryPage> {
  const res = await request('GET', path);
  const entries = (await res.json()) as HistoryEntry[];
  const next = /[?&]before=(\d+)[^>]*>;\s*rel="next"/.exec(res.headers.get('link') ?? '');
  return { entries, nextBefore: next ? Number(next[1]) : null };
}

export function fetchOrderHistory(id: number, before?: number): Promise<HistoryPage> {
  return page(`/orders/${id}/history?limit=50${before === undefined ? '' : `&before=${before}`}`);
}

/** The latest entries of all orders (newest first); with `after`, only newer ones. */
export function fetchRecentHistory(query: { after?: number; limit: number }): Promise<HistoryPage> {
  return page(`/orders/history?limit=${query.limit}${query.after === undefined ? '' : `&after=${query.after}`}`);
}

export async function fetchOrder(id: number): Promise<Order> {
  return (await (await request('GET', `/orders/${id}`)).json()) as Order;
}
