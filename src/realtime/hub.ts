import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { LoggedChange } from '../feed/change-log.js';
import {
  advance,
  type Cursor,
  comparePositions,
  formatCursor,
  formatPosition,
  hasChange,
  lowerBound,
  type Position,
  parseCursor,
  upperBound,
} from '../feed/cursor.js';
import type { Batch, ChangeFeed } from '../feed/feed.js';
import { CLOSE, type ClientErrorCode, type ResetReason } from '../protocol.js';

/**
 * The hub fans the feed out to WebSocket clients. Each batch is serialised once, as the concatenation
 * of the changes' JSON (which the database already produced), and the same bytes go to every live
 * client: the broadcast loop does no per-client work beyond a buffer check and the send.
 *
 * A client that resumes from a cursor first catches up, from memory when the feed still holds its
 * position, otherwise from the log in pages, and joins the live stream in the same tick as it reaches
 * the feed's head, so nothing falls between the two. A client whose cursor is ahead of this instance
 * (it came from another instance) or that holds a snapshot cursor keeps a "floor" and is sent only what
 * it lacks until the feed passes it.
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
  cursorBounds: () => Promise<{ pruned: Position; nextXid: number }>;
  /** Open sockets allowed per credential and per client address (0: no limit). */
  maxPerPrincipal?: number;
  maxPerAddress?: number;
  /** Of these credential ids, the ones revoked since; their sockets are closed with 1008. */
  revokedPrincipals?: (ids: string[]) => Promise<string[]>;
  revocationCheckMs?: number;
}

interface Client {
  id: string;
  socket: WebSocket;
  live: boolean;
  /**
   * While set, the client already has some changes beyond the head: send only what hasChange says it
   * lacks. Advanced with every change sent, so a heartbeat tells the client exactly where it is.
   */
  floor: Cursor | null;
  alive: boolean;
  tokens: number;
  tokensAt: number;
  lastRateError: number;
  /** Judged a flood: nothing it sends is handled any more. */
  flooded: boolean;
  remote: string;
  principal: string;
  connectedAt: number;
  /** Last cursor sent to this client (for debugging and lag display). */
  cursor: string;
}

export interface HubStats {
  clients: number;
  framesSent: number;
  changesSent: number;
  slowClosed: number;
  resets: number;
  connectionsTotal: number;
}

const FRAME_HEAD = '{"type":"changes","changes":[';
const FRAME_TAIL = ']}';
const MAX_CHANGES_PER_FRAME = 500;

function messagesOf(changes: readonly LoggedChange[]): string[] {
  const messages: string[] = [];
  for (let i = 0; i < changes.length; i += MAX_CHANGES_PER_FRAME) {
    const slice = changes.slice(i, i + MAX_CHANGES_PER_FRAME);
    messages.push(FRAME_HEAD + slice.map((c) => c.json).join(',') + FRAME_TAIL);
  }
  return messages;
}

/**
 * A complete unmasked WebSocket text frame (RFC 6455 §5.2), built once per broadcast and written as is
 * to every socket: no per-client encoding, framing or copying. Servers never mask.
 */
export function textFrame(message: string): Buffer {
  const payload = Buffer.from(message);
  const len = payload.length;
  const headerLen = len < 126 ? 2 : len < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLen + len);
  frame[0] = 0x81; // FIN + text
  if (len < 126) {
    frame[1] = len;
  } else if (len < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(len), 2);
  }
  payload.copy(frame, headerLen);
  return frame;
}

/**
 * `ws` keeps its TCP socket in `_socket`; writing a whole prebuilt frame there is what ws itself does
 * for an uncompressed message (we disable permessage-deflate, so its sender never queues), and ws's
 * `bufferedAmount` still counts it. Without the socket we fall back to ws's own send.
 */
function rawSocket(ws: WebSocket): Socket | undefined {
  return (ws as unknown as { _socket?: Socket })._socket;
}

/**
 * Broadcasting to thousands of sockets costs real CPU per frame, so under load batches are coalesced:
 * after a broadcast that used d ms of CPU, the next one waits until COOLDOWN_FACTOR × d has passed, gathering
 * whatever arrived meanwhile into one frame. With few clients d is microseconds and every change goes
 * out at once; with many, frames grow instead of the backlog. Broadcasting then uses at most about
 * 1 / (1 + COOLDOWN_FACTOR) of a core.
 */
const COOLDOWN_FACTOR = 1;
const MAX_COOLDOWN_MS = 50;

export class Hub {
  readonly serverId = randomUUID();
  private readonly clients = new Set<Client>();
  private readonly stats: HubStats = { clients: 0, framesSent: 0, changesSent: 0, slowClosed: 0, resets: 0, connectionsTotal: 0 };
  private heartbeatTimer: NodeJS.Timeout;
  private revocationTimer: NodeJS.Timeout;
  private readonly perPrincipal = new Map<string, number>();
  private readonly perAddress = new Map<string, number>();
  private pingTimer: NodeJS.Timeout;
  private lastBroadcastAt = Date.now();
  private closing = false;
  /** Changes received from the feed but not yet broadcast (coalescing), and the head before them. */
  private pending: LoggedChange[] = [];
  private pendingFrom: Position | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private nextFlushAt = 0;

  constructor(private readonly options: HubOptions) {
    options.feed.on('batch', (batch) => this.broadcast(batch));
    options.feed.on('gap', () => this.resetAll());
    this.heartbeatTimer = setInterval(() => this.heartbeat(), options.heartbeatMs);
    this.pingTimer = setInterval(() => this.pingSweep(), options.pingMs);
    this.revocationTimer = setInterval(() => void this.closeRevoked(), options.revocationCheckMs ?? 5000);
    this.revocationTimer.unref();
  }

  /** The last position broadcast to live clients: catch-up runs up to here, live takes over after it. */
  private get head(): Position {
    return this.pendingFrom ?? this.options.feed.head;
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
    const { maxPerPrincipal = 0, maxPerAddress = 0 } = this.options;
    // With authentication off every client is 'local': a per-credential cap would mean nothing.
    if (maxPerPrincipal > 0 && principal !== 'local' && (this.perPrincipal.get(principal) ?? 0) >= maxPerPrincipal) {
      return `At most ${maxPerPrincipal} open WebSockets per credential.`;
    }
    if (maxPerAddress > 0 && (this.perAddress.get(remote) ?? 0) >= maxPerAddress) {
      return `At most ${maxPerAddress} open WebSockets per address.`;
    }
    return null;
  }

  private count(map: Map<string, number>, key: string, delta: number): void {
    const n = (map.get(key) ?? 0) + delta;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
  }

  private async closeRevoked(): Promise<void> {
    if (!this.options.revokedPrincipals || this.perPrincipal.size === 0) return;
    try {
      const revoked = new Set(await this.options.revokedPrincipals([...this.perPrincipal.keys()]));
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
      floor: null,
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
    this.count(this.perPrincipal, principal, 1);
    this.count(this.perAddress, remote, 1);
    this.stats.connectionsTotal++;
    this.options.feed.setDemand(this.clients.size);
    socket.on('pong', () => {
      client.alive = true;
      this.admit(client);
    });
    // Pings are answered here, not by ws (autoPong is off in routes.ts), so they count as messages.
    socket.on('ping', (data) => this.onPing(client, data));
    socket.on('message', (data, isBinary) => this.onMessage(client, data as Buffer, isBinary));
    socket.on('close', () => {
      this.count(this.perPrincipal, principal, -1);
      this.count(this.perAddress, remote, -1);
      this.clients.delete(client);
      this.options.feed.setDemand(this.clients.size);
    });
    socket.on('error', () => undefined);
    void this.start(client, after).catch((err: unknown) => {
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

  /** The feed skipped pruned changes: nobody connected can be brought up to date, so all reload. */
  private resetAll(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.pending = [];
    this.pendingFrom = null;
    for (const client of [...this.clients]) {
      this.reset(client, 'cursor-expired', 'Changes were pruned before this server could send them; reload the snapshot.');
    }
    this.options.feed.setDemand(this.clients.size);
  }

  private async start(client: Client, after: string | undefined): Promise<void> {
    const { feed } = this.options;
    const hello = (cursor: string) =>
      this.send(client, JSON.stringify({ type: 'hello', cursor, heartbeat_ms: this.options.heartbeatMs, server: this.serverId }));
    if (after === undefined || after === '') {
      client.cursor = formatPosition(this.head);
      hello(client.cursor);
      client.live = true;
      return;
    }
    const cursor = parseCursor(after);
    if (!cursor) return this.reset(client, 'cursor-malformed', 'This is not a cursor this service issued; reload the snapshot.');
    client.cursor = formatCursor(cursor);
    let from = lowerBound(cursor);
    const inMemory = feed.recentSince(from) !== undefined;
    if (!inMemory || comparePositions(upperBound(cursor), this.head) > 0) {
      const bounds = await this.options.cursorBounds();
      if (comparePositions(from, bounds.pruned) < 0 && !inMemory) {
        return this.reset(client, 'cursor-expired', 'Changes after this cursor have been pruned; reload the snapshot.');
      }
      const newest = cursor.kind === 'position' ? cursor.xid : cursor.xmax - 1;
      if (newest >= bounds.nextXid) {
        return this.reset(client, 'cursor-unknown', 'This cursor is newer than anything this database has written; reload the snapshot.');
      }
    }
    if (!hello(client.cursor)) return;
    const pageSize = this.options.catchUpPageSize ?? 1000;
    let held = cursor;
    for (;;) {
      if (client.socket.readyState !== 1 || !this.clients.has(client)) return;
      const head = this.head;
      if (comparePositions(from, head) >= 0) break;
      const recent = feed.recentSince(from);
      if (recent) {
        held = this.sendCatchUp(client, held, this.pending.length ? recent.filter((c) => comparePositions(c, head) <= 0) : recent);
        break;
      }
      const range = await feed.readRange(from, head, pageSize);
      if (comparePositions(range.pruned, from) > 0) {
        return this.reset(client, 'cursor-expired', 'Changes after this cursor were pruned while catching up; reload the snapshot.');
      }
      held = this.sendCatchUp(client, held, range.changes);
      const last = range.changes[range.changes.length - 1];
      from = range.changes.length === pageSize && last ? { xid: last.xid, seq: last.seq } : head;
    }
    // Joining here, synchronously after the last catch-up read, means the next batch starts right after
    // what the client was sent.
    client.floor = comparePositions(upperBound(held), this.head) > 0 ? held : null;
    client.live = true;
  }

  /**
   * Sends the changes the client at `cursor` lacks and returns its cursor after them. For a client that
   * started from a snapshot, each change's cursor is rewritten to the snapshot-with-progress form
   * (feed/cursor.ts): the plain position would claim less than the client has, and a resume from it
   * would resend changes the snapshot already showed. Only such clients, and only until the feed passes
   * their snapshot's xmax, cost this per-client serialisation.
   */
  private sendCatchUp(client: Client, cursor: Cursor, changes: readonly LoggedChange[]): Cursor {
    const missing: LoggedChange[] = [];
    let held = cursor;
    for (const c of changes) {
      if (hasChange(cursor, c)) continue;
      held = advance(held, c);
      // The change's JSON starts with its cursor (change-log.ts), so the first occurrence is that field.
      missing.push(held.kind === 'snapshot' ? { ...c, json: c.json.replace(`"${formatPosition(c)}"`, JSON.stringify(held.text)) } : c);
    }
    if (missing.length === 0) return cursor;
    for (const message of messagesOf(missing)) {
      if (!this.send(client, message)) return held;
      this.stats.framesSent++;
    }
    this.stats.changesSent += missing.length;
    client.cursor = formatCursor(held);
    return held;
  }

  private broadcast(batch: Batch): void {
    if (this.pending.length === 0) this.pendingFrom = batch.from;
    for (const c of batch.changes) this.pending.push(c);
    if (this.flushTimer) return;
    const wait = this.nextFlushAt - performance.now();
    if (wait <= 0) this.flush();
    else this.flushTimer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.flushTimer = null;
    const changes = this.pending;
    if (changes.length === 0) return;
    // CPU time, not wall time: on a busy machine the loop may wait for a core, and that wait is not
    // a cost that more coalescing would save.
    const started = process.cpuUsage();
    this.pending = [];
    this.pendingFrom = null;
    this.lastBroadcastAt = Date.now();
    const last = changes[changes.length - 1] as LoggedChange;
    const to: Position = { xid: last.xid, seq: last.seq };
    const cursor = formatPosition(to);
    let messages: string[] | null = null;
    let frames: Buffer[] | null = null;
    for (const client of this.clients) {
      if (!client.live) continue;
      if (client.floor) {
        const held = this.sendCatchUp(client, client.floor, changes);
        client.floor = comparePositions(to, upperBound(held)) >= 0 ? null : held;
        continue;
      }
      messages ??= messagesOf(changes);
      frames ??= messages.map(textFrame);
      for (let i = 0; i < frames.length; i++) if (!this.sendFrame(client, frames[i] as Buffer, messages[i] as string)) break;
      this.stats.framesSent += frames.length;
      this.stats.changesSent += changes.length;
      client.cursor = cursor;
    }
    const used = process.cpuUsage(started);
    const took = (used.user + used.system) / 1000;
    this.nextFlushAt = performance.now() + Math.min(MAX_COOLDOWN_MS, took * COOLDOWN_FACTOR);
  }

  private heartbeat(): void {
    if (Date.now() - this.lastBroadcastAt < this.options.heartbeatMs / 2 || this.pending.length > 0) return;
    const cursor = formatPosition(this.head);
    const shared = JSON.stringify({ type: 'heartbeat', cursor });
    for (const client of this.clients) {
      if (!client.live) continue;
      if (client.floor) {
        this.send(client, JSON.stringify({ type: 'heartbeat', cursor: formatCursor(client.floor) }));
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

  private clientError(client: Client, code: ClientErrorCode, detail: string): void {
    this.send(client, JSON.stringify({ type: 'error', code, detail }));
  }

  /**
   * Every frame a client sends, data or control, spends a token; the bucket refills at the message
   * rate and holds two seconds' worth. Past it frames are dropped (with at most one error frame a
   * second), and ten seconds' worth of dropped frames is a flood: the client is logged once, sent a
   * 1008 close and cut off. A flood arrives thousands of frames per TCP read, and ws goes on parsing
   * and emitting what it already received after close(): so the judgement is sticky (`flooded`), the
   * listeners are removed, reading stops, and the TCP socket is destroyed once the close frame is out.
   * Nothing a client sends can make the server write more than one log line.
   */
  private admit(client: Client): boolean {
    if (client.flooded) return false;
    const now = Date.now();
    const rate = this.options.maxMessagesPerSec;
    client.tokens = Math.min(rate * 2, client.tokens + ((now - client.tokensAt) / 1000) * rate);
    client.tokensAt = now;
    client.tokens -= 1;
    if (client.tokens >= 0) return true;
    if (client.tokens < -rate * 10) {
      this.cutOff(client);
      return false;
    }
    if (now - client.lastRateError > 1000) {
      client.lastRateError = now;
      this.clientError(client, 'rate-limited', `At most ${rate} messages per second; extra messages are dropped.`);
    }
    return false;
  }

  private cutOff(client: Client): void {
    client.flooded = true;
    this.options.log.warn({ event: 'client.flood', client: client.id, remote: client.remote }, 'message flood; closing with 1008');
    const ws = client.socket;
    ws.removeAllListeners('message');
    ws.removeAllListeners('ping');
    ws.removeAllListeners('pong');
    if (this.clients.delete(client)) this.options.feed.setDemand(this.clients.size);
    ws.close(CLOSE.POLICY, 'too many messages');
    // The close frame is on the socket now: stop reading, and destroy the socket once it is written.
    const raw = rawSocket(ws);
    if (raw) {
      raw.pause();
      raw.destroySoon();
    }
    setTimeout(() => ws.terminate(), 1000).unref();
  }

  private onPing(client: Client, data: Buffer): void {
    if (this.admit(client) && client.socket.readyState === 1) client.socket.pong(data);
  }

  private onMessage(client: Client, data: Buffer, isBinary: boolean): void {
    if (!this.admit(client)) return;
    let message: unknown;
    try {
      message = isBinary ? undefined : JSON.parse(data.toString('utf8'));
    } catch {
      message = undefined;
    }
    if (!message || typeof message !== 'object') {
      this.clientError(client, 'malformed-message', 'Messages are JSON objects with a "type".');
      return;
    }
    const type = (message as { type?: unknown }).type;
    if (type === 'ping') {
      this.send(client, '{"type":"pong"}');
      return;
    }
    this.clientError(
      client,
      'unknown-message-type',
      `Unknown message type ${JSON.stringify(type)?.slice(0, 50)}; the only client message is {"type":"ping"}.`,
    );
  }

  /** Rolling restart: tell every client to go elsewhere (1012), then stop. */
  async close(graceMs = 1000): Promise<void> {
    this.closing = true;
    clearInterval(this.heartbeatTimer);
    clearInterval(this.pingTimer);
    clearInterval(this.revocationTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    const sockets = [...this.clients].map((c) => c.socket);
    this.clients.clear();
    for (const s of sockets) s.close(CLOSE.RESTART, 'server restarting; reconnect');
    const deadline = Date.now() + graceMs;
    while (sockets.some((s) => s.readyState !== 3) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of sockets) if (s.readyState !== 3) s.terminate();
  }
}
