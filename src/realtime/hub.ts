import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { type Cursor, formatCursor } from '../feed/cursor.js';
import type { ChangeFeed } from '../feed/feed.js';
import { CLOSE, type ResetReason } from '../protocol.js';
import { Broadcaster } from './broadcast.js';
import { type Client, ClientInput } from './client.js';
import { rawSocket } from './frames.js';
import { ConnectionLimits } from './limits.js';
import { Resume } from './resume.js';
import { ALL_ROWS, type View } from './view.js';

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
  /** Distinct views (filter × totals scope) served at once; a socket asking for one more is refused (0: no limit). */
  maxViews?: number;
  /** Of the event loop, what broadcasting may use over time before it coalesces (broadcast.ts). */
  broadcastShare?: number;
}

export interface HubStats {
  clients: number;
  framesSent: number;
  /** Broadcast frame builds: one per distinct view per batch. */
  framesBuilt: number;
  changesSent: number;
  slowClosed: number;
  resets: number;
  connectionsTotal: number;
  /** Broadcasts in which a filtered view's changes were held for a fuller frame (the loop was saturated). */
  viewDeferrals: number;
}

export class Hub {
  readonly serverId = randomUUID();
  private readonly clients = new Set<Client>();
  /** Open sockets per view key. */
  private readonly views = new Map<string, number>();
  private readonly stats: HubStats = {
    clients: 0,
    framesSent: 0,
    framesBuilt: 0,
    changesSent: 0,
    slowClosed: 0,
    resets: 0,
    connectionsTotal: 0,
    viewDeferrals: 0,
  };
  private heartbeatTimer: NodeJS.Timeout;
  private revocationTimer: NodeJS.Timeout;
  private readonly limits: ConnectionLimits;
  private pingTimer: NodeJS.Timeout;
  private closing = false;
  private readonly live: Broadcaster;
  private readonly resume: Resume;
  private readonly input: ClientInput;

  constructor(private readonly options: HubOptions) {
    this.live = new Broadcaster(
      options.feed,
      {
        clients: () => this.clients,
        send: (client, message) => this.send(client, message),
        sendFrame: (client, frame, message, at) => this.sendFrame(client, frame, message, at),
        stats: this.stats,
      },
      options.broadcastShare,
    );
    this.resume = new Resume({
      feed: options.feed,
      serverId: this.serverId,
      heartbeatMs: options.heartbeatMs,
      ...(options.catchUpPageSize ? { pageSize: options.catchUpPageSize } : {}),
      ...(options.maxConcurrentCatchUps ? { maxReads: options.maxConcurrentCatchUps } : {}),
      cursorBounds: options.cursorBounds,
      head: (view) => this.live.headOf(view),
      isConnected: (client) => this.clients.has(client),
      send: (client, message) => this.send(client, message),
      reset: (client, reason, detail) => this.reset(client, reason, detail),
      closeSlow: (client) => this.closeSlow(client),
      stats: this.stats,
    });
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

  /** Why a new socket for this credential, address and view would be refused, or null if it may open. */
  refusal(principal: string, remote: string, view: View = ALL_ROWS): string | null {
    const max = this.options.maxViews ?? 0;
    if (max > 0 && !this.views.has(view.key) && this.views.size >= max) {
      return `This server already streams ${max} distinct views (filters); use one of them, or no filter.`;
    }
    return this.limits.refusal(principal, remote);
  }

  /** Distinct views with open sockets now. */
  get viewCount(): number {
    return this.views.size;
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
  accept(socket: WebSocket, after: string | undefined, remote: string, principal = 'local', view: View = ALL_ROWS): void {
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
      view,
      sentAt: Date.now(),
    };
    if (this.closing) {
      socket.close(CLOSE.RESTART, 'server restarting');
      return;
    }
    this.clients.add(client);
    this.views.set(view.key, (this.views.get(view.key) ?? 0) + 1);
    this.limits.add(principal, remote);
    this.stats.connectionsTotal++;
    this.options.feed.setDemand(this.clients.size);
    this.input.attach(client);
    socket.on('close', () => {
      const left = (this.views.get(view.key) ?? 1) - 1;
      if (left > 0) this.views.set(view.key, left);
      else this.views.delete(view.key);
      this.limits.remove(principal, remote);
      this.clients.delete(client);
      this.options.feed.setDemand(this.clients.size);
    });
    socket.on('error', () => undefined);
    void this.resume.start(client, after).catch((err: unknown) => {
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
    client.sentAt = Date.now();
    return true;
  }

  /** The broadcast path: a prebuilt frame, written straight to the socket. */
  private sendFrame(client: Client, frame: Buffer, message: string, at: number): boolean {
    const ws = client.socket;
    if (ws.readyState !== 1) return false;
    if (ws.bufferedAmount > this.options.maxBufferedBytes) {
      this.closeSlow(client);
      return false;
    }
    const raw = rawSocket(ws);
    if (raw) raw.write(frame);
    else ws.send(message);
    client.sentAt = at;
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

  /**
   * A heartbeat to every live socket sent nothing for half a period: an idle feed, or a filtered view
   * that nothing matched lately (it learns the cursor it has, so a reconnect does not replay the log).
   */
  private heartbeat(): void {
    const quiet = Date.now() - this.options.heartbeatMs / 2;
    // Per view: a view whose changes are held for a fuller frame (broadcast.ts) has its own head, and a
    // heartbeat must not tell its clients a cursor past changes they have not been sent.
    const shared = new Map<string, { cursor: string; message: string }>();
    for (const client of this.clients) {
      if (!client.live || client.sentAt > quiet) continue;
      if (client.ahead) {
        this.send(client, JSON.stringify({ type: 'heartbeat', cursor: formatCursor(client.ahead) }));
        continue;
      }
      let beat = shared.get(client.view.key);
      if (!beat) {
        const cursor = formatCursor(this.live.headOf(client.view));
        beat = { cursor, message: JSON.stringify({ type: 'heartbeat', cursor }) };
        shared.set(client.view.key, beat);
      }
      this.send(client, beat.message);
      client.cursor = beat.cursor;
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
  /** Whether new sockets are still taken (false from `stopAccepting()` or `close()` on). */
  get accepting(): boolean {
    return !this.closing;
  }

  /** Refuses new sockets from now on; the open ones stay until `close()`. */
  stopAccepting(): void {
    this.closing = true;
  }

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
