import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { CLOSE, type ResetReason } from '../contract/protocol.js';
import type { Cursor } from '../feed/cursor.js';
import type { ChangeFeed } from '../feed/feed.js';
import { Broadcaster } from './broadcast.js';
import { type Client, ClientInput } from './client.js';
import { KeepAlive } from './keepalive.js';
import { ConnectionLimits } from './limits.js';
import { Output } from './output.js';
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
 * Around it: writing with a bound on what a client may leave unsent (output.ts), heartbeats, pings and
 * revocation checks (keepalive.ts), admission limits (limits.ts), what a client sends (client.ts).
 */
export interface HubOptions {
  feed: ChangeFeed;
  log: Logger;
  heartbeatMs: number;
  pingMs: number;
  maxBufferedBytes: number;
  maxMessagesPerSec: number;
  catchUpPageSize?: number;
  /** A catching-up client that takes nothing for this long is closed as too slow. */
  catchUpStallMs?: number;
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
  /** Broadcasts in which a filtered view's changes were held for a fuller frame (broadcast.ts). */
  viewDeferrals: number;
}

export class Hub {
  readonly serverId = randomUUID();
  private readonly clients = new Set<Client>();
  private readonly counts: HubStats = {
    clients: 0,
    framesSent: 0,
    framesBuilt: 0,
    changesSent: 0,
    slowClosed: 0,
    resets: 0,
    connectionsTotal: 0,
    viewDeferrals: 0,
  };
  private readonly limits: ConnectionLimits;
  private readonly keepAlive: KeepAlive;
  private closing = false;
  private readonly live: Broadcaster;
  private readonly resume: Resume;
  private readonly input: ClientInput;
  private readonly out: Output;

  constructor(private readonly options: HubOptions) {
    this.out = new Output({
      clients: this.clients,
      log: options.log,
      maxBufferedBytes: options.maxBufferedBytes,
      stats: this.counts,
      dropped: () => options.feed.setDemand(this.clients.size),
    });
    this.live = new Broadcaster(
      options.feed,
      {
        clients: () => this.clients,
        send: (client, message) => this.out.send(client, message),
        sendFrame: (client, frame, message, at) => this.out.sendFrame(client, frame, message, at),
        stats: this.counts,
      },
      options.broadcastShare,
    );
    this.resume = new Resume({
      feed: options.feed,
      serverId: this.serverId,
      heartbeatMs: options.heartbeatMs,
      ...(options.catchUpPageSize ? { pageSize: options.catchUpPageSize } : {}),
      ...(options.maxConcurrentCatchUps ? { maxReads: options.maxConcurrentCatchUps } : {}),
      ...(options.catchUpStallMs ? { stallMs: options.catchUpStallMs } : {}),
      cursorBounds: options.cursorBounds,
      head: (view) => this.live.headOf(view),
      isConnected: (client) => this.clients.has(client),
      send: (client, message) => this.out.send(client, message),
      reset: (client, reason, detail) => this.reset(client, reason, detail),
      closeSlow: (client) => this.out.closeSlow(client),
      stats: this.counts,
    });
    this.limits = new ConnectionLimits(options.maxPerPrincipal ?? 0, options.maxPerAddress ?? 0, options.maxViews ?? 0);
    this.input = new ClientInput({
      maxMessagesPerSec: options.maxMessagesPerSec,
      log: options.log,
      send: (client, message) => this.out.send(client, message),
      drop: (client) => {
        if (this.clients.delete(client)) this.options.feed.setDemand(this.clients.size);
      },
    });
    options.feed.on('batch', (batch) => this.live.push(batch));
    options.feed.on('gap', () => this.resetAll());
    this.keepAlive = new KeepAlive({
      clients: () => this.clients,
      log: options.log,
      heartbeatMs: options.heartbeatMs,
      pingMs: options.pingMs,
      headOf: (view) => this.live.headOf(view),
      send: (client, message) => this.out.send(client, message),
      dropped: () => this.options.feed.setDemand(this.clients.size),
      ...(options.revokedPrincipals ? { revokedPrincipals: options.revokedPrincipals } : {}),
      principals: () => this.limits.principals(),
      revocationCheckMs: options.revocationCheckMs ?? 5000,
    });
  }

  get stats(): HubStats {
    return { ...this.counts, clients: this.clients.size };
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
    return this.limits.refusal(principal, remote, view.key);
  }

  /** Distinct views with open sockets now. */
  get viewCount(): number {
    return this.limits.views;
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
    this.limits.add(principal, remote, view.key);
    this.counts.connectionsTotal++;
    this.options.feed.setDemand(this.clients.size);
    this.input.attach(client);
    socket.on('close', () => {
      this.limits.remove(principal, remote, view.key);
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

  private reset(client: Client, reason: ResetReason, detail: string): void {
    this.counts.resets++;
    this.options.log.info({ event: 'client.reset', client: client.id, reason }, 'cursor cannot be resumed; reset sent');
    this.out.send(client, JSON.stringify({ type: 'reset', reason, detail }));
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

  /** Whether new sockets are still taken (false from `stopAccepting()` or `close()` on). */
  get accepting(): boolean {
    return !this.closing;
  }

  /** Refuses new sockets from now on; the open ones stay until `close()`. */
  stopAccepting(): void {
    this.closing = true;
  }

  /** Rolling restart: tell every client to go elsewhere (1012), then stop. */
  async close(graceMs = 1000): Promise<void> {
    this.closing = true;
    this.keepAlive.stop();
    this.live.clear();
    const sockets = [...this.clients].map((c) => c.socket);
    this.clients.clear();
    for (const s of sockets) s.close(CLOSE.RESTART, 'server restarting; reconnect');
    const deadline = Date.now() + graceMs;
    while (sockets.some((s) => s.readyState !== 3) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of sockets) if (s.readyState !== 3) s.terminate();
  }
}
