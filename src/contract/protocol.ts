import type { OrderStatus } from './statuses.js';

/**
 * The WebSocket protocol between the service and its clients (the dashboard among them). Part of the
 * contract (src/contract/) imported by the server and by web/: every message either side may send. docs/protocol.md
 * explains it with an example client.
 *
 * A cursor is an opaque string saying which changes a client has (a database snapshot). A client keeps
 * the cursor of the last `changes` message (or heartbeat) it processed and passes it as
 * `/ws?after=<cursor>` to resume: it then receives every change it lacks exactly once, whole
 * transactions at a time, each row's changes in version order.
 */
export interface Order {
  id: number;
  customer_name: string;
  product_name: string;
  quantity: number;
  total_cents: number;
  notes: string;
  status: OrderStatus;
  version: number;
  created_at: string;
  updated_at: string;
}

export interface Change {
  op: 'insert' | 'update' | 'delete';
  /** The row after the change. For a delete: the row as it was, with `version` one past its last. */
  order: Order;
  /** The row before the change (null for an insert). */
  old: Order | null;
  /** When the change was written, ISO 8601 UTC. */
  at: string;
  /**
   * On a filtered stream (`/ws?status=…&q=…`): the row enters the view (it matches only after the
   * change), leaves it (only before: remove it), or stays in it. Absent on an unfiltered stream.
   */
  view?: 'enter' | 'leave' | 'stay';
}

/**
 * What the changes of a message did to `GET /orders/stats` (with `/ws?stats=1`): add it to stats read
 * at an earlier cursor. Only what changed is listed. `total_cents` is an exact integer (see money.ts in
 * web/ for reading it past 2^53).
 */
export interface StatsDelta {
  by_status: Partial<Record<OrderStatus, { count: number; total_cents: number | bigint }>>;
  /** Created minute ('YYYY-MM-DDTHH:MM:00Z') → change of its count. */
  per_minute: Record<string, number>;
}

export type ServerMessage =
  | { type: 'hello'; cursor: string; heartbeat_ms: number; server: string }
  | {
      type: 'changes';
      /** Whole transactions, in the order they became visible. */
      changes: Change[];
      /** What the client has once it has applied this message: keep it to resume. */
      cursor: string;
      /** The last transaction goes on in the next message (it is larger than one message). */
      more?: true;
      /** With `stats=1`: what this message's transactions (all of them, whatever the filter) did to the totals. */
      stats?: StatsDelta;
    }
  | { type: 'heartbeat'; cursor: string }
  | { type: 'reset'; reason: ResetReason; detail: string }
  | { type: 'pong' }
  | { type: 'error'; code: ClientErrorCode; detail: string };

/** After `reset` the server closes with CLOSE_RESET: reload the snapshot and reconnect with its cursor. */
export type ResetReason = 'cursor-expired' | 'cursor-unknown' | 'cursor-malformed';

export type ClientErrorCode = 'malformed-message' | 'unknown-message-type' | 'rate-limited';

export type ClientMessage = { type: 'ping' };

/**
 * The query of `/ws`: `after` (a cursor), the view (`status`, comma-separated, and `q`, as on
 * GET /orders; a scoped token's scope is applied on top) and `stats=1` for live totals. To change the
 * view, reconnect with the new filter and the cursor of a snapshot taken for it.
 */
export interface StreamQuery {
  after?: string;
  status?: string;
  q?: string;
  stats?: '1';
}

/** WebSocket close codes the server uses. */
export const CLOSE = {
  /** Server restarting (rolling restart): reconnect with jitter and resume. */
  RESTART: 1012,
  /** The client fell too far behind: reconnect and resume from the last cursor. */
  SLOW_CONSUMER: 1013,
  /** Policy violation (message flood, bad origin or credentials). */
  POLICY: 1008,
  /** The cursor could not be resumed; a `reset` message preceded this. */
  RESET: 4001,
} as const;
