import type { OrderCreate, OrderPatch } from './api.ts';

/**
 * Actions taken while the page cannot reach the server. They are written to localStorage before the
 * page says "queued", so a reload (or a crash) loses none, and sent in order when the connection is
 * back. Each create carries the Idempotency-Key it was given when it was queued: if the page sends it,
 * loses the answer and sends it again (after a reload, say), the server replays the first outcome
 * instead of making a second order. An entry leaves the queue only once the server has answered it.
 */
export type QueuedAction =
  | { kind: 'create'; key: string; body: OrderCreate; queuedAt: number }
  | { kind: 'update'; key: string; id: number; patch: OrderPatch; version: number; queuedAt: number }
  | { kind: 'delete'; key: string; id: number; version: number; queuedAt: number };

export type NewQueuedAction =
  | { kind: 'create'; body: OrderCreate }
  | { kind: 'update'; id: number; patch: OrderPatch; version: number }
  | { kind: 'delete'; id: number; version: number };

const STORAGE_KEY = 'orders-dashboard.queue.v1';

export function newKey(): string {
  return crypto.randomUUID();
}

export class OfflineQueue {
  private items: QueuedAction[];
  private listeners = new Set<() => void>();

  constructor(private readonly storage: Storage = localStorage) {
    this.items = this.read();
    // Another tab of the dashboard may flush or add: follow it.
    window.addEventListener('storage', (event) => {
      if (event.key !== STORAGE_KEY) return;
      this.items = this.read();
      this.emit();
    });
  }

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

  get size(): number {
    return this.items.length;
  }

  get all(): readonly QueuedAction[] {
    return this.items;
  }

  add(action: NewQueuedAction): QueuedAction {
    const item = { ...action, key: newKey(), queuedAt: Date.now() } as QueuedAction;
    this.items = [...this.read(), item];
    this.write();
    return item;
  }

  remove(key: string): void {
    this.items = this.read().filter((i) => i.key !== key);
    this.write();
  }

  peek(): QueuedAction | undefined {
    this.items = this.read();
    return this.items[0];
  }
}
