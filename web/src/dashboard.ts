import { backoffDelay } from '../../src/contract/backoff.ts';
import type { Order } from '../../src/contract/protocol.ts';
import { allows, type Role } from '../../src/contract/roles.ts';
import type { OrderStatus } from '../../src/contract/statuses.ts';
import * as api from './api.ts';
import { databaseAnswers, type Health, HealthWatch } from './api-health.ts';
import { type ConnectionState, FeedClient } from './feed-client.ts';
import { keepLastData, readLastData } from './last-data.ts';
import { OfflineQueue, ownerOf, type QueuedAction } from './offline-queue.ts';
import { OrderStore } from './order-store.ts';

/**
 * The page's controller: wires the snapshot, the stream, the store and the offline queue together, and
 * performs the user's actions. Views read its fields and call its methods; they never talk to the
 * server themselves.
 *
 * Actions are optimistic: the row shows the intended state at once (an overlay over the store), and
 * when the server refuses, the overlay is dropped (the row flashes back) and a notice says why. A 412
 * keeps the newer order the server sent and offers to apply the change again on top of it.
 *
 * It acts as one identity (GET /me): views offer only what its role may do, and a 403 (the role was
 * lowered while the page was open) rolls back like any refusal and asks /me again, so the page adapts.
 * A 401 is not handled here: the session (session.ts) stops this dashboard and asks for a token.
 */
export type SortKey = 'id' | 'customer_name' | 'product_name' | 'quantity' | 'total_cents' | 'status' | 'updated_at';

export interface Query {
  statuses: OrderStatus[];
  q: string;
  sort: SortKey;
  dir: 'asc' | 'desc';
}

export interface Notice {
  id: number;
  tone: 'error' | 'info';
  /** A refused create: dropped once a create succeeds, so an old refusal does not outlive the fix. */
  topic?: 'create';
  text: string;
}

export interface Conflict {
  id: number;
  /** What the user wanted; null for a delete. */
  patch: api.OrderPatch | null;
  newer: Order | null;
  detail: string;
}

type Overlay = { kind: 'update'; order: Order } | { kind: 'delete' };

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
  /** Set while the page shows the data of an earlier visit (offline after a reload): when it was current. */
  stale: { savedAt: number } | null = null;
  private stopKeeping: (() => void) | null = null;
  query: Query = { statuses: [], q: '', sort: 'id', dir: 'desc' };
  /** Ids at or above this are all loaded for the current query; null when every page is loaded. */
  floor: number | null = null;
  loading = true;
  /** Bumped when a view's first page is in: what it shows is not "new" (views/OrdersTable.tsx). */
  viewLoads = 0;
  loadingMore = false;
  loadError: string | null = null;
  notices: Notice[] = [];
  conflicts: Conflict[] = [];
  /** Rows refused by the server, for a red flash: id → when. */
  readonly rolledBack = new Map<number, number>();
  /** Orders this page created: shown at once even where others' new orders are only announced. */
  readonly ownIds = new Set<number>();
  private readonly overlays = new Map<number, Overlay>();
  private readonly feed: FeedClient;
  private readonly healthWatch: HealthWatch;
  /** Ends the wait between two failed first loads (retry now, or back online). */
  private wake: (() => void) | null = null;
  private queryGeneration = 0;
  private noticeSeq = 0;
  private flushing = false;
  private stopped = false;

  constructor(
    public me: api.Me,
    private readonly options: DashboardOptions = {},
  ) {
    this.queue = new OfflineQueue(ownerOf(me));
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
      query: () => viewQuery(this.query),
      onChanges: (changes, deltas) => this.store.applyChanges(changes, deltas),
      onState: (state) => {
        this.connection = state;
        this.emit();
        if (state.kind === 'live') void this.flushQueue();
      },
      // loadSnapshot replaces the store only once the new snapshot is in: a failed reload leaves the
      // page as it was (issue 14, item 10).
      onReset: () => this.loadSnapshot(),
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

  /** The header's "Retry now": every wait (first load, socket backoff, readiness, queue) ends at once. */
  retryNow(): void {
    this.wake?.();
    this.feed.reconnectNow();
    this.healthWatch.checkSoon();
    if (this.queue.size) void this.flushQueue();
  }

  /** Loads the first page and the summary at one cursor, then streams from it. Retries until it works. */
  async start(): Promise<void> {
    this.healthWatch.start();
    this.stopKeeping = keepLastData(this.store, ownerOf(this.me), () => this.online && !this.stale);
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const cursor = await this.loadSnapshot();
        this.feed.start(cursor);
        return;
      } catch (err) {
        const delay = backoffDelay(attempt, { minMs: 500, maxMs: 30_000 });
        this.loadError = (err as Error).message;
        if (attempt === 0) this.showLastData();
        this.connection = navigator.onLine
          ? { kind: 'reconnecting', attempt: attempt + 1, nextAttemptAt: Date.now() + delay, reason: 'server unreachable' }
          : { kind: 'offline' };
        this.emit();
        await this.pause(delay);
      }
    }
  }

  /** Nothing loads (offline after a reload): show what this tab saw last, marked stale, rather than nothing. */
  private showLastData(): void {
    if (this.store.orders.size || this.store.summaryLoaded) return;
    const last = readLastData(ownerOf(this.me));
    if (!last) return;
    this.store.putAll(last.orders);
    this.store.setStats(last.stats);
    this.stale = { savedAt: last.savedAt };
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

  /**
   * The view's snapshot: /orders/stats (with its cursor S), then the first page of the view (at a later
   * snapshot L). The stream starts at S: totals take every delta after S exactly once; rows are applied
   * by version, so the changes between S and L that the page already has change nothing. (This replaces
   * a list/stats/list bracket that, under load, gave up and counted a change twice.)
   */
  private async loadSnapshot(): Promise<string> {
    const generation = ++this.queryGeneration;
    this.loading = true;
    this.emit();
    const { stats, cursor } = await api.fetchStats();
    const page = await api.listOrders({ statuses: this.query.statuses, q: this.query.q, limit: this.pageSize });
    if (generation !== this.queryGeneration) throw new Error('superseded by another view');
    // Old data (another view's, or the last data kept for offline use) is replaced, never merged: an
    // order deleted since must not stay.
    this.store.clear();
    this.stale = null;
    this.store.putAll(page.orders);
    this.store.setStats(stats);
    this.floor = page.nextBefore;
    this.loading = false;
    this.loadError = null;
    this.viewLoads++;
    this.emit();
    return cursor;
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
   * loaded (stats and first page), and the stream starts again from its cursor with the new filter, so
   * rows entering the view appear and rows leaving it go. Sorting is local.
   */
  async setQuery(next: Partial<Query>): Promise<void> {
    const before = this.query;
    this.query = { ...this.query, ...next, ...(next.q === undefined ? {} : { q: next.q.trim() }) };
    this.emit();
    if (before.q === this.query.q && before.statuses.join() === this.query.statuses.join()) return;
    this.feed.detach();
    try {
      const cursor = await this.loadSnapshot();
      this.feed.resubscribe(cursor);
    } catch (err) {
      if ((err as Error).message === 'superseded by another view') return;
      // Retry the new view's snapshot with backoff, as at start.
      void this.start();
    }
  }

  async loadMore(): Promise<void> {
    if (this.floor === null || this.loadingMore) return;
    const generation = this.queryGeneration;
    this.loadingMore = true;
    this.emit();
    try {
      const page = await api.listOrders({ statuses: this.query.statuses, q: this.query.q, limit: this.pageSize, before: this.floor });
      if (generation !== this.queryGeneration) return;
      this.store.putAll(page.orders);
      this.floor = page.nextBefore;
    } catch (err) {
      this.notify('error', `Could not load more orders: ${(err as Error).message}`);
    } finally {
      this.loadingMore = false;
      this.emit();
    }
  }

  /** The order as the page shows it: our pending change over the store's. Undefined when gone. */
  displayed(id: number): Order | undefined {
    const overlay = this.overlays.get(id);
    if (overlay?.kind === 'delete') return undefined;
    const held = this.store.orders.get(id);
    if (overlay?.kind === 'update' && held && overlay.order.version >= held.version) return overlay.order;
    return held;
  }

  isPending(id: number): boolean {
    return this.overlays.has(id);
  }

  get online(): boolean {
    return this.connection.kind === 'live';
  }

  /** Whether the signed-in role may do what needs `role` (views show only those controls). */
  can(role: Role): boolean {
    return allows(this.me.role, role);
  }

  private refuseLocally(need: Role, what: string): boolean {
    if (this.can(need)) return false;
    this.notify('error', `You cannot ${what}: it needs the ${need} role, and you are signed in as ${this.me.role}.`);
    return true;
  }

  notify(tone: Notice['tone'], text: string, topic?: Notice['topic']): void {
    const notice: Notice = topic ? { id: ++this.noticeSeq, tone, text, topic } : { id: ++this.noticeSeq, tone, text };
    this.notices = [...this.notices.slice(-4), notice];
    this.emit();
  }

  dismissNotice(id: number): void {
    this.notices = this.notices.filter((n) => n.id !== id);
    this.emit();
  }

  dismissConflict(conflict: Conflict): void {
    this.conflicts = this.conflicts.filter((c) => c !== conflict);
    this.emit();
  }

  /** Resolves to field errors to show in the form (empty when created or queued). */
  async create(body: api.OrderCreate): Promise<{ errors: api.FieldError[]; queued: boolean; detail?: string }> {
    if (this.refuseLocally('operator', 'create orders')) return { errors: [], queued: false, detail: 'Your role cannot create orders.' };
    if (!this.online) {
      this.queue.add({ kind: 'create', body });
      this.notify('info', `Offline: the order for ${body.customer_name} is queued and will be sent when the connection is back.`);
      return { errors: [], queued: true };
    }
    const item = this.queue.add({ kind: 'create', body });
    // The form shows the server's answer under its fields: no page notice for it.
    const outcome = await this.send(item, { fromForm: true });
    if (outcome.kind === 'problem') {
      return { errors: outcome.problem.errors ?? [], queued: false, detail: outcome.problem.detail };
    }
    if (outcome.kind === 'retry') {
      if (this.stopped) return { errors: [], queued: true };
      this.notify('info', `The server could not be reached: the order for ${body.customer_name} is queued.`);
      return { errors: [], queued: true };
    }
    return { errors: [], queued: false };
  }

  async update(order: Order, patch: api.OrderPatch): Promise<void> {
    if (this.refuseLocally('operator', 'change orders')) return;
    this.overlays.set(order.id, { kind: 'update', order: { ...order, ...patch, version: order.version } });
    this.emit();
    const item = this.queue.add({ kind: 'update', id: order.id, patch, version: order.version });
    if (this.online) await this.send(item);
    else this.notify('info', `Offline: the change to #${order.id} is queued.`);
  }

  async remove(order: Order): Promise<void> {
    if (this.refuseLocally('admin', 'delete orders')) return;
    this.overlays.set(order.id, { kind: 'delete' });
    this.emit();
    const item = this.queue.add({ kind: 'delete', id: order.id, version: order.version });
    if (this.online) await this.send(item);
    else this.notify('info', `Offline: the deletion of #${order.id} is queued.`);
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

  /**
   * Sends one queued action. `done` and `problem` take it off the queue (the server has decided);
   * `retry` leaves it for the next flush.
   */
  private async send(
    item: QueuedAction,
    { fromForm = false } = {},
  ): Promise<{ kind: 'done' } | { kind: 'retry' } | { kind: 'problem'; problem: api.Problem }> {
    try {
      if (item.kind === 'create') {
        const order = await api.createOrder(item.body, item.key);
        this.ownIds.add(order.id);
        if (this.notices.some((n) => n.topic === 'create')) this.notices = this.notices.filter((n) => n.topic !== 'create');
        this.store.put(order);
      } else if (item.kind === 'update') {
        this.store.put(await api.updateOrder(item.id, item.patch, item.version));
      } else {
        await api.deleteOrder(item.id, item.version);
        this.store.markDeleted(item.id, item.version);
      }
      this.queue.remove(item.key);
      if (item.kind !== 'create') this.overlays.delete(item.id);
      this.emit();
      return { kind: 'done' };
    } catch (err) {
      if (err instanceof api.NetworkError) {
        // Not reached, or the database is down (503): find out which, and when it is back.
        this.healthWatch.checkSoon();
        return { kind: 'retry' };
      }
      if (!(err instanceof api.ApiProblem)) throw err;
      if (err.problem.code === 'idempotency-key-in-use') return { kind: 'retry' };
      // The token is no longer accepted: the session is ending. The action stays queued under this
      // identity, to be sent if it signs in again.
      if (err.status === 401) return { kind: 'retry' };
      if (err.status === 403) void this.refreshIdentity();
      this.queue.remove(item.key);
      if (!(fromForm && item.kind === 'create')) this.refused(item, err.problem);
      return { kind: 'problem', problem: err.problem };
    }
  }

  private refused(item: QueuedAction, problem: api.Problem): void {
    if (item.kind === 'create') {
      // A queued create refused later has no form left, so say it here (a form's own create says it
      // under its fields and never comes here).
      const who = item.body.customer_name ? `The order for ${item.body.customer_name}` : 'A queued order';
      const fields = problem.errors?.map((e) => `${e.field.replace(/^body\./, '')} ${e.message}`).join(', ');
      this.notify('error', `${who} was refused: ${fields || problem.detail}`, 'create');
      return;
    }
    this.overlays.delete(item.id);
    this.rolledBack.set(item.id, Date.now());
    if (problem.order) this.store.put(problem.order);
    const what = item.kind === 'delete' ? 'delete' : describePatch(item.patch);
    if (problem.status === 412) {
      this.conflicts = [
        ...this.conflicts,
        { id: item.id, patch: item.kind === 'update' ? item.patch : null, newer: problem.order ?? null, detail: problem.detail },
      ];
    } else if (problem.status === 404) {
      this.store.markDeleted(item.id, this.store.versionOf(item.id));
      this.notify('error', `Could not ${what} #${item.id}: it no longer exists.`);
    } else {
      const allowed = problem.allowed_next_statuses;
      const hint = allowed ? (allowed.length ? ` Allowed next: ${allowed.join(', ')}.` : ' Its status is final.') : '';
      this.notify('error', `Could not ${what} #${item.id}; rolled back. ${problem.detail}${hint}`);
    }
    this.emit();
  }

  /** Sends the queue in order; stops at the first action the server could not be reached for. */
  async flushQueue(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    let sent = 0;
    const refused: string[] = [];
    try {
      // Not only when the socket is live: whenever the API may answer. An unreachable server costs one
      // failed request, and the first `retry` ends the pass.
      for (let item = this.queue.peek(); item && !this.stopped; item = this.queue.peek()) {
        const outcome = await this.send(item);
        if (outcome.kind === 'retry') break;
        if (outcome.kind === 'problem') refused.push(describeAction(item));
        else sent++;
      }
    } finally {
      this.flushing = false;
    }
    const tried = sent + refused.length;
    if (!tried) return;
    const noun = (n: number) => (n === 1 ? 'action' : 'actions');
    if (!refused.length) this.notify('info', `Sent ${sent} queued ${noun(sent)}.`);
    else {
      const head = sent ? `Sent ${sent} of ${tried} queued actions; ` : `${refused.length} queued ${noun(refused.length)}: `;
      this.notify('error', `${head}refused: ${refused.join('; ')}.`);
    }
  }

  /** Asks /me again; when the role changed, the page adapts (and the queue follows the new identity). */
  private async refreshIdentity(): Promise<void> {
    let me: api.Me;
    try {
      me = await api.whoAmI();
    } catch {
      return;
    }
    if (this.stopped || (me.role === this.me.role && me.name === this.me.name)) return;
    this.me = me;
    this.queue.setOwner(ownerOf(me));
    this.options.onIdentity?.(me);
    this.notify('info', `You are now signed in as ${me.role}; the page shows only what that role may do.`);
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

/** "change the status to shipped for #12", "delete #12", "create the order for Ada". */
export function describeAction(item: QueuedAction): string {
  if (item.kind === 'create') return `create the order for ${item.body.customer_name}`;
  if (item.kind === 'delete') return `delete #${item.id}`;
  return `${describePatch(item.patch)} #${item.id}`;
}

/** The stream's query for a view: the same filter as the list, and live totals. */
export function viewQuery(query: Query): string {
  const params = new URLSearchParams();
  if (query.statuses.length) params.set('status', query.statuses.join(','));
  if (query.q) params.set('q', query.q);
  params.set('stats', '1');
  return params.toString();
}

export function describePatch(patch: api.OrderPatch): string {
  if (patch.status && Object.keys(patch).every((k) => k === 'status' || k === 'reason')) return `change the status to ${patch.status} for`;
  return 'edit';
}
