import type { Order } from '../../src/contract/protocol.ts';
import { canMove, type OrderStatus } from '../../src/contract/statuses.ts';
import * as api from './api.ts';

/**
 * A bulk status move: one PATCH per order, each with `If-Match` on the version the operator saw, so
 * every order gets the server's own answer (its transition rules, a conflict with someone else's change,
 * a scope, a role), its own history entry, and nothing is decided for it by the page. Per-order
 * requests rather than a bulk endpoint: the same rules and refusals as a single move, no second write
 * path to secure, and a page holds at most a page of selected orders. Four run at a time, so a hundred
 * orders take about a second and the server sees no burst. An order held by another transaction is
 * tried again for a few seconds before it is reported as not moved (never as refused).
 */
export type BulkOutcome =
  | { id: number; kind: 'moved'; order: Order }
  | { id: number; kind: 'refused'; detail: string; current?: Order | null }
  | { id: number; kind: 'unreachable'; detail: string };

const CONCURRENCY = 4;

/** The moves the selection allows: a status at least one selected order can move to. */
export function bulkTargets(orders: readonly Order[], statuses: readonly OrderStatus[]): OrderStatus[] {
  return statuses.filter((to) => orders.some((o) => o.status !== to && canMove(o.status, to)));
}

export async function moveAll(
  orders: readonly Order[],
  to: OrderStatus,
  reason: string,
  onOutcome: (outcome: BulkOutcome) => void,
): Promise<BulkOutcome[]> {
  const outcomes: BulkOutcome[] = [];
  const queue = [...orders];
  const patch: api.OrderPatch = reason.trim() ? { status: to, reason: reason.trim() } : { status: to };
  const worker = async () => {
    for (let order = queue.shift(); order; order = queue.shift()) {
      const outcome = await moveOne(order, patch);
      outcomes.push(outcome);
      onOutcome(outcome);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, orders.length) }, worker));
  const position = new Map(orders.map((o, i) => [o.id, i]));
  return outcomes.sort((a, b) => (position.get(a.id) ?? 0) - (position.get(b.id) ?? 0));
}

/**
 * An order another transaction holds (409 `locked`: a program changed it and has not committed) is no
 * refusal: its move is sent again after these waits, from the same version (if the other program
 * commits a change meanwhile, the next answer is the 412 of any change made since the selection).
 */
const LOCKED_RETRY_MS = [2000, 4000];

async function moveOne(order: Order, patch: api.OrderPatch): Promise<BulkOutcome> {
  for (let attempt = 0; ; attempt++) {
    try {
      return { id: order.id, kind: 'moved', order: await api.updateOrder(order.id, patch, order.version) };
    } catch (err) {
      if (err instanceof api.ApiProblem) {
        const p = err.problem;
        if (p.code === 'locked') {
          const wait = LOCKED_RETRY_MS[attempt];
          if (wait !== undefined) {
            await new Promise((r) => setTimeout(r, wait));
            continue;
          }
          return {
            id: order.id,
            kind: 'unreachable',
            detail: 'not moved: another transaction still holds it (a program changed it and has not committed yet); try again later',
          };
        }
        const detail =
          p.status === 412
            ? `changed by someone else since you selected it${p.order ? ` (it is now ${p.order.status}, version ${p.order.version})` : ''}; not moved`
            : p.status === 404
              ? 'it no longer exists'
              : p.detail;
        return { id: order.id, kind: 'refused', detail, current: p.order ?? null };
      }
      return { id: order.id, kind: 'unreachable', detail: `not sent: ${(err as Error).message}` };
    }
  }
}
