import type { Change } from '../../src/contract/protocol.ts';
import * as api from './api.ts';
import type { Delta, FeedClient } from './feed-client.ts';
import { readLastData } from './last-data.ts';
import type { OrderStore } from './order-store.ts';
import { PageWindow } from './page-window.ts';
import { DEFAULT_VIEW, type View } from './view-url.ts';

/**
 * Loading what the table shows: the view's snapshot (its filter, streamed) and the page of it (its
 * sort and place, not streamed separately).
 *
 * A view (status chips, search) is a subscription: /orders/stats with the view's count at cursor S,
 * then the first page at a later snapshot L, then the stream from S. Totals take every delta after S
 * exactly once; rows are applied by version, so the changes between S and L that the page already has
 * change nothing. Changing the filter drops the socket and does all three again.
 *
 * A page of the same view (Next, Previous, another sort) keeps the stream going from where it is:
 * while the page loads, the stream's changes are held back; when it arrives (read after everything
 * applied so far), it replaces the rows, and the held changes are applied on top, by version and by the
 * new page's stretch. No change is missed between two pages and none is applied twice to the totals.
 */
export interface LoaderContext {
  store: OrderStore;
  feed: () => FeedClient;
  owner: string;
  emit: () => void;
}

export class ViewLoader {
  query: View = DEFAULT_VIEW;
  readonly page: PageWindow;
  loading = true;
  /** A page of the same view is on its way (the table stays, marked busy). */
  paging = false;
  /** Bumped when a view's first page is in: what it shows is not "new" (views/OrdersTable.tsx). */
  viewLoads = 0;
  loadError: string | null = null;
  /** Bumped when a saved view is applied, so the search box takes its text (views/OrdersTable.tsx). */
  applied = 0;
  /** Set while the page shows the data of an earlier visit (offline after a reload): when it was current. */
  stale: { savedAt: number } | null = null;
  private generation = 0;
  private held: [Change[], Delta[]][] | null = null;

  constructor(
    private readonly c: LoaderContext,
    pageSize: number,
  ) {
    this.page = new PageWindow(pageSize);
    c.store.keep = (o) => this.page.contains(o);
  }

  /** Starts at a view (from the URL), on the page `token` names (null: the first). */
  init(view: View, token: string | null): void {
    this.query = view;
    this.page.reset(view.sort, view.dir, token);
  }

  /** The stream's changes: applied, or held while a page loads. */
  apply(changes: Change[], deltas: Delta[]): void {
    if (this.held) {
      this.held.push([changes, deltas]);
      return;
    }
    this.c.store.applyChanges(changes, deltas);
    const dropped = this.page.trim(this.c.store.orders);
    if (dropped.length) this.c.store.drop(dropped);
  }

  /** The view's stats and page; resolves to the cursor to stream from. */
  async loadSnapshot(): Promise<string> {
    const generation = ++this.generation;
    this.held = null;
    this.loading = true;
    this.c.emit();
    const { stats, cursor } = await api.fetchStats(this.query);
    let page: api.OrdersPage;
    try {
      page = await api.listOrders(this.listQuery(this.page.token));
    } catch (err) {
      // A link's page token the server no longer takes (another sort, a changed format): the first page.
      if (!(err instanceof api.ApiProblem && err.status === 400 && this.page.token)) throw err;
      this.page.reset(this.query.sort, this.query.dir);
      page = await api.listOrders(this.listQuery(null));
    }
    if (generation !== this.generation) throw new Error('superseded by another view');
    // Old data (another view's, or the last data kept for offline use) is replaced, never merged: an
    // order deleted since must not stay.
    const { store } = this.c;
    store.clear();
    this.stale = null;
    this.page.loaded(page);
    store.putAll(page.orders);
    store.setStats(stats);
    if (store.viewTotal === null) store.viewTotal = page.total;
    this.loading = false;
    this.loadError = null;
    this.viewLoads++;
    this.c.emit();
    return cursor;
  }

  /** Another page of the current view: `token` from the page window (null: the first). */
  async loadPage(token: string | null): Promise<void> {
    const generation = ++this.generation;
    this.held = [];
    this.paging = true;
    this.c.emit();
    try {
      const page = await api.listOrders(this.listQuery(token));
      if (generation !== this.generation) return;
      this.page.loaded(page);
      this.c.store.replacePage(page.orders);
      this.viewLoads++;
    } catch (err) {
      if (generation === this.generation) throw err;
    } finally {
      if (generation === this.generation) {
        const held = this.held ?? [];
        this.held = null;
        this.paging = false;
        for (const [changes, deltas] of held) this.apply(changes, deltas);
        this.c.emit();
      }
    }
  }

  /** Nothing loads (offline after a reload): show what this tab saw last, marked stale, rather than nothing. */
  showLastData(): void {
    const { store } = this.c;
    if (store.orders.size || store.summaryLoaded) return;
    const last = readLastData(this.c.owner);
    if (!last) return;
    store.putAll(last.orders);
    store.setStats(last.stats);
    this.stale = { savedAt: last.savedAt };
  }

  private listQuery(page: string | null): api.ListQuery {
    const { statuses, q, sort, dir } = this.query;
    return { statuses, q, sort, dir, limit: this.page.limit, page };
  }
}

/** The stream's query for a view: the same filter as the list, and live totals. */
export function viewQuery(query: View): string {
  const params = new URLSearchParams();
  if (query.statuses.length) params.set('status', query.statuses.join(','));
  if (query.q) params.set('q', query.q);
  params.set('stats', '1');
  return params.toString();
}
