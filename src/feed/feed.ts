import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import { pruneIdempotencyKeys } from '../orders/repository.js';
import { forgetOtherHistory, type LoggedChange, readNewChanges, readRange, readSnapshot } from './change-log.js';
import { type Cursor, contains, cursor, EMPTY, formatCursor, has, inHistory, prefix, truncate, union } from './cursor.js';
import type { Doorbell } from './doorbell.js';
import type { Listener } from './listener.js';
import { pruneChanges, type RetentionPolicy } from './retention.js';

/**
 * The feed: turns the change log into a stream of batches of whole transactions. Its head is a cursor
 * (feed/cursor.ts): a snapshot of the database, "every change of every transaction visible in it has
 * been handed out". A read takes the next snapshot in the same statement as the rows it does not have
 * yet, hands those out, and makes that snapshot the head: a transaction is handed out at the first read
 * after it commits, whatever else is still running, and exactly once. It reads whenever the doorbell
 * rings, on a safety-net timer, and after every listener reconnect, one read at a time: notifications that arrive during a read fold into one more read, so a
 * burst of a thousand commits costs a handful of queries, not a thousand. Reads go through the pool, so
 * the feed keeps moving (at the timer's pace) even while the LISTEN connection is down.
 *
 * It also keeps the most recent changes in memory, so clients that resume from a recent cursor (the
 * common case: a reconnect) are served without touching the database.
 */
export interface FeedOptions {
  db: Database;
  listener: Listener;
  /** Rings the other instances after this one's own writes (see doorbell.ts); absent: rely on triggers. */
  doorbell?: Doorbell;
  log: Logger;
  pollMs: number;
  batchSize: number;
  memoryChanges: number;
  idleDisconnectMs: number;
  retention: RetentionPolicy & { intervalMs: number; idempotencyTtlHours: number };
}

/** One transaction's changes in a batch, in seq order. */
export interface Txn {
  xid: number;
  changes: LoggedChange[];
  /** The transaction was too large for one read: its next changes come in the next batch. */
  more: boolean;
}

export interface Batch {
  /** Head before this batch. */
  from: Cursor;
  /** Head after it: `from` plus every change of the batch. */
  to: Cursor;
  /** In xid order; empty when only the snapshot moved. */
  txns: Txn[];
}

/**
 * What a client that had `batch.from` has once it has received the batch's transactions up to the one
 * with this xid (they come in xid order). After the last one: `batch.to`.
 */
export function cursorAfter(batch: Batch, xid: number): Cursor {
  const last = batch.txns[batch.txns.length - 1];
  if (!last || xid >= last.xid) return batch.to;
  return union(batch.from, prefix(batch.to, xid + 1));
}

/** Changes in (xid, seq) order, grouped by transaction. */
export function transactions(changes: readonly LoggedChange[]): Txn[] {
  const txns: Txn[] = [];
  for (const c of changes) {
    const last = txns[txns.length - 1];
    if (last && last.xid === c.xid) last.changes.push(c);
    else txns.push({ xid: c.xid, changes: [c], more: false });
  }
  return txns;
}

interface FeedEvents {
  batch: [Batch];
  /** Changes this instance had not handed out were pruned, or the database went back in time: its clients must reset. */
  gap: [{ reason: 'pruned' | 'rewound' }];
  error: [unknown];
}

export interface FeedState {
  head: string;
  lastChangeAt: number | null;
  /** Now minus the write time of the last change handed out, when it was handed out (ms). */
  lastLagMs: number | null;
  reads: number;
  readErrors: number;
  changesRead: number;
  idle: boolean;
}

export class ChangeFeed extends EventEmitter<FeedEvents> {
  private headCursor: Cursor = EMPTY;
  /** Recent batches, oldest first, holding every change that `head` has and `ringFrom` lacks. */
  private ring: Batch[] = [];
  private ringChanges = 0;
  private ringFrom: Cursor = EMPTY;
  private reading = false;
  private readAgain = false;
  /** The last batch ended inside a large transaction: the next read finishes it first. */
  private unfinished = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private started = false;
  private sleeping = false;
  private demand = 0;
  private readonly stats = {
    lastChangeAt: null as number | null,
    lastLagMs: null as number | null,
    reads: 0,
    readErrors: 0,
    changesRead: 0,
  };

  constructor(private readonly options: FeedOptions) {
    super();
    this.on('error', () => undefined);
    options.listener.on('notify', () => this.requestRead());
    options.listener.on('connected', () => this.requestRead());
  }

  get head(): Cursor {
    return this.headCursor;
  }

  get state(): FeedState {
    return { head: formatCursor(this.headCursor), ...this.stats, idle: this.sleeping };
  }

  async start(): Promise<void> {
    this.headCursor = await readSnapshot(this.options.db);
    this.ringFrom = this.headCursor;
    this.started = true;
    this.options.log.info({ event: 'feed.started', head: formatCursor(this.headCursor) }, 'feed started');
    this.wake();
    if (this.options.idleDisconnectMs > 0 && this.demand === 0) this.scheduleSleep();
  }

  async stop(): Promise<void> {
    this.started = false;
    this.clearTimers();
    await this.options.listener.stop();
  }

  private clearTimers(): void {
    for (const t of [this.pollTimer, this.retentionTimer, this.idleTimer]) if (t) clearTimeout(t);
    this.pollTimer = this.retentionTimer = this.idleTimer = null;
  }

  /** The hub reports how many clients are connected; with none for a while the feed can sleep. */
  setDemand(clients: number): void {
    this.demand = clients;
    if (!this.started || this.options.idleDisconnectMs === 0) return;
    if (clients > 0) {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = null;
      if (this.sleeping) this.wake();
    } else if (!this.idleTimer && !this.sleeping) {
      this.scheduleSleep();
    }
  }

  private scheduleSleep(): void {
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.demand > 0 || !this.started) return;
      this.sleeping = true;
      if (this.pollTimer) clearTimeout(this.pollTimer);
      if (this.retentionTimer) clearTimeout(this.retentionTimer);
      this.pollTimer = this.retentionTimer = null;
      this.options.log.info(
        { event: 'feed.sleeping', idleMs: this.options.idleDisconnectMs },
        'no clients: listener disconnected so the database may sleep',
      );
      void this.options.listener.stop();
    }, this.options.idleDisconnectMs);
    this.idleTimer.unref();
  }

  private wake(): void {
    if (this.sleeping) this.options.log.info({ event: 'feed.waking' }, 'a client connected: listener reconnecting');
    this.sleeping = false;
    this.options.listener.start();
    this.schedulePoll();
    this.scheduleRetention(1000);
    this.requestRead();
  }

  private schedulePoll(): void {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      this.requestRead();
      if (this.started && !this.sleeping) this.schedulePoll();
    }, this.options.pollMs);
    this.pollTimer.unref();
  }

  private scheduleRetention(delayMs: number): void {
    if (this.retentionTimer) clearTimeout(this.retentionTimer);
    this.retentionTimer = setTimeout(async () => {
      const { db, log, retention } = this.options;
      try {
        const removed = await pruneChanges(db, retention);
        const keys = await pruneIdempotencyKeys(db, retention.idempotencyTtlHours);
        if (removed > 0 || keys > 0)
          log.info({ event: 'retention.pass', removedChanges: removed, removedIdempotencyKeys: keys }, 'retention pass');
      } catch (err) {
        log.warn({ event: 'retention.failed', reason: (err as Error).message }, 'retention pass failed; will retry');
      }
      if (this.started && !this.sleeping) this.scheduleRetention(retention.intervalMs);
    }, delayMs);
    this.retentionTimer.unref();
  }

  /** This instance committed a change: read now, and let the other instances know. */
  wroteLocally(): void {
    this.requestRead();
    this.options.doorbell?.ring();
  }

  /** Ask for a read of the log; calls during a read fold into one more read after it. */
  requestRead(): void {
    if (!this.started) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    void this.readLoop();
  }

  private async readLoop(): Promise<void> {
    try {
      do {
        this.readAgain = false;
        while (this.started && (await this.readOnce()));
      } while (this.readAgain && this.started);
    } catch (err) {
      this.stats.readErrors++;
      this.options.log.warn({ event: 'feed.read_failed', reason: (err as Error).message }, 'reading the change log failed; will retry');
      this.emit('error', err);
    } finally {
      this.reading = false;
    }
  }

  /**
   * One read: the changes the head lacks, in the snapshot taken with them. Returns whether to read again
   * at once (the read hit its limit, or the head had to move first).
   */
  private async readOnce(): Promise<boolean> {
    const from = this.headCursor;
    const finishing = this.unfinished;
    const { snapshot, history, mark, changes, full, nextXid } = await readNewChanges(
      this.options.db,
      from,
      this.options.batchSize,
      finishing,
    );
    this.stats.reads++;
    if (!this.started) return false;
    if (history !== from.history || snapshot.xmax < from.snapshot.xmax || mark.snapshot.xmax > snapshot.xmax) {
      await this.rewound();
      return true;
    }
    if (!contains(from, mark)) {
      this.skipPruned(mark);
      return true;
    }
    const txns = transactions(changes);
    const last = txns[txns.length - 1];
    // The page ends inside its last transaction: the first row beyond it is of the same one.
    const cutInside = full && last !== undefined && nextXid === last.xid;
    let to: Cursor;
    if (finishing) {
      // The rest of a large transaction, before anything else: the head keeps it as a partial up to
      // its last change read (a committed transaction gets no more), until a snapshot has it whole.
      // Not a union with this read's snapshot: only the large transaction's rows were read.
      const pieces = txns.map((t) => ({ xid: t.xid, seq: (t.changes[t.changes.length - 1] as LoggedChange).seq }));
      if (last) last.more = cutInside;
      this.unfinished = cutInside;
      to = cursor(from.snapshot, [...from.partials, ...pieces], from.history);
    } else if (!full) {
      to = union(from, cursor(snapshot));
    } else if (!last || !cutInside) {
      // Whole transactions up to the last one read; the next read goes on from there.
      to = last ? union(from, cursor(truncate(snapshot, last.xid + 1))) : from;
    } else if (txns.length > 1) {
      // A page boundary inside a transaction: hand out the whole ones before it, and read it again whole.
      txns.pop();
      to = union(from, cursor(truncate(snapshot, last.xid)));
    } else {
      // A single transaction larger than a page goes out in pieces, each saying more follows.
      last.more = true;
      this.unfinished = true;
      const lastSeq = (last.changes[last.changes.length - 1] as LoggedChange).seq;
      to = union(from, cursor(truncate(snapshot, last.xid), [{ xid: last.xid, seq: lastSeq }]));
    }
    this.publish({ from, to, txns });
    return full || finishing;
  }

  /**
   * The database is another history than the one this feed read (a restore into another cluster, a
   * point-in-time recovery, a failover: its history tag changed, or its transaction counter is below
   * what the feed handed out, or the pruning mark is from such a future). Cursors from before cannot be
   * trusted: forget the other history and reset every client.
   */
  private async rewound(): Promise<void> {
    const { removed, mark: moved, history } = await forgetOtherHistory(this.options.db);
    const mark = inHistory(moved, history);
    this.options.log.warn(
      { event: 'feed.rewound', from: formatCursor(this.headCursor), to: formatCursor(mark), removedChanges: removed },
      'the database went back in time; clients will be reset',
    );
    this.headCursor = mark;
    this.unfinished = false;
    this.ring = [];
    this.ringChanges = 0;
    this.ringFrom = mark;
    this.emit('gap', { reason: 'rewound' });
  }

  /**
   * Retention (here or on another instance) removed changes this feed had not handed out yet: it lagged,
   * slept, or a tiny limit was set. Reading on would hand clients a silent gap, so the feed moves past the
   * mark and says so; the hub resets its clients, which reload their snapshot.
   */
  private skipPruned(mark: Cursor): void {
    const to = union(this.headCursor, mark);
    this.options.log.warn(
      { event: 'feed.gap', from: formatCursor(this.headCursor), to: formatCursor(to) },
      'changes were pruned before this instance read them; clients will be reset',
    );
    this.headCursor = to;
    this.unfinished = false;
    this.ring = [];
    this.ringChanges = 0;
    this.ringFrom = to;
    this.emit('gap', { reason: 'pruned' });
  }

  private publish(batch: Batch): void {
    this.headCursor = batch.to;
    let count = 0;
    for (const t of batch.txns) count += t.changes.length;
    if (count > 0) {
      const lastTxn = batch.txns[batch.txns.length - 1] as Txn;
      const now = Date.now();
      this.stats.lastChangeAt = now;
      this.stats.lastLagMs = Math.max(0, now - (lastTxn.changes[lastTxn.changes.length - 1] as LoggedChange).atMs);
      this.stats.changesRead += count;
    }
    this.remember(batch, count);
    this.emit('batch', batch);
  }

  private remember(batch: Batch, count: number): void {
    const max = this.options.memoryChanges;
    const last = this.ring[this.ring.length - 1];
    if (max === 0 || !last) {
      if (count === 0 || max === 0) {
        this.ringFrom = batch.to;
        return;
      }
    } else if (count === 0) {
      // Only the snapshot moved: the last batch now reaches the new head (nothing lies in between).
      this.ring[this.ring.length - 1] = { from: last.from, to: batch.to, txns: last.txns };
      return;
    }
    this.ring.push(batch);
    this.ringChanges += count;
    while (this.ringChanges > max && this.ring.length > 1) {
      const dropped = this.ring.shift() as Batch;
      for (const t of dropped.txns) this.ringChanges -= t.changes.length;
      this.ringFrom = dropped.to;
    }
  }

  /** Whether memory reaches back to a client at `after` (everything it lacks is in memory). */
  remembers(after: Cursor): boolean {
    return contains(after, this.ringFrom);
  }

  /**
   * The changes a client at `after` lacks, from the batches in memory up to `upTo` (a head the feed has
   * passed), each with the batch it came in; undefined when memory does not reach back that far.
   * Synchronous, so the caller can join the live stream at exactly the point it read up to.
   */
  recent(after: Cursor, upTo: Cursor): { batch: Batch; txns: Txn[] }[] | undefined {
    if (!contains(after, this.ringFrom)) return undefined;
    const out: { batch: Batch; txns: Txn[] }[] = [];
    for (const batch of this.ring) {
      const txns: Txn[] = [];
      for (const t of batch.txns) {
        const changes = t.changes.filter((c) => !has(after, c.xid, c.seq) && has(upTo, c.xid, c.seq));
        if (changes.length > 0) txns.push({ xid: t.xid, changes, more: t.more });
      }
      if (txns.length > 0) out.push({ batch, txns });
    }
    return out;
  }

  /** A page of older changes from the database, for clients further behind than memory reaches. */
  readRange(after: Cursor, upTo: Cursor, limit: number, partialsOnly = false) {
    return readRange(this.options.db, after, upTo, limit, partialsOnly);
  }
}
