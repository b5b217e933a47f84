import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import { pruneIdempotencyKeys } from '../orders/repository.js';
import { type LoggedChange, readFinalChanges, readHead, readRange } from './change-log.js';
import { comparePositions, formatPosition, type Position } from './cursor.js';
import type { Doorbell } from './doorbell.js';
import type { Listener } from './listener.js';
import { pruneChanges, type RetentionPolicy } from './retention.js';

/**
 * The feed: turns the change log into an ordered stream of batches. It reads "everything after the
 * head that is final" whenever the doorbell rings, on a safety-net timer, and after every listener
 * reconnect, one read at a time: notifications that arrive during a read fold into one more read, so a
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

export interface Batch {
  changes: LoggedChange[];
  /** Head before this batch. */
  from: Position;
  /** Head after this batch (the last change's position). */
  to: Position;
}

interface FeedEvents {
  batch: [Batch];
  /** Changes after `from` up to `to` were pruned before this instance read them: its clients must reset. */
  gap: [{ from: Position; to: Position }];
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
  private headPos: Position = { xid: 0, seq: 0 };
  private ring: LoggedChange[] = [];
  /** Position just before ring[0]: the ring holds every change in (ringFrom, head]. */
  private ringFrom: Position = { xid: 0, seq: 0 };
  private reading = false;
  private readAgain = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private heldTimer: NodeJS.Timeout | null = null;
  private heldDelay = 0;
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

  get head(): Position {
    return this.headPos;
  }

  get state(): FeedState {
    return { head: formatPosition(this.headPos), ...this.stats, idle: this.sleeping };
  }

  async start(): Promise<void> {
    this.headPos = await readHead(this.options.db);
    this.ringFrom = this.headPos;
    this.started = true;
    this.options.log.info({ event: 'feed.started', head: formatPosition(this.headPos) }, 'feed started');
    this.wake();
    if (this.options.idleDisconnectMs > 0 && this.demand === 0) this.scheduleSleep();
  }

  async stop(): Promise<void> {
    this.started = false;
    this.clearTimers();
    await this.options.listener.stop();
  }

  private clearTimers(): void {
    for (const t of [this.pollTimer, this.retentionTimer, this.idleTimer, this.heldTimer]) if (t) clearTimeout(t);
    this.pollTimer = this.retentionTimer = this.idleTimer = this.heldTimer = null;
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

  /**
   * Changes wait behind a running transaction: look again soon (20 ms, doubling up to the poll interval)
   * instead of waiting for a doorbell that the blocking transaction may never ring.
   */
  private scheduleHeldRead(held: boolean): void {
    if (!held || this.sleeping) {
      this.heldDelay = 0;
      return;
    }
    if (this.heldTimer) return;
    this.heldDelay = Math.min(this.options.pollMs, this.heldDelay ? this.heldDelay * 2 : 20);
    this.heldTimer = setTimeout(() => {
      this.heldTimer = null;
      if (!this.sleeping) this.requestRead();
    }, this.heldDelay);
    this.heldTimer.unref();
  }

  private async readLoop(): Promise<void> {
    try {
      do {
        this.readAgain = false;
        let full: boolean;
        do {
          const { changes, pruned, held } = await readFinalChanges(this.options.db, this.headPos, this.options.batchSize);
          this.stats.reads++;
          this.scheduleHeldRead(held);
          if (comparePositions(pruned, this.headPos) > 0 && this.started) this.skipPruned(pruned);
          full = changes.length === this.options.batchSize;
          if (changes.length > 0 && this.started) this.publish(changes);
        } while (full && this.started);
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
   * Retention (here or on another instance) removed changes this feed had not read yet: it lagged, slept,
   * or a tiny limit was set. Reading on would hand clients a silent gap, so the feed jumps to the mark
   * and says so; the hub resets its clients, which reload their snapshot.
   */
  private skipPruned(pruned: Position): void {
    const from = this.headPos;
    this.options.log.warn(
      { event: 'feed.gap', from: formatPosition(from), to: formatPosition(pruned) },
      'changes were pruned before this instance read them; clients will be reset',
    );
    this.headPos = pruned;
    this.ring = [];
    this.ringFrom = pruned;
    this.emit('gap', { from, to: pruned });
  }

  private publish(changes: LoggedChange[]): void {
    const from = this.headPos;
    const last = changes[changes.length - 1] as LoggedChange;
    this.headPos = { xid: last.xid, seq: last.seq };
    const now = Date.now();
    this.stats.lastChangeAt = now;
    this.stats.lastLagMs = Math.max(0, now - last.atMs);
    this.stats.changesRead += changes.length;
    this.remember(changes);
    this.emit('batch', { changes, from, to: this.headPos });
  }

  private remember(changes: LoggedChange[]): void {
    const max = this.options.memoryChanges;
    if (max === 0) {
      this.ringFrom = this.headPos;
      return;
    }
    for (const c of changes) this.ring.push(c);
    if (this.ring.length > max * 1.5) {
      const dropped = this.ring.splice(0, this.ring.length - max);
      const lastDropped = dropped[dropped.length - 1] as LoggedChange;
      this.ringFrom = { xid: lastDropped.xid, seq: lastDropped.seq };
    }
  }

  /**
   * Changes in (after, head] from memory, or undefined when memory does not reach back that far.
   * Synchronous, so the caller can join the live stream at exactly the head it read up to.
   */
  recentSince(after: Position): LoggedChange[] | undefined {
    if (comparePositions(after, this.ringFrom) < 0) return undefined;
    let lo = 0;
    let hi = this.ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (comparePositions(this.ring[mid] as LoggedChange, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return this.ring.slice(lo);
  }

  /** Changes in (after, upTo] from the database, for clients further behind than memory reaches. */
  readRange(after: Position, upTo: Position, limit: number) {
    return readRange(this.options.db, after, upTo, limit);
  }
}
