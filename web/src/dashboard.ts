import { backoffDelay } from '../../src/contract/backoff.ts';
import type { Order } from '../../src/contract/protocol.ts';
import type { Role } from '../../src/contract/roles.ts';
import { firstDirection, type SortKey } from '../../src/contract/sort-order.ts';
import { Actions } from './actions.ts';
import * as api from './api.ts';
import { databaseAnswers, type Health, HealthWatch } from './api-health.ts';
import { type ConnectionState, FeedClient } from './feed-client.ts';
import { Identity } from './identity.ts';
import { keepLastData } from './last-data.ts';
import { type Conflict, type Notice, NoticeBoard } from './notices.ts';
import { OfflineQueue, ownerOf } from './offline-queue.ts';
import { OrderStore } from './order-store.ts';
import { ViewLoader, viewQuery } from './view-loader.ts';
import { sameView, type View, viewFromSearch, writeViewToUrl } from './view-url.ts';

/**
 * The page's controller: wires the snapshot, the stream, the store and the offline queue together.
 * Views read its fields and call its methods; they never talk to the server themselves. Each idea has
 * its own module: view-loader.ts (snapshot and paging), actions.ts (optimistic actions and the offline
 * queue), notices.ts, identity.ts; this file starts, retries and stops them.
 *
 * Over 300 lines because it is the one façade the views call: a third of it is one-line delegations
 * to those modules, kept so that no view learns which module does what.
 */
export type { SortKey };
export type Query = View;
export type { Conflict, Notice };

function pageSizeFromUrl(): number {
  const n = Number(new URLSearchParams(location.search).get('limit'));
  return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 100;
}

export interface DashboardOptions {
  /** The identity changed (a 403 revealed a new role). */
  onIdentity?: (me: api.Me) => void;
}

export class Dashboard {
  readonly store = new OrderStore();
  readonly queue: OfflineQueue;
  readonly pageSize = pageSizeFromUrl();
  connection: ConnectionState = { kind: 'connecting', attempt: 0 };
  /** What /readyz says: the socket can be open while the database is down (api-health.ts). */
  health: Health = { kind: 'unknown' };
  readonly board = new NoticeBoard(() => this.emit());
  readonly identity: Identity;
  readonly actions: Actions;
  readonly view: ViewLoader;
  private stopKeeping: (() => void) | null = null;
  private readonly feed: FeedClient;
  private readonly healthWatch: HealthWatch;
  /** Ends the wait between two failed first loads (retry now, or back online). */
  private wake: (() => void) | null = null;
  private stopped = false;

  constructor(me: api.Me, options: DashboardOptions = {}) {
    this.queue = new OfflineQueue(ownerOf(me));
    this.identity = new Identity(me, this.board, (next) => {
      this.queue.setOwner(ownerOf(next));
      options.onIdentity?.(next);
    });
    this.view = new ViewLoader({ store: this.store, feed: () => this.feed, owner: ownerOf(me), emit: () => this.emit() }, this.pageSize);
    const fromUrl = viewFromSearch(location.search);
    this.view.init(fromUrl.view, fromUrl.page);
    this.actions = new Actions({
      store: this.store,
      queue: this.queue,
      notices: this.board,
      identity: this.identity,
      online: () => this.online,
      stopped: () => this.stopped,
      unreachable: () => this.healthWatch.checkSoon(),
      emit: () => this.emit(),
    });
    this.feed = new FeedClient({
      protocols: () => {
        const token = api.currentToken();
        return token ? ['orders.v1', `bearer.${token}`] : ['orders.v1'];
      },
      // A 401 here ends the session through the credentials' handler; anything else: carry on.
      verify: () =>
        api.whoAmI().then(
          () => undefined,
          () => undefined,
        ),
      query: () => viewQuery(this.view.query),
      onChanges: (changes, deltas) => this.view.apply(changes, deltas),
      onState: (state) => {
        this.connection = state;
        this.emit();
        if (state.kind === 'live') void this.flushQueue();
      },
      // loadSnapshot replaces the store only once the new snapshot is in: a failed reload leaves the
      // page as it was (issue 14, item 10).
      onReset: () => this.view.loadSnapshot(),
    });
    this.healthWatch = new HealthWatch((health) => {
      this.health = health;
      this.emit();
      if (!databaseAnswers(health)) return;
      // The API answers: send what waits now, and do not let the socket sit out a long backoff.
      if (this.queue.size) void this.flushQueue();
      if (this.connection.kind === 'reconnecting') this.feed.reconnectNow();
    });
    this.queue.subscribe(() => this.emit());
  }

  get me(): api.Me {
    return this.identity.me;
  }
  get query(): View {
    return this.view.query;
  }
  get loading(): boolean {
    return this.view.loading;
  }
  get viewLoads(): number {
    return this.view.viewLoads;
  }
  get loadError(): string | null {
    return this.view.loadError;
  }
  get stale(): { savedAt: number } | null {
    return this.view.stale;
  }
  get notices(): Notice[] {
    return this.board.notices;
  }
  get conflicts(): Conflict[] {
    return this.board.conflicts;
  }
  get rolledBack(): Map<number, number> {
    return this.actions.rolledBack;
  }
  get ownIds(): Set<number> {
    return this.actions.ownIds;
  }
  get online(): boolean {
    return this.connection.kind === 'live';
  }

  /** The header's "Retry now": every wait (first load, socket backoff, readiness, queue) ends at once. */
  retryNow(): void {
    this.wake?.();
    this.feed.reconnectNow();
    this.healthWatch.checkSoon();
    if (this.queue.size) void this.flushQueue();
  }

  /** Loads the view's snapshot, then streams from its cursor. Retries until it works. */
  async start(): Promise<void> {
    this.healthWatch.start();
    this.stopKeeping ??= keepLastData(this.store, ownerOf(this.me), () => this.online && !this.stale);
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const cursor = await this.view.loadSnapshot();
        this.feed.start(cursor);
        return;
      } catch (err) {
        if ((err as Error).message === 'superseded by another view') return;
        const delay = backoffDelay(attempt, { minMs: 500, maxMs: 30_000 });
        this.view.loadError = (err as Error).message;
        if (attempt === 0) this.view.showLastData();
        this.connection = navigator.onLine
          ? { kind: 'reconnecting', attempt: attempt + 1, nextAttemptAt: Date.now() + delay, reason: 'server unreachable' }
          : { kind: 'offline' };
        this.emit();
        await this.pause(delay);
      }
    }
  }

  /** Waits `delay`, or less when the browser comes back online or the user asks to retry. */
  private pause(delay: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        window.removeEventListener('online', done);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, delay);
      window.addEventListener('online', done);
      this.wake = done;
    });
  }

  /** Views re-render on this, at most once per animation frame. */
  onChange(listener: () => void): () => void {
    return this.store.subscribe(listener);
  }

  private emit(): void {
    this.store.touch();
  }

  /**
   * A new filter or search re-subscribes: the old view's socket is dropped, the new view's snapshot is
   * loaded (stats and first page), and the stream starts again from its cursor with the new filter.
   * A new sort stays subscribed and loads the first page in that order (view-loader.ts).
   */
  async setQuery(next: Partial<View>): Promise<void> {
    const before = this.view.query;
    const query = { ...before, ...next, ...(next.q === undefined ? {} : { q: next.q.trim() }) };
    if (next.sort !== undefined && next.dir === undefined && next.sort !== before.sort) query.dir = firstDirection(next.sort);
    if (sameView(before, query)) return;
    this.view.query = query;
    this.view.page.reset(query.sort, query.dir);
    writeViewToUrl(query, null);
    this.emit();
    // While the first snapshot is still loading, there is no stream to keep: load the view whole.
    if (before.q === query.q && before.statuses.join() === query.statuses.join() && !this.view.loading) {
      await this.turnPage(null);
      return;
    }
    this.feed.detach();
    try {
      const cursor = await this.view.loadSnapshot();
      this.feed.resubscribe(cursor);
    } catch (err) {
      if ((err as Error).message === 'superseded by another view') return;
      // Retry the new view's snapshot with backoff, as at start.
      void this.start();
    }
  }

  /** A saved view: its filter and order, from the first page (the search box shows its text). */
  applyView(view: View): Promise<void> {
    this.view.applied++;
    return this.setQuery(view);
  }

  firstPage(): Promise<void> {
    this.view.page.reset(this.view.query.sort, this.view.query.dir);
    return this.turnPage(null);
  }

  nextPage(): Promise<void> {
    const token = this.view.page.forward();
    return token === null ? Promise.resolve() : this.turnPage(token);
  }

  previousPage(): Promise<void> {
    return this.turnPage(this.view.page.back());
  }

  private async turnPage(token: string | null): Promise<void> {
    try {
      await this.view.loadPage(token);
      writeViewToUrl(this.view.query, this.view.page.token);
    } catch (err) {
      this.notify('error', `Could not load the orders: ${(err as Error).message}`);
    }
  }

  /** Downloads the current view as CSV (the server's export of one snapshot, all pages). */
  async exportCsv(): Promise<void> {
    try {
      const { blob, filename } = await api.exportCsv(this.view.query);
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = filename;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (err) {
      this.notify('error', `Could not export the orders: ${(err as Error).message}`);
    }
  }

  displayed(id: number): Order | undefined {
    return this.actions.displayed(id);
  }
  isPending(id: number): boolean {
    return this.actions.isPending(id);
  }
  can(role: Role): boolean {
    return this.identity.can(role);
  }
  notify(tone: Notice['tone'], text: string, topic?: Notice['topic']): void {
    this.board.notify(tone, text, topic);
  }
  dismissNotice(id: number): void {
    this.board.dismiss(id);
  }
  dismissConflict(conflict: Conflict): void {
    this.board.dismissConflict(conflict);
  }
  create(body: api.OrderCreate): ReturnType<Actions['create']> {
    return this.actions.create(body);
  }
  update(order: Order, patch: api.OrderPatch): Promise<void> {
    return this.actions.update(order, patch);
  }
  remove(order: Order): Promise<void> {
    return this.actions.remove(order);
  }
  flushQueue(): Promise<void> {
    return this.actions.flushQueue();
  }

  async reapply(conflict: Conflict): Promise<void> {
    this.dismissConflict(conflict);
    const current = this.store.orders.get(conflict.id);
    if (!current) {
      this.notify('error', `Order #${conflict.id} no longer exists.`);
      return;
    }
    if (conflict.patch) await this.update(current, conflict.patch);
    else await this.remove(current);
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
    this.stopKeeping?.();
    this.healthWatch.stop();
    this.feed.stop();
    this.queue.close();
  }
}
