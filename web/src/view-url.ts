import { firstDirection, SORT_KEYS, type SortDirection, type SortKey } from '../../src/contract/sort-order.ts';
import { ORDER_STATUSES, type OrderStatus } from '../../src/contract/statuses.ts';

/**
 * The view in the address bar: `?status=pending,processing&q=acme&sort=total_cents&dir=desc&page=…`,
 * so a reload or a shared link opens the same orders in the same order on the same page. The hash is
 * left alone (it routes to an order's own page), and so are other parameters (`limit`). The address is
 * replaced, not pushed: Back leaves the dashboard rather than stepping through every keystroke of a search.
 *
 * Saved views are named views kept in this browser's localStorage (per device, not shared with other
 * operators: the server has no place for them yet).
 */
export interface View {
  statuses: OrderStatus[];
  q: string;
  sort: SortKey;
  dir: SortDirection;
}

export const DEFAULT_VIEW: View = { statuses: [], q: '', sort: 'id', dir: 'desc' };

/** The view (and the page token) a URL's query asks for; anything unreadable falls back to the default. */
export function viewFromSearch(search: string): { view: View; page: string | null } {
  const p = new URLSearchParams(search);
  const statuses = (p.get('status') ?? '').split(',').filter((s): s is OrderStatus => (ORDER_STATUSES as readonly string[]).includes(s));
  const sortParam = p.get('sort');
  const sort = (SORT_KEYS as readonly string[]).includes(sortParam ?? '') ? (sortParam as SortKey) : DEFAULT_VIEW.sort;
  const dirParam = p.get('dir');
  const dir: SortDirection = dirParam === 'asc' || dirParam === 'desc' ? dirParam : firstDirection(sort);
  const page = p.get('page');
  return {
    view: { statuses: ORDER_STATUSES.filter((s) => statuses.includes(s)), q: (p.get('q') ?? '').trim().slice(0, 200), sort, dir },
    page: page && /^[\w-]{1,1200}$/.test(page) ? page : null,
  };
}

/** `search` with the view's parameters replaced (defaults left out, so the plain URL stays plain). */
export function searchWithView(search: string, view: View, page: string | null): string {
  const p = new URLSearchParams(search);
  for (const k of ['status', 'q', 'sort', 'dir', 'page']) p.delete(k);
  if (view.statuses.length) p.set('status', view.statuses.join(','));
  if (view.q) p.set('q', view.q);
  if (view.sort !== DEFAULT_VIEW.sort || view.dir !== DEFAULT_VIEW.dir) {
    p.set('sort', view.sort);
    p.set('dir', view.dir);
  }
  if (page) p.set('page', page);
  const text = p.toString();
  return text ? `?${text}` : '';
}

export function writeViewToUrl(view: View, page: string | null): void {
  const search = searchWithView(location.search, view, page);
  if (search === location.search) return;
  history.replaceState(history.state, '', `${location.pathname}${search}${location.hash}`);
}

export interface SavedView {
  name: string;
  view: View;
}

const SAVED_KEY = 'orders-dashboard.saved-views.v1';
const MAX_SAVED = 20;

export function savedViews(storage: Storage = localStorage): SavedView[] {
  try {
    const list = JSON.parse(storage.getItem(SAVED_KEY) ?? '[]') as unknown;
    if (!Array.isArray(list)) return [];
    // Read back through the URL form, so a hand-edited or older entry is normalised like a link.
    return list
      .filter((e): e is { name: string; search: string } => typeof e?.name === 'string' && typeof e?.search === 'string')
      .map((e) => ({ name: e.name.slice(0, 60), view: viewFromSearch(e.search).view }));
  } catch {
    return [];
  }
}

/** Saves (or replaces, by name) a view; returns the new list. */
export function saveView(name: string, view: View, storage: Storage = localStorage): SavedView[] {
  const list = savedViews(storage).filter((v) => v.name !== name);
  list.push({ name, view });
  writeSaved(list.slice(-MAX_SAVED), storage);
  return savedViews(storage);
}

export function deleteView(name: string, storage: Storage = localStorage): SavedView[] {
  writeSaved(
    savedViews(storage).filter((v) => v.name !== name),
    storage,
  );
  return savedViews(storage);
}

function writeSaved(list: SavedView[], storage: Storage): void {
  try {
    storage.setItem(SAVED_KEY, JSON.stringify(list.map((v) => ({ name: v.name, search: searchWithView('', v.view, null) }))));
  } catch {
    // Storage full or disabled: the view is simply not saved.
  }
}

export function sameView(a: View, b: View): boolean {
  return a.q === b.q && a.sort === b.sort && a.dir === b.dir && a.statuses.join() === b.statuses.join();
}
