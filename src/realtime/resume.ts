import type { ResetReason } from '../contract/protocol.js';
import { type CatchUpPiece, catchUp } from '../feed/catch-up.js';
import { type Cursor, contains, formatCursor, parseCursor } from '../feed/cursor.js';
import type { ChangeFeed } from '../feed/feed.js';
import type { Client } from './client.js';
import { changeMessages, countChanges } from './frames.js';
import { Gate } from './gate.js';
import type { View } from './view.js';

/** A catching-up client gets more once its unsent bytes are below this. */
const CATCH_UP_BUFFERED = 64 * 1024;
/** Changes per page of a catch-up from the log (about 100 KB of JSON). */
const CATCH_UP_PAGE = 100;
/** A catching-up client that takes nothing for this long is closed as too slow (1013; it resumes). */
const CATCH_UP_STALL_MS = 10_000;

export interface ResumeContext {
  feed: ChangeFeed;
  serverId: string;
  heartbeatMs: number;
  /** Changes per page of catch-up from the log. */
  pageSize?: number;
  /** Reads of the log for catch-up at once. */
  maxReads?: number;
  /** A catching-up client that takes nothing for this long is closed as too slow (default CATCH_UP_STALL_MS). */
  stallMs?: number;
  /** The feed's pruning mark and next xid, for judging cursors older or newer than anything in memory. */
  cursorBounds: () => Promise<{ mark: Cursor; nextXid: number }>;
  /** What clients of a view in step have: catch-up runs up to here, live takes over after it. */
  head: (view: View) => Cursor;
  isConnected: (client: Client) => boolean;
  send: (client: Client, message: string) => boolean;
  reset: (client: Client, reason: ResetReason, detail: string) => void;
  closeSlow: (client: Client) => void;
  stats: { framesSent: number; changesSent: number };
}

/**
 * A client's first moments: hello, the checks of its cursor (malformed, from another history, newer
 * than the database, older than retention), catch-up (feed/catch-up.ts) and joining the live stream in
 * the same tick as it is level, so nothing falls between the two.
 */
export class Resume {
  private readonly reads: Gate;

  constructor(private readonly ctx: ResumeContext) {
    this.reads = new Gate(ctx.maxReads ?? 16);
  }

  /** Greets a new client and brings it up to the live stream from its cursor, or resets it. */
  async start(client: Client, after: string | undefined): Promise<void> {
    const hello = (cursor: string) =>
      this.ctx.send(client, JSON.stringify({ type: 'hello', cursor, heartbeat_ms: this.ctx.heartbeatMs, server: this.ctx.serverId }));
    if (after === undefined || after === '') {
      client.cursor = formatCursor(this.ctx.head(client.view));
      hello(client.cursor);
      client.live = true;
      return;
    }
    const cursor = parseCursor(after);
    if (!cursor) return this.ctx.reset(client, 'cursor-malformed', 'This is not a cursor this service issued; reload the snapshot.');
    client.cursor = formatCursor(cursor);
    const head = this.ctx.head(client.view);
    if (cursor.history !== undefined && cursor.history !== head.history) {
      return this.ctx.reset(
        client,
        'cursor-expired',
        'This cursor is from another history of the database (before a restore, recovery or failover); reload the snapshot.',
      );
    }
    const newest = Math.max(cursor.snapshot.xmax, ...cursor.partials.map((p) => p.xid + 1));
    const behind = !contains(cursor, head);
    if (behind || newest > head.snapshot.xmax) {
      // Not level with this instance: check it against the log's limits before trusting it.
      const { mark, nextXid } = await this.ctx.cursorBounds();
      if (newest > nextXid) {
        return this.ctx.reset(
          client,
          'cursor-unknown',
          'This cursor is newer than anything this database has written; reload the snapshot.',
        );
      }
      if (behind && !contains(cursor, mark) && !this.ctx.feed.remembers(cursor)) {
        return this.ctx.reset(client, 'cursor-expired', 'Changes after this cursor have been pruned; reload the snapshot.');
      }
    }
    if (!hello(client.cursor)) return;
    // Reads of the log for catch-up are bounded in number; a client waits for its socket to drain
    // before each message, so one that does not read holds at most a page and a message until it is
    // closed as too slow, and a client that left meanwhile costs no read.
    const result = await catchUp(
      this.ctx.feed,
      cursor,
      () => this.ctx.head(client.view),
      { send: (pieces, final) => this.sendPieces(client, pieces, final) },
      this.ctx.pageSize ?? CATCH_UP_PAGE,
      async (read) => {
        await this.reads.enter();
        try {
          if (client.socket.readyState !== 1) throw new Error('client gone');
          return await read();
        } finally {
          this.reads.leave();
        }
      },
    );
    if (result.kind === 'closed' || client.socket.readyState !== 1 || !this.ctx.isConnected(client)) return;
    if (result.kind === 'pruned') {
      return this.ctx.reset(client, 'cursor-expired', 'Changes after this cursor were pruned while catching up; reload the snapshot.');
    }
    // Joining here, synchronously after catch-up found the client level, means the next broadcast
    // starts right after what the client was sent.
    client.ahead = contains(this.ctx.head(client.view), result.cursor) ? null : result.cursor;
    client.cursor = formatCursor(result.cursor);
    client.live = true;
  }

  /** Sends pieces of transactions to one client, waiting for its socket to drain before each message; false when the client is gone or too slow. */
  private async sendPieces(client: Client, pieces: CatchUpPiece[], final: Cursor): Promise<boolean> {
    // Filtered the same way as the live stream (frames.ts), from memory and from the log alike.
    const messages = changeMessages(
      pieces.map((p) => ({ changes: p.changes, more: p.more, continues: p.continues, cursor: () => formatCursor(p.cursor()) })),
      formatCursor(final),
      client.view,
    );
    for (const message of messages) {
      if (!(await this.drained(client))) return false;
      if (!this.ctx.send(client, message)) return false;
      this.ctx.stats.framesSent++;
    }
    if (client.view.filter === null) for (const p of pieces) this.ctx.stats.changesSent += p.changes.length;
    else for (const m of messages) this.ctx.stats.changesSent += countChanges(m);
    client.cursor = formatCursor(final);
    return true;
  }

  /** Resolves once the client's unsent bytes are below CATCH_UP_BUFFERED (false if it closes or stays stuck for stallMs). */
  private async drained(client: Client): Promise<boolean> {
    const ws = client.socket;
    const deadline = Date.now() + (this.ctx.stallMs ?? CATCH_UP_STALL_MS);
    while (ws.readyState === 1 && ws.bufferedAmount > CATCH_UP_BUFFERED) {
      if (Date.now() > deadline) {
        this.ctx.closeSlow(client);
        return false;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return ws.readyState === 1;
  }
}
