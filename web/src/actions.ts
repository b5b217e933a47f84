import type { Order } from '../../src/contract/protocol.ts';
import * as api from './api.ts';
import type { Identity } from './identity.ts';
import type { NoticeBoard } from './notices.ts';
import type { OfflineQueue, QueuedAction } from './offline-queue.ts';
import type { OrderStore } from './order-store.ts';

/**
 * The operator's actions: create, edit, move and delete, sent now or queued while offline.
 *
 * Actions are optimistic: the row shows the intended state at once (an overlay over the store), and
 * when the server refuses, the overlay is dropped (the row flashes back) and a notice says why. A 412
 * keeps the newer order the server sent and offers to apply the change again on top of it. A 403 rolls
 * back like any refusal and asks /me again, so the page adapts to a lowered role. A 409 `locked` (another
 * program's transaction holds the order) is no refusal: the action stays queued, shown as pending, and
 * is sent again after 2 s, then after longer waits (up to 30 s) while the order stays held.
 */
type Overlay = { kind: 'update'; order: Order } | { kind: 'delete' };

export interface ActionContext {
  store: OrderStore;
  queue: OfflineQueue;
  notices: NoticeBoard;
  identity: Identity;
  online: () => boolean;
  stopped: () => boolean;
  /** The API could not be reached: find out whether the database is down. */
  unreachable: () => void;
  emit: () => void;
}

export class Actions {
  /** Rows refused by the server, for a red flash: id → when. */
  readonly rolledBack = new Map<number, number>();
  /** Orders this page created: shown at once even where others' new orders are only announced. */
  readonly ownIds = new Set<number>();
  private readonly overlays = new Map<number, Overlay>();
  private flushing = false;
  /** The next send of the queue after a `locked` answer, and how many such answers in a row. */
  private lockedRetry: ReturnType<typeof setTimeout> | null = null;
  private lockedInARow = 0;

  constructor(private readonly c: ActionContext) {}

  /** The order as the page shows it: our pending change over the store's. Undefined when gone. */
  displayed(id: number): Order | undefined {
    const overlay = this.overlays.get(id);
    if (overlay?.kind === 'delete') return undefined;
    const held = this.c.store.orders.get(id);
    if (overlay?.kind === 'update' && held && overlay.order.version >= held.version) return overlay.order;
    return held;
  }

  isPending(id: number): boolean {
    return this.overlays.has(id);
  }

  /** Resolves to field errors to show in the form (empty when created or queued). */
  async create(body: api.OrderCreate): Promise<{ errors: api.FieldError[]; queued: boolean; detail?: string }> {
    const { identity, queue, notices } = this.c;
    if (identity.refuseLocally('operator', 'create orders'))
      return { errors: [], queued: false, detail: 'Your role cannot create orders.' };
    if (!this.c.online()) {
      queue.add({ kind: 'create', body });
      notices.notify('info', `Offline: the order for ${body.customer_name} is queued and will be sent when the connection is back.`);
      return { errors: [], queued: true };
    }
    const item = queue.add({ kind: 'create', body });
    // The form shows the server's answer under its fields: no page notice for it.
    const outcome = await this.send(item, { fromForm: true });
    if (outcome.kind === 'problem') return { errors: outcome.problem.errors ?? [], queued: false, detail: outcome.problem.detail };
    if (outcome.kind === 'retry') {
      if (this.c.stopped()) return { errors: [], queued: true };
      notices.notify('info', `The server could not be reached: the order for ${body.customer_name} is queued.`);
      return { errors: [], queued: true };
    }
    return { errors: [], queued: false };
  }

  async update(order: Order, patch: api.OrderPatch): Promise<void> {
    if (this.c.identity.refuseLocally('operator', 'change orders')) return;
    this.overlays.set(order.id, { kind: 'update', order: { ...order, ...patch, version: order.version } });
    this.c.emit();
    const item = this.c.queue.add({ kind: 'update', id: order.id, patch, version: order.version });
    if (this.c.online()) await this.send(item);
    else this.c.notices.notify('info', `Offline: the change to #${order.id} is queued.`);
  }

  async remove(order: Order): Promise<void> {
    if (this.c.identity.refuseLocally('admin', 'delete orders')) return;
    this.overlays.set(order.id, { kind: 'delete' });
    this.c.emit();
    const item = this.c.queue.add({ kind: 'delete', id: order.id, version: order.version });
    if (this.c.online()) await this.send(item);
    else this.c.notices.notify('info', `Offline: the deletion of #${order.id} is queued.`);
  }

  /**
   * Sends one queued action. `done` and `problem` take it off the queue (the server has decided);
   * `retry` leaves it for the next flush.
   */
  private async send(
    item: QueuedAction,
    { fromForm = false } = {},
  ): Promise<{ kind: 'done' } | { kind: 'retry' } | { kind: 'problem'; problem: api.Problem }> {
    const { store, queue } = this.c;
    try {
      if (item.kind === 'create') {
        const order = await api.createOrder(item.body, item.key);
        this.ownIds.add(order.id);
        this.c.notices.dropTopic('create');
        store.put(order);
      } else if (item.kind === 'update') {
        store.put(await api.updateOrder(item.id, item.patch, item.version));
      } else {
        await api.deleteOrder(item.id, item.version);
        store.markDeleted(item.id, item.version);
      }
      queue.remove(item.key);
      if (item.kind !== 'create') this.overlays.delete(item.id);
      this.lockedInARow = 0;
      this.c.emit();
      return { kind: 'done' };
    } catch (err) {
      if (err instanceof api.NetworkError) {
        // Not reached, or the database is down (503): find out which, and when it is back.
        this.c.unreachable();
        return { kind: 'retry' };
      }
      if (!(err instanceof api.ApiProblem)) throw err;
      if (err.problem.code === 'idempotency-key-in-use') return { kind: 'retry' };
      if (err.problem.code === 'locked') {
        this.sendAgainLater(item);
        return { kind: 'retry' };
      }
      // The token is no longer accepted: the session is ending. The action stays queued under this
      // identity, to be sent if it signs in again.
      if (err.status === 401) return { kind: 'retry' };
      if (err.status === 403) void this.c.identity.refresh(this.c.stopped);
      this.lockedInARow = 0;
      queue.remove(item.key);
      if (!(fromForm && item.kind === 'create')) this.refused(item, err.problem);
      return { kind: 'problem', problem: err.problem };
    }
  }

  private refused(item: QueuedAction, problem: api.Problem): void {
    const { notices, store } = this.c;
    if (item.kind === 'create') {
      // A queued create refused later has no form left, so say it here (a form's own create says it
      // under its fields and never comes here).
      const who = item.body.customer_name ? `The order for ${item.body.customer_name}` : 'A queued order';
      const fields = problem.errors?.map((e) => `${e.field.replace(/^body\./, '')} ${e.message}`).join(', ');
      notices.notify('error', `${who} was refused: ${fields || problem.detail}`, 'create');
      return;
    }
    this.overlays.delete(item.id);
    this.rolledBack.set(item.id, Date.now());
    if (problem.order) store.put(problem.order);
    const what = item.kind === 'delete' ? 'delete' : describePatch(item.patch);
    if (problem.status === 412) {
      notices.addConflict({
        id: item.id,
        patch: item.kind === 'update' ? item.patch : null,
        newer: problem.order ?? null,
        detail: problem.detail,
      });
    } else if (problem.status === 404) {
      store.markDeleted(item.id, store.versionOf(item.id));
      notices.notify('error', `Could not ${what} #${item.id}: it no longer exists.`);
    } else {
      const allowed = problem.allowed_next_statuses;
      const hint = allowed ? (allowed.length ? ` Allowed next: ${allowed.join(', ')}.` : ' Its status is final.') : '';
      notices.notify('error', `Could not ${what} #${item.id}; rolled back. ${problem.detail}${hint}`);
    }
    this.c.emit();
  }

  /** The order is held by another transaction: say so once, and send the queue again after a wait. */
  private sendAgainLater(item: QueuedAction): void {
    if (this.lockedInARow++ === 0) {
      const what = item.kind === 'create' ? 'The new order' : `#${item.id}`;
      this.c.notices.notify(
        'info',
        `${what} is held by another transaction (a program changed it and has not committed yet): your change is queued and is sent again until it goes through.`,
      );
    }
    if (this.lockedRetry) clearTimeout(this.lockedRetry);
    const delay = Math.min(30_000, 2000 * 2 ** Math.min(4, this.lockedInARow - 1));
    this.lockedRetry = setTimeout(() => {
      this.lockedRetry = null;
      if (!this.c.stopped()) void this.flushQueue();
    }, delay);
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
      for (let item = this.c.queue.peek(); item && !this.c.stopped(); item = this.c.queue.peek()) {
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
    if (!refused.length) this.c.notices.notify('info', `Sent ${sent} queued ${noun(sent)}.`);
    else {
      const head = sent ? `Sent ${sent} of ${tried} queued actions; ` : `${refused.length} queued ${noun(refused.length)}: `;
      this.c.notices.notify('error', `${head}refused: ${refused.join('; ')}.`);
    }
  }
}

/** "change the status to shipped for #12", "delete #12", "create the order for Ada". */
export function describeAction(item: QueuedAction): string {
  if (item.kind === 'create') return `create the order for ${item.body.customer_name}`;
  if (item.kind === 'delete') return `delete #${item.id}`;
  return `${describePatch(item.patch)} #${item.id}`;
}

export function describePatch(patch: api.OrderPatch): string {
  if (patch.status && Object.keys(patch).every((k) => k === 'status' || k === 'reason')) return `change the status to ${patch.status} for`;
  return 'edit';
}
