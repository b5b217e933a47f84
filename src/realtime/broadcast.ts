import { type Batch, cursorAfter } from '../feed/batches.js';
import { type Cursor, contains, formatCursor, has, union } from '../feed/cursor.js';
import type { ChangeFeed } from '../feed/feed.js';
import type { Filter } from '../filter/filter.js';
import { traceBroadcast, traceNow } from '../trace.js';
import type { Client } from './client.js';
import { changeMessages, countChanges, type Piece, textFrame } from './frames.js';
import { entryOf, type View } from './view.js';

export interface BroadcastTarget {
  clients(): Iterable<Client>;
  send(client: Client, message: string): boolean;
  /** Writes a prebuilt frame (message is its text, for a socket without a raw stream) at `at` (Date.now()). */
  sendFrame(client: Client, frame: Buffer, message: string, at: number): boolean;
  stats: { framesSent: number; changesSent: number; framesBuilt: number; viewDeferrals: number };
}

/**
 * Broadcasting to thousands of sockets costs real time per frame written (a write system call each),
 * so broadcasting may use at most `share` of the event loop over time, with a burst allowance: credit
 * accrues at `share` ms per ms up to `share` × BURST_WINDOW_MS, each broadcast spends its wall time,
 * and a batch waits (gathering what arrives meanwhile into one frame) only while the credit is spent.
 * A light load never runs out, so every batch goes out the moment it is read; a saturated loop gets
 * fewer, larger frames instead of a backlog, and a quarter of it stays free for everything else. Wall
 * time, not CPU time: reading the CPU clock twice a broadcast cost about 5% of the light-load path,
 * and time spent waiting for a core is time the loop could not give anything else either.
 *
 * And broadcasts of new batches start no more often than one frame to every live socket could be
 * written within the share (`frameMs`, measured, × sockets ÷ share: the pace the credit sets when every
 * socket is written), even when held views (below) made them cheaper: otherwise the loop spends what
 * holding saved on more frequent broadcasts with fewer changes each, and the frames it aims for shrink
 * with them (measured, 5,000 sockets on ten views + unfiltered: ~8 broadcasts a second became 20–45 of
 * one to three changes each, and the unfiltered view's 455 sockets got a frame per change; without the
 * ÷ share, a third more broadcasts than the unfiltered stream's: 1.31–1.59× its CPU per delivery,
 * against 0.91–0.95× with it).
 */
export const DEFAULT_SHARE = 0.75;
const BURST_WINDOW_MS = 100;
/** The longest a batch waits for the credit; the deficit is capped to match. */
const MAX_WAIT_MS = 50;

/**
 * A filtered view's changes are held until it has about as many as an unfiltered frame carries lately
 * (`frameChanges`, whole changes), or for at most MAX_DEFER_MS: the cost is per frame written (a write
 * system call per socket), and a narrow view would otherwise get nearly as many frames as the full
 * stream, each carrying a change or two (the bench's ten views at 50 writes/s: 3.5× the CPU per delivery
 * of the unfiltered stream). At light load a frame carries one change, so nothing is held and a view's
 * change goes out the moment it is read; holding starts once the stream's frames carry two or more.
 * This used to happen only while the loop was saturated, which on a quiet machine never was, even at
 * 5,000 sockets. Its clients' cursor stays where their last frame left them (heartbeats and catch-up use
 * the view's own head), so nothing held is ever skipped.
 */
const MAX_DEFER_MS = 1000;

/** A filtered view's batches held back for a fuller frame, oldest first. */
interface Held {
  batches: Batch[];
  /** Changes in them that concern the view. */
  matched: number;
  since: number;
}

/** What one view's clients in step are sent in this broadcast. */
interface Plan {
  batches: Batch[];
  count: number;
  out?: { messages: string[]; frames: Buffer[]; changes: number };
}

/**
 * The live path: each batch from the feed goes out as frames built once per distinct view (view.ts)
 * and written to every client of that view in step with it; a client ahead of it in part gets only
 * what it lacks, in messages of its own. The work per batch is one build per view that has clients,
 * plus a buffer check and a write per client: a thousand dashboards on five views cost five builds.
 */
export class Broadcaster {
  /** Batches received from the feed but not yet broadcast (coalescing). */
  private pending: Batch[] = [];
  /** The head as of the last broadcast: what clients in step with the stream have. */
  private broadcastHead: Cursor;
  private flushTimer: NodeJS.Timeout | null = null;
  private heldTimer: NodeJS.Timeout | null = null;
  /** Filtered views whose clients have not been sent everything up to the broadcast head. */
  private held = new Map<string, Held>();
  private readonly share: number;
  private readonly burst: number;
  private credit: number;
  private creditAt = performance.now();
  /** Changes per broadcast, smoothed: how full an unfiltered frame is lately. */
  private frameChanges = 1;
  private readonly piecesOf = new WeakMap<Batch, Piece[]>();
  /** Wall time per frame written in a broadcast, smoothed (only broadcasts writing many frames count). */
  private frameMs = 0.01;
  /** The next broadcast of new batches waits for this (performance.now()). */
  private notBefore = 0;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly target: BroadcastTarget,
    /** Of the event loop, what broadcasting may use over time before batches are coalesced. */
    share = DEFAULT_SHARE,
  ) {
    this.broadcastHead = feed.head;
    this.share = share;
    this.burst = this.credit = share * BURST_WINDOW_MS;
  }

  /** What clients in step with the unfiltered stream have. */
  get head(): Cursor {
    return this.pending.length > 0 ? this.broadcastHead : this.feed.head;
  }

  /** What clients of this view in step have: catch-up runs up to here, live takes over after it. */
  headOf(view: View): Cursor {
    const held = this.held.get(view.key);
    return held ? (held.batches[0] as Batch).from : this.head;
  }

  /** Forget what is pending (every client is being reset). */
  clear(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.heldTimer) clearTimeout(this.heldTimer);
    this.flushTimer = this.heldTimer = null;
    this.pending = [];
    this.held.clear();
    this.broadcastHead = this.feed.head;
  }

  /** A batch from the feed: broadcast now, or with the next flush when the credit is spent. */
  push(batch: Batch): void {
    if (this.pending.length === 0) {
      this.broadcastHead = batch.from;
    }
    this.pending.push(batch);
    if (this.flushTimer) return;
    const now = performance.now();
    this.refill(now);
    const wait = Math.max(this.credit > 0 ? 0 : -this.credit / this.share, this.notBefore - now);
    if (wait <= 0) this.flush();
    else this.flushTimer = setTimeout(() => this.flush(), wait);
  }

  private refill(now: number): void {
    this.credit = Math.min(this.burst, this.credit + (now - this.creditAt) * this.share);
    this.creditAt = now;
  }

  private flush(): void {
    this.flushTimer = null;
    const batches = this.pending;
    if (batches.length === 0 && this.held.size === 0) return;
    const started = performance.now();
    this.refill(started);
    this.pending = [];
    if (batches.length > 0) this.broadcastHead = (batches[batches.length - 1] as Batch).to;
    const to = this.broadcastHead;
    const toText = formatCursor(to);
    const fresh = countOf(batches);
    if (fresh > 0) this.frameChanges = this.frameChanges * 0.8 + fresh * 0.2;
    const at = Date.now();
    const framesBefore = this.target.stats.framesSent;
    let sockets = 0;
    const plans = new Map<string, Plan | null>();
    const held = new Map<string, Held>();
    const tracing = traceBroadcast.hasSubscribers && batches.length > 0;
    let firstAt = 0;
    for (const client of this.target.clients()) {
      if (!client.live) continue;
      sockets++;
      let plan = plans.get(client.view.key);
      if (plan === undefined) {
        plan = this.plan(client.view, batches, started, held);
        plans.set(client.view.key, plan);
      }
      // Held: the client keeps the cursor of its last frame (heartbeats tell it that one).
      if (plan === null) continue;
      if (client.ahead) {
        this.sendAhead(client, plan.batches, to);
        continue;
      }
      if (plan.count === 0) continue;
      client.cursor = toText;
      plan.out ??= this.build(plan, client.view, toText);
      const { frames, messages } = plan.out;
      if (tracing && firstAt === 0) firstAt = traceNow();
      for (let i = 0; i < frames.length; i++) if (!this.target.sendFrame(client, frames[i] as Buffer, messages[i] as string, at)) break;
      this.target.stats.framesSent += frames.length;
      this.target.stats.changesSent += plan.out.changes;
    }
    if (tracing) traceBroadcast.publish({ batches, startedAt: performance.timeOrigin + started, firstAt, lastAt: traceNow() });
    // A held view none of whose clients is live any more is let go: its head is the broadcast's again.
    this.held = held;
    const elapsed = performance.now() - started;
    const written = this.target.stats.framesSent - framesBefore;
    if (written >= 100) this.frameMs = this.frameMs * 0.8 + (elapsed / written) * 0.2;
    // Only while a view is held: otherwise every socket was written, and the credit paces the next pass.
    if (batches.length > 0 && this.held.size > 0) this.notBefore = started + (sockets * this.frameMs) / this.share;
    else this.notBefore = 0;
    this.credit = Math.max(-MAX_WAIT_MS * this.share, this.credit - elapsed);
    this.scheduleHeld();
  }

  /** Whether this view's clients get the batches (with any held before) now, or they are held (null). */
  private plan(view: View, fresh: Batch[], now: number, held: Map<string, Held>): Plan | null {
    const before = this.held.get(view.key);
    const batches = before ? before.batches.concat(fresh) : fresh;
    const full = Math.floor(this.frameChanges);
    if (view.filter !== null && this.frameChanges >= 2) {
      const matched = (before?.matched ?? 0) + matchedIn(view.filter, fresh);
      const since = before?.since ?? now;
      // Nothing for the view and no totals: nothing to write, so nothing to save by waiting.
      const something = matched > 0 || (view.stats !== null && countOf(batches) > 0);
      if (something && matched < full && now - since < MAX_DEFER_MS && batches.length > 0) {
        held.set(view.key, { batches, matched, since });
        this.target.stats.viewDeferrals++;
        return null;
      }
    }
    return { batches, count: countOf(batches) };
  }

  private build(plan: Plan, view: View, toText: string): NonNullable<Plan['out']> {
    const pieces = plan.batches.flatMap((b) => this.pieces(b));
    const messages = changeMessages(pieces, toText, view);
    const changes = view.filter === null ? plan.count : messages.reduce((n, m) => n + countChanges(m), 0);
    this.target.stats.framesBuilt++;
    return { messages, frames: messages.map(textFrame), changes };
  }

  /** A batch's transactions as message pieces, once per batch (shared by every view and broadcast). */
  private pieces(batch: Batch): Piece[] {
    let pieces = this.piecesOf.get(batch);
    if (!pieces) {
      pieces = batch.txns.map((t) => ({
        changes: t.changes,
        more: t.more,
        continues: batch.from.partials.some((p) => p.xid === t.xid),
        cursor: () => formatCursor(cursorAfter(batch, t.xid)),
      }));
      this.piecesOf.set(batch, pieces);
    }
    return pieces;
  }

  /** Held views go out by MAX_DEFER_MS even if the feed goes quiet. */
  private scheduleHeld(): void {
    if (this.heldTimer) clearTimeout(this.heldTimer);
    this.heldTimer = null;
    if (this.held.size === 0) return;
    let oldest = Number.POSITIVE_INFINITY;
    for (const h of this.held.values()) oldest = Math.min(oldest, h.since);
    this.heldTimer = setTimeout(
      () => {
        this.heldTimer = null;
        if (!this.flushTimer) this.flush();
      },
      Math.max(0, oldest + MAX_DEFER_MS - performance.now()) + 1,
    );
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

function countOf(batches: readonly Batch[]): number {
  let n = 0;
  for (const b of batches) for (const t of b.txns) n += t.changes.length;
  return n;
}

function matchedIn(filter: Filter, batches: readonly Batch[]): number {
  let n = 0;
  for (const b of batches) for (const t of b.txns) for (const c of t.changes) if (entryOf(filter, c) !== null) n++;
  return n;
}
