/**
 * The WebSocket protocol between the service and its clients (the dashboard among them). This file is
 * imported by the server and by web/, and describes every message either side may send. docs/protocol.md
 * explains it with an example client.
 *
 * A cursor is an opaque string naming a position in the change feed. A client keeps the cursor of the
 * last change (or heartbeat) it processed and passes it as `/ws?after=<cursor>` to resume: it then
 * receives every later change exactly once, in feed order.
 */
export type OrderStatus = 'pending' | 'processing' | 'shipped' | 'delivered' | 'cancelled';

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
  cursor: string;
  op: 'insert' | 'update' | 'delete';
  /** The row after the change. For a delete: the row as it was, with `version` one past its last. */
  order: Order;
  /** The row before the change (null for an insert). */
  old: Order | null;
  /** When the change was written, ISO 8601 UTC. */
  at: string;
}

export type ServerMessage =
  | { type: 'hello'; cursor: string; heartbeat_ms: number; server: string }
  | { type: 'changes'; changes: Change[] }
  | { type: 'heartbeat'; cursor: string }
  | { type: 'reset'; reason: ResetReason; detail: string }
  | { type: 'pong' }
  | { type: 'error'; code: ClientErrorCode; detail: string };

/** After `reset` the server closes with CLOSE_RESET: reload the snapshot and reconnect with its cursor. */
export type ResetReason = 'cursor-expired' | 'cursor-unknown' | 'cursor-malformed';

export type ClientErrorCode = 'malformed-message' | 'unknown-message-type' | 'rate-limited';

export type ClientMessage = { type: 'ping' };

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
