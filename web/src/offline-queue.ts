import type { Me, OrderCreate, OrderPatch } from './api.ts';

/**
 * Actions taken while the page cannot reach the server. They are written to localStorage before the
 * page says "queued", so a reload (or a crash) loses none, and sent in order when the connection is
 * back. Each create carries the Idempotency-Key it was given when it was queued: if the page sends it,
 * loses the answer and sends it again (after a reload, say), the server replays the first outcome
 * instead of making a second order. An entry leaves the queue only once the server has answered it.
 *
 * Each entry belongs to the identity that queued it (its `owner`, from GET /me: role and name). One
 * browser can be signed in as different people over time, and an action someone queued must never be
 * sent with someone else's token, so the queue only shows and sends the entries of the identity signed
 * in now. The others are held, not dropped: the person who queued them gets them back (and sent) when
 * they sign in again, and anyone signed in sees that some are held and may discard them.
 */
type Entry<T> = T & { key: string; queuedAt: number; owner?: string };

export type QueuedAction =
  | Entry<{ kind: 'create'; body: OrderCreate }>
  | Entry<{ kind: 'update'; id: number; patch: OrderPatch; version: number }>
  | Entry<{ kind: 'delete'; id: number; version: number }>;

export type NewQueuedAction =
  | { kind: 'create'; body: OrderCreate }
  | { kind: 'update'; id: number; patch: OrderPatch; version: number }
  | { kind: 'delete'; id: number; version: number };

const STORAGE_KEY = 'orders-dashboard.queue.v1';

/** With authentication off everyone is the same local admin; entries from before owners existed are theirs. */
const LOCAL_OWNER = 'local';

export function ownerOf(me: Me): string {
  return me.authentication ? `${me.role}:${me.name}` : LOCAL_OWNER;
}

function newKey(): string {
  return crypto.randomUUID();
}

export class OfflineQueue {
  /** Every entry in storage, held ones included. */
  private items: QueuedAction[];
  private listeners = new Set<() => void>();

  constructor(
    private owner: string,
    private readonly storage: Storage = localStorage,
  ) {
    this.items = this.read();
    // Another tab of the dashboard may flush or add: follow it.
    window.addEventListener('storage', this.onStorage);
  }

  private readonly onStorage = (event: StorageEvent): void => {
    if (event.key !== STORAGE_KEY) return;
    this.items = this.read();
    this.emit();
  };

  /** Stops following other tabs (the page signed out). */
  close(): void {
    window.removeEventListener('storage', this.onStorage);
    this.listeners.clear();
  }

  /** The identity changed (its role did): entries are now sent and shown for this one. */
  setOwner(owner: string): void {
    this.owner = owner;
    this.emit();
  }

  private isMine = (item: QueuedAction): boolean => (item.owner ?? LOCAL_OWNER) === this.owner;

  private read(): QueuedAction[] {
    try {
      const parsed = JSON.parse(this.storage.getItem(STORAGE_KEY) ?? '[]') as unknown;
      return Array.isArray(parsed) ? (parsed as QueuedAction[]) : [];
    } catch {
      return [];
    }
  }

  private write(): void {
    this.storage.setItem(STORAGE_KEY, JSON.stringify(this.items));
    this.emit();
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The signed-in identity's entries. */
  get size(): number {
    return this.items.filter(this.isMine).length;
  }

  get all(): readonly QueuedAction[] {
    return this.items.filter(this.isMine);
  }

  /** Entries queued by another identity, kept for it. */
  get held(): number {
    return this.items.length - this.size;
  }

  discardHeld(): void {
    this.items = this.read().filter(this.isMine);
    this.write();
  }

  add(action: NewQueuedAction): QueuedAction {
    const item = { ...action, key: newKey(), queuedAt: Date.now(), owner: this.owner } as QueuedAction;
    this.items = [...this.read(), item];
    this.write();
    return item;
  }

  remove(key: string): void {
    this.items = this.read().filter((i) => i.key !== key);
    this.write();
  }

  /** The signed-in identity's oldest entry. */
  peek(): QueuedAction | undefined {
    this.items = this.read();
    return this.items.find(this.isMine);
  }
}
