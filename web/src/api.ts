import type { Order, OrderStatus } from '../../src/protocol.ts';

/**
 * The REST API as the dashboard uses it. Every refusal becomes an ApiProblem carrying the server's
 * problem+json body, so views can show `errors[].message` next to the field it names; a request that
 * never reached the server (offline, connection refused) becomes a NetworkError, which the offline queue
 * treats as "try again later".
 */
export interface FieldError {
  field: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  errors?: FieldError[];
  /** 412: the order as it is now. */
  order?: Order | null;
  current_version?: number;
  /** 409 invalid-transition. */
  allowed_next_statuses?: OrderStatus[];
}

export class ApiProblem extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail || problem.title);
    this.name = 'ApiProblem';
  }
  get status(): number {
    return this.problem.status;
  }
}

export class NetworkError extends Error {
  override name = 'NetworkError';
}

export interface OrderCreate {
  customer_name: string;
  product_name: string;
  quantity?: number;
  total_cents?: number;
  notes?: string;
  status?: OrderStatus;
}

export type OrderPatch = Partial<OrderCreate>;

export interface Stats {
  total_orders: number;
  total_cents: number;
  by_status: Record<string, { count: number; total_cents: number }>;
  per_minute: { minute: string; count: number }[];
}

export interface OrdersPage {
  orders: Order[];
  cursor: string;
  /** The `before` id of the next page, from the Link header; null on the last page. */
  nextBefore: number | null;
}

export interface ListQuery {
  statuses: readonly OrderStatus[];
  q: string;
  limit: number;
  before?: number;
}

async function request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new NetworkError((err as Error).message);
  }
  if (res.ok) return res;
  let problem: Problem;
  try {
    problem = (await res.json()) as Problem;
  } catch {
    problem = { type: 'about:blank', title: res.statusText, status: res.status, detail: `HTTP ${res.status}`, code: 'unknown' };
  }
  // A gateway or a restarting server answers 502/503: as far as the queue is concerned, not reached.
  if (res.status === 502 || res.status === 503 || res.status === 504) throw new NetworkError(problem.detail);
  throw new ApiProblem(problem);
}

export function listPath(query: ListQuery): string {
  const params = new URLSearchParams();
  if (query.statuses.length) params.set('status', query.statuses.join(','));
  if (query.q) params.set('q', query.q);
  params.set('limit', String(query.limit));
  if (query.before !== undefined) params.set('before', String(query.before));
  return `/orders?${params.toString()}`;
}

export async function listOrders(query: ListQuery): Promise<OrdersPage> {
  const res = await request('GET', listPath(query));
  const orders = (await res.json()) as Order[];
  const link = res.headers.get('link') ?? '';
  const next = /[?&]before=(\d+)[^>]*>;\s*rel="next"/.exec(link);
  return { orders, cursor: res.headers.get('x-change-cursor') ?? '', nextBefore: next ? Number(next[1]) : null };
}

export async function fetchStats(): Promise<Stats> {
  return (await (await request('GET', '/orders/stats')).json()) as Stats;
}

export async function createOrder(input: OrderCreate, idempotencyKey: string): Promise<Order> {
  return (await (await request('POST', '/orders', input, { 'idempotency-key': idempotencyKey })).json()) as Order;
}

export async function updateOrder(id: number, patch: OrderPatch, version?: number): Promise<Order> {
  const headers: Record<string, string> = version === undefined ? {} : { 'if-match': `"${version}"` };
  return (await (await request('PATCH', `/orders/${id}`, patch, headers)).json()) as Order;
}

export async function deleteOrder(id: number, version?: number): Promise<void> {
  await request('DELETE', `/orders/${id}`, undefined, version === undefined ? {} : { 'if-match': `"${version}"` });
}
