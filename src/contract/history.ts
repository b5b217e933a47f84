/**
 * An entry of an order's history, as GET /orders/:id/history and GET /orders/history return it (README,
 * The API; docs/api.md#history). orders/history.ts decides who is believed; the dashboard shows it.
 */
export type Actor =
  | { kind: 'token'; credential: string; name: string; role: string }
  | { kind: 'database'; user: string; application: string };

export interface HistoryEntry {
  id: number;
  order_id: number;
  op: 'insert' | 'update' | 'delete';
  version: number;
  at: string;
  /** field → [old, new]; an insert's every field as [null, value]; a delete's empty. */
  changes: Record<string, [unknown, unknown]>;
  reason: string | null;
  actor: Actor;
}
