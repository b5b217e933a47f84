import type { Order } from '../../src/contract/protocol.ts';
import type { Role } from '../../src/contract/roles.ts';
import type { SortDirection, SortKey } from '../../src/contract/sort-order.ts';
import type { OrderStatus } from '../../src/contract/statuses.ts';
import { parseStatsJson, type Stats } from './money.ts';

export type { Role };

/**
 * The REST API as the dashboard uses it. Every refusal becomes an ApiProblem carrying the server's
 * problem+json body, so views can show `errors[].message` next to the field it names; a request that
 * never reached the server (offline, connection refused) becomes a NetworkError, which the offline queue
 * treats as "try again later".
 *
 * When the server requires authentication, every request carries the signed-in token as
 * `Authorization: Bearer`; a 401 on any of them (the token was revoked) is reported once to whoever set
 * the credentials, which takes the page back to the sign-in screen.
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
  /** 403 forbidden: the caller's role and the one the route needs. */
  role?: Role;
  required?: Role;
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

/** `reason` is not a field of the order: the server keeps it in the order's history (e.g. why it was cancelled). */
export type OrderPatch = Partial<OrderCreate> & { reason?: string };

export type { Stats };

export interface OrdersPage {
  orders: Order[];
  cursor: string;
  /** Orders in the view, and how many come before this page (X-Total-Count, X-Page-Offset). */
  total: number;
  offset: number;
  /** The `page` token of the next page, from the Link header; null on the last page. */
  next: string | null;
}

export interface ViewFilter {
  statuses: readonly OrderStatus[];
  q: string;
}

export interface ListQuery extends ViewFilter {
  sort: SortKey;
  dir: SortDirection;
  limit: number;
  page?: string | null;
}

/** GET /me. With authentication off the server answers role admin and `authentication: false`. */
export interface Me {
  name: string;
  role: Role;
  authentication: boolean;
  /** ISO 4217 code of every amount; absent from an older server or saved sign-in (then USD). */
  currency?: string;
}

interface Credentials {
  token: string | null;
  onUnauthorized: (problem: Problem) => void;
}

let credentials: Credentials = { token: null, onUnauthorized: () => undefined };

/** The token every later request carries (null: none), and who to tell when the server stops accepting it. */
export function setCredentials(token: string | null, onUnauthorized: (problem: Problem) => void = () => undefined): void {
  credentials = { token, onUnauthorized };
}

export function currentToken(): string | null {
  return credentials.token;
}

export async function request(
  method: string,
  path: string,
  body?: unknown,
  extra: Record<string, string> = {},
  candidate?: { token: string | null },
): Promise<Response> {
  const token = candidate ? candidate.token : credentials.token;
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}`, ...extra } : { ...extra };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const asked = credentials;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
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
  // Only a refusal of the credentials in force when the request left: an answer to an old token
  // arriving after a new sign-in says nothing about the new one.
  if (res.status === 401 && !candidate && credentials === asked) asked.onUnauthorized(problem);
  throw new ApiProblem(problem);
}

/**
 * Who `token` is (null: no token). Used at sign-in, before the token is the page's, so a 401 here is
 * just an answer (wrong token), not a session ending.
 */
export async function fetchMe(token: string | null): Promise<Me> {
  return (await (await request('GET', '/me', undefined, {}, { token })).json()) as Me;
}

/** GET /me with the page's token: a 401 ends the session like any other request's. */
export async function whoAmI(): Promise<Me> {
  return (await (await request('GET', '/me')).json()) as Me;
}

function filterParams(view: ViewFilter): URLSearchParams {
  const params = new URLSearchParams();
  if (view.statuses.length) params.set('status', view.statuses.join(','));
  if (view.q) params.set('q', view.q);
  return params;
}

export function listPath(query: ListQuery): string {
  const params = filterParams(query);
  params.set('sort', query.sort);
  params.set('dir', query.dir);
  params.set('limit', String(query.limit));
  if (query.page) params.set('page', query.page);
  return `/orders?${params.toString()}`;
}

export async function listOrders(query: ListQuery): Promise<OrdersPage> {
  const res = await request('GET', listPath(query));
  const orders = (await res.json()) as Order[];
  const link = res.headers.get('link') ?? '';
  const next = /[?&]page=([\w-]+)[^>]*>;\s*rel="next"/.exec(link);
  return {
    orders,
    cursor: res.headers.get('x-change-cursor') ?? '',
    total: Number(res.headers.get('x-total-count') ?? orders.length),
    offset: Number(res.headers.get('x-page-offset') ?? 0),
    next: next?.[1] ?? null,
  };
}

/** /orders/stats (of the token's scope, with the view's count) and its cursor: stream from it with `stats=1`. */
export async function fetchStats(view: ViewFilter = { statuses: [], q: '' }): Promise<{ stats: Stats; cursor: string }> {
  const params = filterParams(view).toString();
  const res = await request('GET', `/orders/stats${params ? `?${params}` : ''}`);
  return { stats: parseStatsJson(await res.text()), cursor: res.headers.get('x-change-cursor') ?? '' };
}

/** GET /orders.csv of a view, as a file (fetched with the page's token, so it cannot be a plain link). */
export async function exportCsv(query: Omit<ListQuery, 'limit' | 'page'>): Promise<{ blob: Blob; filename: string }> {
  const params = filterParams(query);
  params.set('sort', query.sort);
  params.set('dir', query.dir);
  const res = await request('GET', `/orders.csv?${params.toString()}`);
  const filename = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'orders.csv';
  return { blob: await res.blob(), filename };
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
