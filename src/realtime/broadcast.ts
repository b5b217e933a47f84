import { type Batch, cursorAfter } from '../feed/batches.js';
import { type Cursor, contains, formatCursor, has, union } from '../feed/cursor.js';
import type { ChangeFeed } from '../feed/feed.js';
import type { Client } from './client.js';
import { changeMessages, countChanges, type Piece, textFrame } from './frames.js';

export interface BroadcastTarget {
  clients(): Iterable<Client>;
  send(client: Client, message: string): boolean;
  /** Writes a prebuilt frame (message is its text, for a socket without a raw stream). */
  sendFrame(client: Client, frame: Buffer, message: string): boolean;
  stats: { framesSent: number; changesSent: number; framesBuilt: number };
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

/**
 * The live path: each batch from the feed goes out as frames built once per distinct view (view.ts)
 * and written to every client of that view in step with the feed; a client ahead of it in part gets
 * only what it lacks, in messages of its own. The work per batch is one build per view that has
 * clients, plus a buffer check and a write per client: a thousand dashboards on five views cost five
 * builds.
 */
export class Broadcaster {
  /** Batches received from the feed but not yet broadcast (coalescing). */
  private pending: Batch[] = [];
  /** The head as of the last broadcast: what clients in step have. */
  private broadcastHead: Cursor;
  private flushTimer: NodeJS.Timeout | null = null;
  private nextFlushAt = 0;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly target: BroadcastTarget,
  ) {
    this.broadcastHead = feed.head;
  }

  /** What clients in step have: catch-up runs up to here, live takes over after it. */
  get head(): Cursor {
    return this.pending.length > 0 ? this.broadcastHead : this.feed.head;
  }

  /** Forget what is pending (every client is being reset). */
  clear(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.pending = [];
    this.broadcastHead = this.feed.head;
  }

  /** A batch from the feed: broadcast now, or with the next flush when the last one was costly. */
  push(batch: Batch): void {
    if (this.pending.length === 0) {
      this.broadcastHead = batch.from;
    }
    this.pending.push(batch);
    if (this.flushTimer) return;
    const wait = this.nextFlushAt - performance.now();
    if (wait <= 0) this.flush();
    else this.flushTimer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.flushTimer = null;
    const batches = this.pending;
    if (batches.length === 0) return;
    // CPU time, not wall time: on a busy machine the loop may wait for a core, and that wait is not
    // a cost that more coalescing would save.
    const started = process.cpuUsage();
    this.pending = [];
    const to = (batches[batches.length - 1] as Batch).to;
    const toText = formatCursor(to);
    this.broadcastHead = to;
    const pieces: Piece[] = [];
    let count = 0;
    for (const batch of batches) {
      for (const t of batch.txns) {
        const continues = batch.from.partials.some((p) => p.xid === t.xid);
        pieces.push({ changes: t.changes, more: t.more, continues, cursor: () => formatCursor(cursorAfter(batch, t.xid)) });
        count += t.changes.length;
      }
    }
    const built = new Map<string, { messages: string[]; frames: Buffer[]; changes: number }>();
    for (const client of this.target.clients()) {
      if (!client.live) continue;
      if (client.ahead) {
        this.sendAhead(client, batches, to);
        continue;
      }
      if (count === 0) continue;
      client.cursor = toText;
      let out = built.get(client.view.key);
      if (!out) {
        const messages = changeMessages(pieces, toText, client.view);
        const changes = client.view.filter === null ? count : messages.reduce((n, m) => n + countChanges(m), 0);
        out = { messages, frames: messages.map(textFrame), changes };
        built.set(client.view.key, out);
        this.target.stats.framesBuilt++;
      }
      const { frames, messages } = out;
      for (let i = 0; i < frames.length; i++) if (!this.target.sendFrame(client, frames[i] as Buffer, messages[i] as string)) break;
      this.target.stats.framesSent += frames.length;
      this.target.stats.changesSent += out.changes;
    }
    const used = process.cpuUsage(started);
    const took = (used.user + used.system) / 1000;
    this.nextFlushAt = performance.now() + Math.min(MAX_COOLDOWN_MS, took * COOLDOWN_FACTOR);
  }

  /** A client ahead of the feed in part: only what it lacks, with its own cursors, until it is in step. */
  private sendAhead(client: Client, batches: readonly Batch[], to: Cursor): void {
    const have = client.ahead as Cursor;
    const pieces: Piece[] = [];
    let count = 0;
    for (const batch of batches) {
      for (const t of batch.txns) {
        const changes = t.changes.filter((c) => !has(have, c.xid, c.seq));
        if (changes.length === 0) continue;
        const continues = have.partials.some((p) => p.xid === t.xid) || batch.from.partials.some((p) => p.xid === t.xid);
        pieces.push({ changes, more: t.more, continues, cursor: () => formatCursor(union(have, cursorAfter(batch, t.xid))) });
        count += changes.length;
      }
    }
    const now = union(have, to);
    client.ahead = contains(to, now) ? null : now;
    client.cursor = formatCursor(now);
    if (count === 0) return;
    for (const message of changeMessages(pieces, client.cursor, client.view)) {
      if (!this.target.send(client, message)) return;
      this.target.stats.framesSent++;
    }
    this.target.stats.changesSent += count;
  }
}
