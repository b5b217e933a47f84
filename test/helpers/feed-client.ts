import type pg from 'pg';
import WebSocket from 'ws';
import type { Change, Order, ServerMessage } from '../../src/contract/protocol.js';
import { has, parseCursor } from '../../src/feed/cursor.js';
import { waitFor } from './wait.js';

/**
 * A dashboard as the protocol describes it (docs/protocol.md), on a real socket: it loads a snapshot
 * (GET /orders + X-Change-Cursor), streams `/ws?after=<cursor>`, applies changes by version (deletes as
 * tombstones), keeps the cursor of the last message or heartbeat, resumes with it, and on `reset` reloads
 * the snapshot. It records everything it receives so the checker below can judge the stream. A change
 * is known by its order and version (`key`), which the triggers make unique.
 *
 * An epoch is one unbroken line of history: it starts at a snapshot (or at the first hello) and goes on
 * across resumes; a reset starts a new one.
 */
export interface Received {
  /** `<order id>:<version>`: names the change. */
  key: string;
  op: Change['op'];
  id: number;
  version: number;
  session: number;
}

export interface Epoch {
  base: string;
  received: Received[];
}

interface ViewEntry {
  version: number;
  deleted: boolean;
  order: Order;
}

export interface TestFeedClientOptions {
  /** Base URLs; functions so a client can move to another instance. */
  http: string;
  ws: string;
  name?: string;
  /** After a reset: reload the snapshot and reconnect on its own. */
  autoResync?: boolean;
}

export class TestFeedClient {
  readonly name: string;
  http: string;
  wsUrl: string;
  readonly view = new Map<number, ViewEntry>();
  readonly epochs: Epoch[] = [];
  readonly resets: Extract<ServerMessage, { type: 'reset' }>[] = [];
  readonly errors: Extract<ServerMessage, { type: 'error' }>[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  readonly hellos: Extract<ServerMessage, { type: 'hello' }>[] = [];
  /** Why automatic resyncs failed (the snapshot could not be loaded, the stream not opened). */
  readonly resyncFailures: string[] = [];
  heartbeats = 0;
  pongs = 0;
  cursor: string | undefined;
  socket: WebSocket | null = null;
  /** When each change arrived, by key (for latency checks). */
  readonly arrivedAt = new Map<string, number>();
  /** Every `changes` message, by the keys it held (for the whole-transaction check). */
  readonly messages: { keys: string[]; more: boolean; session: number }[] = [];
  private session = 0;
  private resyncing: Promise<void> | null = null;
  private closed = false;
  private readonly autoResync: boolean;

  constructor(options: TestFeedClientOptions) {
    this.http = options.http;
    this.wsUrl = options.ws;
    this.name = options.name ?? 'client';
    this.autoResync = options.autoResync ?? false;
  }

  get epoch(): Epoch | undefined {
    return this.epochs[this.epochs.length - 1];
  }

  get connected(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** Every change received in the current epoch. */
  get received(): Received[] {
    return this.epoch?.received ?? [];
  }

  /** The whole table as of one snapshot, and the cursor to stream from. Fails on more than one page. */
  async loadSnapshot(): Promise<void> {
    const res = await fetch(`${this.http}/orders?limit=1000`);
    if (res.status !== 200) throw new Error(`GET /orders answered ${res.status}`);
    if (res.headers.get('link')) throw new Error('more than one page of orders: the checker needs a single snapshot');
    const cursor = res.headers.get('x-change-cursor');
    if (!cursor) throw new Error('GET /orders without X-Change-Cursor');
    const orders = (await res.json()) as Order[];
    this.view.clear();
    for (const o of orders) this.view.set(o.id, { version: o.version, deleted: false, order: o });
    this.cursor = cursor;
    this.epochs.push({ base: cursor, received: [] });
  }

  /**
   * Opens the stream (with `after` = the current cursor, if any) and waits for hello, or for reset/close.
   * During an automatic resync it waits for that instead: a dashboard has one socket, and a second one
   * opened with the cursor just reset (another instance may still accept it) would stream into the
   * epoch the resync's snapshot begins, things that snapshot already has (test/soak-clients.test.ts).
   */
  async connect(): Promise<void> {
    while (this.resyncing) await this.resyncing.catch(() => undefined);
    if (this.connected) return;
    return this.open();
  }

  private async open(): Promise<void> {
    if (this.closed) throw new Error('client closed');
    if (this.socket && this.socket.readyState !== WebSocket.CLOSED) throw new Error('already connected');
    const session = ++this.session;
    const url = this.cursor === undefined ? this.wsUrl : `${this.wsUrl}?after=${encodeURIComponent(this.cursor)}`;
    const socket = new WebSocket(url, { perMessageDeflate: false });
    this.socket = socket;
    let settled = false;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      };
      socket.on('message', (data, isBinary) => {
        if (isBinary) {
          this.errors.push({ type: 'error', code: 'malformed-message', detail: 'binary frame from the server' });
          return;
        }
        const message = JSON.parse(data.toString()) as ServerMessage;
        this.onMessage(message, session);
        if (message.type === 'hello' || message.type === 'reset') done();
      });
      socket.on('close', (code, reason) => {
        this.closes.push({ code, reason: reason.toString() });
        done();
        if (code === 4001 && this.autoResync && !this.closed) this.resyncing ??= this.resync();
      });
      // With a listener for this event, ws leaves the handshake to the listener: abort it, or the socket
      // stays CONNECTING for good and every later connect() says "already connected".
      socket.on('unexpected-response', (_req, res) => {
        done(new Error(`upgrade answered ${res.statusCode}`));
        socket.terminate();
      });
      socket.on('error', (err) => done(err));
    });
  }

  private onMessage(message: ServerMessage, session: number): void {
    switch (message.type) {
      case 'hello':
        this.hellos.push(message);
        if (!this.epoch) this.epochs.push({ base: message.cursor, received: [] });
        if (this.cursor === undefined) this.cursor = message.cursor;
        break;
      case 'changes': {
        const now = Date.now();
        for (const c of message.changes) {
          const key = `${c.order.id}:${c.order.version}`;
          this.epoch?.received.push({ key, op: c.op, id: c.order.id, version: c.order.version, session });
          this.arrivedAt.set(key, now);
          const held = this.view.get(c.order.id);
          if (!held || c.order.version > held.version) {
            this.view.set(c.order.id, { version: c.order.version, deleted: c.op === 'delete', order: c.order });
          }
        }
        if (!message.more) this.cursor = message.cursor;
        this.messages.push({ keys: message.changes.map((c) => `${c.order.id}:${c.order.version}`), more: message.more === true, session });
        break;
      }
      case 'heartbeat':
        this.heartbeats++;
        this.cursor = message.cursor;
        break;
      case 'reset':
        this.resets.push(message);
        break;
      case 'error':
        this.errors.push(message);
        break;
      case 'pong':
        this.pongs++;
        break;
    }
  }

  private async resync(): Promise<void> {
    try {
      await this.loadSnapshot();
      await this.open();
    } catch (err) {
      this.resyncFailures.push((err as Error).message);
      throw err;
    } finally {
      this.resyncing = null;
    }
  }

  /** Waits for an automatic resync after a reset to finish. */
  async settledResync(): Promise<void> {
    await this.resyncing;
  }

  send(text: string): void {
    this.socket?.send(text);
  }

  /** Closes the stream (as a browser tab going away) and waits until it is closed. */
  async disconnect(): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.close(1000);
    const timer = setTimeout(() => socket.terminate(), 2000);
    await closed;
    clearTimeout(timer);
  }

  /** Waits for the server to close the stream, resolving with the close code. */
  async waitClosed(timeout = 10_000): Promise<number> {
    const socket = this.socket;
    if (!socket) throw new Error('never connected');
    if (socket.readyState !== WebSocket.CLOSED) {
      await waitFor(() => socket.readyState === WebSocket.CLOSED, { timeout, message: `${this.name} closed by the server` });
    }
    return this.closes[this.closes.length - 1]?.code ?? 0;
  }

  /**
   * Stops reading from the socket: the server's sends pile up in its buffers. ws.pause(), not a pause
   * of the TCP socket, which ws resumes by itself as soon as its parser drains a large message.
   */
  pauseReading(): void {
    this.socket?.pause();
  }

  resumeReading(): void {
    this.socket?.resume();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.resyncing?.catch(() => undefined);
    await this.disconnect();
  }
}

/** Opens a client the way a dashboard does: snapshot, then stream from its cursor. */
export async function openClient(options: TestFeedClientOptions): Promise<TestFeedClient> {
  const client = new TestFeedClient(options);
  await client.loadSnapshot();
  await client.connect();
  return client;
}

export interface LoggedChange {
  /** `<order id>:<version>`. */
  key: string;
  xid: number;
  seq: number;
  id: number;
  version: number;
}

/** The committed history: every change in order_changes, in (xid, seq) order. */
export async function readHistory(sql: pg.Pool | pg.Client): Promise<LoggedChange[]> {
  const { rows } = await sql.query<{ xid: string; seq: string; id: string; version: number }>(
    'SELECT xid, seq, order_id AS id, version FROM order_changes ORDER BY xid, seq',
  );
  return rows.map((r) => ({ xid: Number(r.xid), seq: Number(r.seq), key: `${r.id}:${r.version}`, id: Number(r.id), version: r.version }));
}

/** The table as every client should end up showing it. */
export async function readTable(sql: pg.Pool | pg.Client): Promise<Map<number, Order>> {
  const { rows } = await sql.query<{ o: Order }>('SELECT order_json(o) AS o FROM orders o');
  return new Map(rows.map((r) => [r.o.id, r.o]));
}

export interface Report {
  client: string;
  /** Committed changes the epoch's base lacked that the client never received. */
  lost: string[];
  /** Changes received more than once, or that the base (snapshot or cursor) already had. */
  duplicated: string[];
  /** Transactions received interleaved with another (versions of one order may fall: clients apply by version). */
  outOfOrder: string[];
  /** Received changes that are not in the committed history at all. */
  unknown: string[];
  /** Orders whose view differs from the table (missing, extra, or different). */
  viewMismatches: number[];
}

/**
 * Judges one client against the committed history and the table: exactly once relative to the cursor
 * each epoch started from, each transaction received in one run. (Two transactions that become visible
 * in the same read go out in xid order, which need not be their commit order, so one order's versions
 * may arrive falling: the view applies by version, and must end equal to the table.)
 */
export function checkClient(client: TestFeedClient, history: LoggedChange[], table: Map<number, Order>, pruned = false): Report {
  const report: Report = { client: client.name, lost: [], duplicated: [], outOfOrder: [], unknown: [], viewMismatches: [] };
  const byKey = new Map(history.map((h) => [h.key, h]));
  client.epochs.forEach((epoch, i) => {
    const base = parseCursor(epoch.base);
    if (!base) throw new Error(`${client.name}: unparseable base cursor ${epoch.base}`);
    const seen = new Set<string>();
    const finishedTxns = new Set<number>();
    let currentTxn: number | undefined;
    for (const r of epoch.received) {
      const h = byKey.get(r.key);
      if (!h) {
        if (!pruned) report.unknown.push(r.key);
        continue;
      }
      if (seen.has(r.key) || has(base, h.xid, h.seq)) report.duplicated.push(r.key);
      if (h.xid !== currentTxn) {
        if (finishedTxns.has(h.xid)) report.outOfOrder.push(`${r.key} (transaction ${h.xid} interleaved)`);
        if (currentTxn !== undefined) finishedTxns.add(currentTxn);
        currentTxn = h.xid;
      }
      seen.add(r.key);
    }
    // An epoch that ended in a reset is incomplete on purpose; the last one must be complete.
    if (i === client.epochs.length - 1) {
      for (const h of history) if (!has(base, h.xid, h.seq) && !seen.has(h.key)) report.lost.push(h.key);
    }
  });
  const ids = new Set([...table.keys(), ...client.view.keys()]);
  for (const id of ids) {
    const row = table.get(id);
    const held = client.view.get(id);
    const shown = held && !held.deleted ? held.order : undefined;
    if (JSON.stringify(row) !== JSON.stringify(shown)) report.viewMismatches.push(id);
  }
  return report;
}

export const clean = (client: string): Report => ({ client, lost: [], duplicated: [], outOfOrder: [], unknown: [], viewMismatches: [] });

export function isClean(r: Report): boolean {
  return r.lost.length + r.duplicated.length + r.outOfOrder.length + r.unknown.length + r.viewMismatches.length === 0;
}

/**
 * Waits until every client has received everything and shows the table, then returns the reports (the
 * caller asserts they are clean, so a failure prints what was lost or duplicated). Reading history and
 * table in one REPEATABLE READ transaction keeps them consistent with each other.
 */
export async function settle(sql: pg.Pool, clients: TestFeedClient[], timeout = 15_000): Promise<Report[]> {
  let reports: Report[] = [];
  const read = async () => {
    const conn = await sql.connect();
    try {
      await conn.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      const history = await readHistory(conn);
      const table = await readTable(conn);
      const mark = await conn.query<{ mark: string }>('SELECT mark FROM order_changes_pruned');
      await conn.query('COMMIT');
      return { history, table, pruned: mark.rows[0]?.mark !== '1:1:' };
    } finally {
      conn.release();
    }
  };
  try {
    await waitFor(
      async () => {
        const { history, table, pruned } = await read();
        reports = clients.map((c) => checkClient(c, history, table, pruned));
        return reports.every(isClean);
      },
      { timeout, interval: 100 },
    );
  } catch {
    // Fall through: the caller's assertion shows the last reports.
  }
  return reports.map((r) => ({
    ...r,
    lost: r.lost.slice(0, 20),
    duplicated: r.duplicated.slice(0, 20),
    outOfOrder: r.outOfOrder.slice(0, 20),
    unknown: r.unknown.slice(0, 20),
    viewMismatches: r.viewMismatches.slice(0, 20),
  }));
}

/** What `settle` must return: a clean report per client (a failing diff names the client and changes). */
export function cleanReports(clients: TestFeedClient[]): Report[] {
  return clients.map((c) => clean(c.name));
}
