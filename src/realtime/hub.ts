import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { catchUp } from '../feed/catch-up.js';
import type { LoggedChange } from '../feed/change-log.js';
import { type Cursor, contains, formatCursor, parseCursor } from '../feed/cursor.js';
import type { ChangeFeed } from '../feed/feed.js';
import { CLOSE, type ResetReason } from '../protocol.js';
import { Broadcaster } from './broadcast.js';
import { type Client, ClientInput } from './client.js';
import { changeMessages, rawSocket } from './frames.js';
import { Gate } from './gate.js';
import { ConnectionLimits } from './limits.js';

/**
 * The hub fans the feed out to WebSocket clients. Each batch is serialised once, as the concatenation
 * of the changes' JSON (which the database already produced), and the same bytes go to every client
 * that is in step with the feed: the broadcast loop does no per-client work beyond a buffer check and
 * the send.
 *
 * A client that resumes from a cursor first catches up (feed/catch-up.ts) and joins the live stream in
 * the same tick as it is level, so nothing falls between the two. A client that has some changes the
 * feed has not handed out yet (its cursor came from a faster instance, or is a GET /orders snapshot
 * taken after the feed's last read) keeps its own cursor and is sent only what it lacks, in messages of
 * its own, until the feed has everything it has; then it is in step again.
 *
 * A client that does not keep up is closed with 1013 rather than buffered for: buffering would let one
 * stalled browser grow the server's memory without bound. It resumes from its cursor and loses nothing.
 */
export interface HubOptions {
  feed: ChangeFeed;
  log: Logger;
  heartbeatMs: number;
  pingMs: number;
  maxBufferedBytes: number;
  maxMessagesPerSec: number;
  catchUpPageSize?: number;
  /** The feed's pruning mark and next xid, for judging cursors older or newer than anything in memory. */
  cursorBounds: () => Promise<{ mark: Cursor; nextXid: number }>;
  /** Reads of the log for catch-up at once. */
  maxConcurrentCatchUps?: number;
  /** Open sockets allowed per credential and per client address (0: no limit). */
  maxPerPrincipal?: number;
  maxPerAddress?: number;
  /** Of these credential ids, the ones revoked since; their sockets are closed with 1008. */
  revokedPrincipals?: (ids: string[]) => Promise<string[]>;
  revocationCheckMs?: number;
}

export interface HubStats {
  clients: number;
  framesSent: number;
  changesSent: number;
  slowClosed: number;
  resets: number;
  connectionsTotal: number;
}

/** A catching-up client gets more once its unsent bytes are below this. */
const CATCH_UP_BUFFERED = 64 * 1024;
/** Changes per page of a catch-up from the log (about 100 KB of JSON). */
const CATCH_UP_PAGE = 100;
/** A catching-up client that takes nothing for this long is closed as too slow (1013; it resumes). */
const CATCH_UP_STALL_MS = 10_000;

export class Hub {
  readonly serverId = randomUUID();
  private readonly clients = new Set<Client>();
  private readonly stats: HubStats = { clients: 0, framesSent: 0, changesSent: 0, slowClosed: 0, resets: 0, connectionsTotal: 0 };
  private heartbeatTimer: NodeJS.Timeout;
  private revocationTimer: NodeJS.Timeout;
  private readonly limits: ConnectionLimits;
  private pingTimer: NodeJS.Timeout;
  private closing = false;
  private readonly live: Broadcaster;
  /** Reads of the log for catch-up running at once. */
  private readonly catchUpReads: Gate;
  private readonly input: ClientInput;

  constructor(private readonly options: HubOptions) {
    this.live = new Broadcaster(options.feed, {
      clients: () => this.clients,
      send: (client, message) => this.send(client, message),
      sendFrame: (client, frame, message) => this.sendFrame(client, frame, message),
      stats: this.stats,
    });
    this.catchUpReads = new Gate(options.maxConcurrentCatchUps ?? 16);
    this.limits = new ConnectionLimits(options.maxPerPrincipal ?? 0, options.maxPerAddress ?? 0);
    this.input = new ClientInput({
      maxMessagesPerSec: options.maxMessagesPerSec,
      log: options.log,
      send: (client, message) => this.send(client, message),
      drop: (client) => {
        if (this.clients.delete(client)) this.options.feed.setDemand(this.clients.size);
      },
    });
    options.feed.on('batch', (batch) => this.live.push(batch));
    options.feed.on('gap', () => this.resetAll());
    this.heartbeatTimer = setInterval(() => this.heartbeat(), options.heartbeatMs);
    this.pingTimer = setInterval(() => this.pingSweep(), options.pingMs);
    this.revocationTimer = setInterval(() => void this.closeRevoked(), options.revocationCheckMs ?? 5000);
    this.revocationTimer.unref();
  }

  /** What clients in step have: catch-up runs up to here, live takes over after it. */
  private get head(): Cursor {
    return this.live.head;
  }

  get snapshot(): HubStats {
    return { ...this.stats, clients: this.clients.size };
  }

  listClients(): { id: string; remote: string; live: boolean; cursor: string; connectedAt: string; bufferedBytes: number }[] {
    return [...this.clients].map((c) => ({
      id: c.id,
      remote: c.remote,
      live: c.live,
      cursor: c.cursor,
      connectedAt: new Date(c.connectedAt).toISOString(),
      bufferedBytes: c.socket.bufferedAmount,
    }));
  }

  /** Why a new socket for this credential and address would be refused, or null if it may open. */
  refusal(principal: string, remote: string): string | null {
    return this.limits.refusal(principal, remote);
  }

  private async closeRevoked(): Promise<void> {
    const principals = this.limits.principals();
    if (!this.options.revokedPrincipals || principals.length === 0) return;
    try {
      const revoked = new Set(await this.options.revokedPrincipals(principals));
      if (revoked.size === 0) return;
      for (const client of this.clients) {
        if (!revoked.has(client.principal)) continue;
        this.options.log.info(
          { event: 'client.revoked', client: client.id, principal: client.principal },
          'credential revoked; closing with 1008',
        );
        this.clients.delete(client);
        client.socket.close(CLOSE.POLICY, 'credential revoked');
      }
    } catch (err) {
      this.options.log.warn(
        { event: 'revocation_check.failed', reason: (err as Error).message },
        'could not check for revoked credentials',
      );
    }
  }

  /** Takes over a freshly upgraded socket. `after` is the raw `after` query parameter, if any. */
  accept(socket: WebSocket, after: string | undefined, remote: string, principal = 'local'): void {
    const client: Client = {
      id: randomUUID(),
      socket,
      live: false,
      ahead: null,
      alive: true,
      tokens: this.options.maxMessagesPerSec * 2,
      tokensAt: Date.now(),
      lastRateError: 0,
      flooded: false,
      remote,
      principal,
      connectedAt: Date.now(),
      cursor: '',
    };
    if (this.closing) {
      socket.close(CLOSE.RESTART, 'server restarting');
      return;
    }
    this.clients.add(client);
    this.limits.add(principal, remote);
    this.stats.connectionsTotal++;
    this.options.feed.setDemand(this.clients.size);
    this.input.attach(client);
    socket.on('close', () => {
      this.limits.remove(principal, remote);
      this.clients.delete(client);
      this.options.feed.setDemand(this.clients.size);
    });
    socket.on('error', () => undefined);
    void this.start(client, after).catch((err: unknown) => {
      if (socket.readyState !== 1) return; // it left while catching up
      this.options.log.warn(
        { event: 'client.catchup_failed', client: client.id, reason: (err as Error).message },
        'catch-up failed; closing',
      );
      socket.close(CLOSE.RESTART, 'catch-up failed; reconnect');
    });
  }

  private send(client: Client, message: string): boolean {
    if (client.socket.readyState !== 1) return false;
    if (client.socket.bufferedAmount > this.options.maxBufferedBytes) {
      this.closeSlow(client);
      return false;
    }
    client.socket.send(message);
    return true;
  }

  /** The broadcast path: a prebuilt frame, written straight to the socket. */
  private sendFrame(client: Client, frame: Buffer, message: string): boolean {
    const ws = client.socket;
    if (ws.readyState !== 1) return false;
    if (ws.bufferedAmount > this.options.maxBufferedBytes) {
      this.closeSlow(client);
      return false;
    }
    const raw = rawSocket(ws);
    if (raw) raw.write(frame);
    else ws.send(message);
    return true;
  }

  private closeSlow(client: Client): void {
    if (!this.clients.delete(client)) return;
    this.stats.slowClosed++;
    this.options.log.warn(
      { event: 'client.slow', client: client.id, remote: client.remote, bufferedBytes: client.socket.bufferedAmount },
      'client too slow; closed with 1013 (it will resume from its cursor)',
    );
    client.socket.close(CLOSE.SLOW_CONSUMER, 'too slow; resume from your cursor');
    // A client that does not read will not read the close frame either.
    setTimeout(() => client.socket.terminate(), 2000).unref();
    this.options.feed.setDemand(this.clients.size);
  }

  private reset(client: Client, reason: ResetReason, detail: string): void {
    this.stats.resets++;
    this.options.log.info({ event: 'client.reset', client: client.id, reason }, 'cursor cannot be resumed; reset sent');
    this.send(client, JSON.stringify({ type: 'reset', reason, detail }));
    client.socket.close(CLOSE.RESET, reason);
    this.clients.delete(client);
  }

  /**
   * The feed skipped pruned changes, or the database went back in time: nobody connected can be
   * brought up to date, so all reload.
   */
  private resetAll(): void {
    this.live.clear();
    for (const client of [...this.clients]) {
      this.reset(
        client,
        'cursor-expired',
        'Changes were pruned before this server could send them, or the database went back in time; reload the snapshot.',
      );
    }
    this.options.feed.setDemand(this.clients.size);
  }

  private async start(client: Client, after: string | undefined): Promise<void> {
    const hello = (cursor: string) =>
      this.send(client, JSON.stringify({ type: 'hello', cursor, heartbeat_ms: this.options.heartbeatMs, server: this.serverId }));
    if (after === undefined || after === '') {
      client.cursor = formatCursor(this.head);
      hello(client.cursor);
      client.live = true;
      return;
    }
    const cursor = parseCursor(after);
    if (!cursor) return this.reset(client, 'cursor-malformed', 'This is not a cursor this service issued; reload the snapshot.');
    client.cursor = formatCursor(cursor);
    const head = this.head;
    if (cursor.history !== undefined && cursor.history !== head.history) {
      return this.reset(
        client,
        'cursor-expired',
        'This cursor is from another history of the database (before a restore, recovery or failover); reload the snapshot.',
      );
    }
    const newest = Math.max(cursor.snapshot.xmax, ...cursor.partials.map((p) => p.xid + 1));
    const behind = !contains(cursor, head);
    if (behind || newest > head.snapshot.xmax) {
      // Not level with this instance: check it against the log's limits before trusting it.
      const { mark, nextXid } = await this.options.cursorBounds();
      if (newest > nextXid) {
        return this.reset(client, 'cursor-unknown', 'This cursor is newer than anything this database has written; reload the snapshot.');
      }
      if (behind && !contains(cursor, mark) && !this.options.feed.remembers(cursor)) {
        return this.reset(client, 'cursor-expired', 'Changes after this cursor have been pruned; reload the snapshot.');
      }
    }
    if (!hello(client.cursor)) return;
    // Reads of the log for catch-up are bounded in number; a client waits for its socket to drain
    // before each message, so one that does not read holds at most a page and a message until it is
    // closed as too slow, and a client that left meanwhile costs no read.
    const result = await catchUp(
      this.options.feed,
      cursor,
      () => this.head,
      { send: (pieces, final) => this.sendPieces(client, pieces, final) },
      this.options.catchUpPageSize ?? CATCH_UP_PAGE,
      async (read) => {
        await this.catchUpReads.enter();
        try {
          if (client.socket.readyState !== 1) throw new Error('client gone');
          return await read();
        } finally {
          this.catchUpReads.leave();
        }
      },
    );
    if (result.kind === 'closed' || client.socket.readyState !== 1 || !this.clients.has(client)) return;
    if (result.kind === 'pruned') {
      return this.reset(client, 'cursor-expired', 'Changes after this cursor were pruned while catching up; reload the snapshot.');
    }
    // Joining here, synchronously after catch-up found the client level, means the next broadcast
    // starts right after what the client was sent.
    client.ahead = contains(this.head, result.cursor) ? null : result.cursor;
    client.cursor = formatCursor(result.cursor);
    client.live = true;
  }

  /**
   * Sends pieces of transactions to one client, waiting for its socket to drain between messages so
   * a client that does not read holds at most about one message of the server's memory; false when
   * the client is gone or too slow.
   */
  /** Sends pieces of transactions to one client, waiting for its socket to drain before each message; false when the client is gone or too slow. */
  private async sendPieces(
    client: Client,
    pieces: { changes: readonly LoggedChange[]; more: boolean; cursor: () => Cursor }[],
    final: Cursor,
  ): Promise<boolean> {
    const messages = changeMessages(
      pieces.map((p) => ({ changes: p.changes, more: p.more, cursor: () => formatCursor(p.cursor()) })),
      formatCursor(final),
    );
    for (const message of messages) {
      if (!(await this.drained(client))) return false;
      if (!this.send(client, message)) return false;
      this.stats.framesSent++;
    }
    for (const p of pieces) this.stats.changesSent += p.changes.length;
    client.cursor = formatCursor(final);
    return true;
  }

  /** Resolves once the client's unsent bytes are below CATCH_UP_BUFFERED (false if it closes or stays stuck). */
  private async drained(client: Client): Promise<boolean> {
    const ws = client.socket;
    const deadline = Date.now() + CATCH_UP_STALL_MS;
    while (ws.readyState === 1 && ws.bufferedAmount > CATCH_UP_BUFFERED) {
      if (Date.now() > deadline) {
        this.closeSlow(client);
        return false;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return ws.readyState === 1;
  }

  private heartbeat(): void {
    if (Date.now() - this.live.lastBroadcastAt < this.options.heartbeatMs / 2 || this.live.busy) return;
    const cursor = formatCursor(this.head);
    const shared = JSON.stringify({ type: 'heartbeat', cursor });
    for (const client of this.clients) {
      if (!client.live) continue;
      if (client.ahead) {
        this.send(client, JSON.stringify({ type: 'heartbeat', cursor: formatCursor(client.ahead) }));
        continue;
      }
      this.send(client, shared);
      client.cursor = cursor;
    }
  }

  private pingSweep(): void {
    for (const client of this.clients) {
      if (!client.alive) {
        this.options.log.info({ event: 'client.dead', client: client.id }, 'no pong: terminating socket');
        this.clients.delete(client);
        client.socket.terminate();
        continue;
      }
      client.alive = false;
      client.socket.ping();
    }
    this.options.feed.setDemand(this.clients.size);
  }

  /** Rolling restart: tell every client to go elsewhere (1012), then stop. */
  async close(graceMs = 1000): Promise<void> {
    this.closing = true;
    clearInterval(this.heartbeatTimer);
    clearInterval(this.pingTimer);
    clearInterval(this.revocationTimer);
    this.live.clear();
    const sockets = [...this.clients].map((c) => c.socket);
    this.clients.clear();
    for (const s of sockets) s.close(CLOSE.RESTART, 'server restarting; reconnect');
    const deadline = Date.now() + graceMs;
    while (sockets.some((s) => s.readyState !== 3) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of sockets) if (s.readyState !== 3) s.terminate();
  }
}
