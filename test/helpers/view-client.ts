import WebSocket from 'ws';
import type { Order } from '../../src/contract/protocol.js';
import { waitFor } from './wait.js';

/**
 * A client of one view, as docs/protocol.md describes it: live totals (GET /orders/stats + its
 * X-Change-Cursor), the first page of its filter (GET /orders?status=&q=), the stream from the stats'
 * cursor with the same filter and `stats=1`, applying rows by version (`leave` removes) and adding every
 * message's `stats`. It records what it receives so tests can judge the stream.
 */
export interface Totals {
  byStatus: Map<string, { count: number; cents: bigint }>;
  perMinute: Map<string, number>;
}

export interface ViewMessage {
  changes: { op: string; order: Order; old: Order | null; view?: 'enter' | 'leave' | 'stay' }[];
  cursor: string;
  more?: true;
  stats?: { by_status: Record<string, { count: number; total_cents: number }>; per_minute: Record<string, number> };
}

export function totalsOf(stats: {
  by_status: Record<string, { count: number; total_cents: number | string }>;
  per_minute: { minute: string; count: number }[];
}): Totals {
  const byStatus = new Map<string, { count: number; cents: bigint }>();
  for (const [s, v] of Object.entries(stats.by_status))
    if (v.count !== 0) byStatus.set(s, { count: v.count, cents: BigInt(v.total_cents) });
  return { byStatus, perMinute: new Map(stats.per_minute.map((m) => [m.minute, m.count])) };
}

export class ViewClient {
  readonly rows = new Map<number, { version: number; present: boolean; order: Order }>();
  totals: Totals = { byStatus: new Map(), perMinute: new Map() };
  readonly received: { key: string; view: string | undefined; session: number }[] = [];
  readonly messages: ViewMessage[] = [];
  cursor = '';
  socket: WebSocket | null = null;
  private session = 0;

  constructor(
    readonly http: string,
    readonly ws: string,
    /** `status=…&q=…` (may be empty). */
    readonly filter: string,
    readonly headers: Record<string, string> = {},
  ) {}

  async load(): Promise<void> {
    const stats = await fetch(`${this.http}/orders/stats`, { headers: this.headers });
    if (stats.status !== 200) throw new Error(`GET /orders/stats answered ${stats.status}`);
    this.cursor = stats.headers.get('x-change-cursor') ?? '';
    if (!this.cursor) throw new Error('GET /orders/stats without X-Change-Cursor');
    this.totals = totalsOf((await stats.json()) as Parameters<typeof totalsOf>[0]);
    const list = await fetch(`${this.http}/orders?limit=1000&${this.filter}`, { headers: this.headers });
    if (list.status !== 200) throw new Error(`GET /orders answered ${list.status}`);
    if (list.headers.get('link')) throw new Error('more than one page');
    this.rows.clear();
    for (const o of (await list.json()) as Order[]) this.rows.set(o.id, { version: o.version, present: true, order: o });
  }

  async connect(): Promise<void> {
    const session = ++this.session;
    const url = `${this.ws}?after=${encodeURIComponent(this.cursor)}&stats=1${this.filter ? `&${this.filter}` : ''}`;
    const socket = new WebSocket(url, ['orders.v1'], { perMessageDeflate: false, headers: this.headers });
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.type === 'hello') resolve();
        else if (m.type === 'changes') this.apply(m as ViewMessage, session);
        else if (m.type === 'heartbeat') this.cursor = m.cursor;
        else if (m.type === 'reset' || m.type === 'error') reject(new Error(JSON.stringify(m)));
      });
      socket.on('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
      socket.on('error', reject);
    });
  }

  private apply(m: ViewMessage, session: number): void {
    this.messages.push(m);
    for (const c of m.changes) {
      this.received.push({ key: `${c.order.id}:${c.order.version}`, view: c.view, session });
      const held = this.rows.get(c.order.id);
      if (held && held.version >= c.order.version) continue;
      this.rows.set(c.order.id, { version: c.order.version, present: c.op !== 'delete' && c.view !== 'leave', order: c.order });
    }
    if (m.stats) {
      for (const [s, d] of Object.entries(m.stats.by_status)) {
        const t = this.totals.byStatus.get(s) ?? { count: 0, cents: 0n };
        t.count += d.count;
        t.cents += BigInt(d.total_cents);
        if (t.count === 0 && t.cents === 0n) this.totals.byStatus.delete(s);
        else this.totals.byStatus.set(s, t);
      }
      for (const [minute, n] of Object.entries(m.stats.per_minute))
        this.totals.perMinute.set(minute, (this.totals.perMinute.get(minute) ?? 0) + n);
    }
    if (!m.more) this.cursor = m.cursor;
  }

  /** Ids (with versions) of the rows in the view now. */
  visible(): string[] {
    return [...this.rows.values()]
      .filter((r) => r.present)
      .map((r) => `${r.order.id}:${r.version}`)
      .sort();
  }

  async disconnect(): Promise<void> {
    const s = this.socket;
    if (!s || s.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.close(1000);
    await closed;
  }
}

/** What GET /orders?<filter> and GET /orders/stats say now, in the client's terms. */
export async function truth(
  http: string,
  filter: string,
  headers: Record<string, string> = {},
): Promise<{ visible: string[]; totals: Totals }> {
  const list = (await (await fetch(`${http}/orders?limit=1000&${filter}`, { headers })).json()) as Order[];
  const stats = (await (await fetch(`${http}/orders/stats`, { headers })).json()) as Parameters<typeof totalsOf>[0];
  return { visible: list.map((o) => `${o.id}:${o.version}`).sort(), totals: totalsOf(stats) };
}

/** The client's totals agree with the server's (per-minute counts on the minutes the server lists). */
export function sameTotals(client: Totals, server: Totals): boolean {
  if (client.byStatus.size !== server.byStatus.size) return false;
  for (const [s, v] of server.byStatus) {
    const c = client.byStatus.get(s);
    if (!c || c.count !== v.count || c.cents !== v.cents) return false;
  }
  for (const [minute, n] of server.perMinute) if ((client.perMinute.get(minute) ?? 0) !== n) return false;
  return true;
}

export async function settled(client: ViewClient, timeout = 15_000): Promise<void> {
  let last: unknown;
  await waitFor(
    async () => {
      const t = await truth(client.http, client.filter, client.headers);
      last = { client: client.visible(), server: t.visible };
      return JSON.stringify(client.visible()) === JSON.stringify(t.visible) && sameTotals(client.totals, t.totals);
    },
    { timeout, interval: 100, message: `view ${client.filter} equal to the table` },
  ).catch((err) => {
    throw new Error(`${(err as Error).message}: ${JSON.stringify(last).slice(0, 2000)}`);
  });
}
