import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import { traceBatch, traceNow } from '../trace.js';
import { type Batch, RecentBatches, type Txn, transactions } from './batches.js';
import {
  claimGeneration,
  forgetOtherHistory,
  type LoggedChange,
  readNewChanges,
  readRange,
  readSnapshot,
  readSummaryKey,
} from './change-log.js';
import { type Cursor, contains, cursor, EMPTY, equals, formatCursor, inHistory, truncate, union } from './cursor.js';
import type { Doorbell } from './doorbell.js';
import type { Listener } from './listener.js';
import { pruneChanges, type RetentionPolicy } from './retention.js';
import { extend, OPEN_SUMMARIES_READ, parseSummary } from './summary.js';

/**
 * The feed: turns the change log into a stream of batches of whole transactions. Its head is a cursor
 * (feed/cursor.ts): a snapshot of the database, "every change of every transaction visible in it has
 * been handed out". A read takes the next snapshot in the same statement as the rows it does not have
 * yet, hands those out, and makes that snapshot the head: a transaction is handed out at the first read
 * after it commits, whatever else is still running, and exactly once. It reads whenever the doorbell
 * rings, on a safety-net timer, and after every listener reconnect, one read at a time: notifications that arrive during a read fold into one more read, so a
 * burst of a thousand commits costs a handful of queries, not a thousand. Reads go through the pool, so
 * the feed keeps moving (at the timer's pace) even while the LISTEN connection is down. A small
 * transaction's notification carries its changes (a summary, feed/summary.ts): between reads, the feed
 * hands those out without reading when it can tell that is safe, and reads when it cannot.
 *
 * It also keeps the most recent changes in memory, so clients that resume from a recent cursor (the
 * common case: a reconnect) are served without touching the database.
 *
 * Over 300 lines because the read loop, the head and the recent-changes window share one invariant
 * (the head is exactly what has been handed out, and the window ends at it): split, each half would
 * have to re-check the other's state.
 */
/** Summaries kept while a read runs; beyond, one more read instead (it has them all anyway). */
const MAX_HEARD_DURING_READ = 1000;

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
  retention: RetentionPolicy & { intervalMs: number };
}

interface FeedEvents {
  batch: [Batch];
  /** Changes this instance had not handed out were pruned, or the database went back in time: its clients must reset. */
  gap: [{ reason: 'pruned' | 'rewound' }];
  /** Awake: reading and keeping the log (with the listener). Asleep: no clients, the database left alone. */
  awake: [];
  asleep: [];
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
  /** Transactions handed out from their commit's notification, without a read. */
  summaries: number;
  /** Notifications that looked like summaries but did not verify (another key, or forged). */
  summariesRefused: number;
  idle: boolean;
}

export class ChangeFeed extends EventEmitter<FeedEvents> {
  private headCursor: Cursor = EMPTY;
  private readonly memory: RecentBatches;
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
  /** Summaries heard while a read ran: judged once it has finished (see heard()). */
  private heardDuringRead: string[] = [];
  private readonly stats = {
    lastChangeAt: null as number | null,
    lastLagMs: null as number | null,
    reads: 0,
    readErrors: 0,
    changesRead: 0,
    summaries: 0,
    summariesRefused: 0,
  };
  /** The current generation's summary key (migrations/0014) and the history it belongs to. */
  private summaryKey: { key: Buffer | null; history: string | null } = { key: null, history: null };
  private loadingKey: Promise<void> | null = null;

  constructor(private readonly options: FeedOptions) {
    super();
    this.memory = new RecentBatches(options.memoryChanges);
    this.on('error', () => undefined);
    options.listener.on('notify', (payload) => this.heard(payload));
    options.listener.on('connected', () => this.requestRead());
  }

  get head(): Cursor {
    return this.headCursor;
  }

  get state(): FeedState {
    return { head: formatCursor(this.headCursor), ...this.stats, idle: this.sleeping };
  }

  async start(): Promise<void> {
    try {
      await claimGeneration(this.options.db);
    } catch (err) {
      this.options.log.warn({ event: 'feed.claim_failed', reason: (err as Error).message }, 'could not check the feed generation');
    }
    this.headCursor = await readSnapshot(this.options.db);
    this.memory.clear(this.headCursor);
    // Before the listener starts, so it listens on the summaries' channel from its first connection.
    await this.loadSummaryKey();
    this.started = true;
    this.options.log.info({ event: 'feed.started', head: formatCursor(this.headCursor) }, 'feed started');
    this.wake();
    if (this.options.idleDisconnectMs > 0 && this.demand === 0) this.scheduleSleep();
  }

  async stop(): Promise<void> {
    this.started = false;
    this.clearTimers();
    this.emit('asleep');
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
      this.emit('asleep');
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
    this.emit('awake');
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
        if (removed > 0) log.info({ event: 'retention.pass', removedChanges: removed }, 'retention pass');
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

  /**
   * A notification: the doorbell reads; a summary is taken if it can be (else read). One heard while a
   * read runs waits for it, then is judged against the head the read left: most are had by then, the
   * rest go out without another read (folding them into one more read, as doorbells are, made every
   * read at a few hundred writes a second cause the next).
   */
  private heard(payload: string): void {
    if (payload === '') {
      this.requestRead();
    } else if (this.reading) {
      if (this.heardDuringRead.length < MAX_HEARD_DURING_READ) this.heardDuringRead.push(payload);
      else this.readAgain = true;
    } else if (!this.takeSummary(payload)) {
      this.requestRead();
    }
  }

  /** After a read: the summaries heard meanwhile, in order; the first that needs a read waits for it, with the rest. */
  private judgeHeard(): void {
    const heard = this.heardDuringRead;
    this.heardDuringRead = [];
    for (let i = 0; i < heard.length; i++) {
      if (this.takeSummary(heard[i] as string)) continue;
      this.requestRead();
      if (this.reading) this.heardDuringRead = heard.slice(i + 1).concat(this.heardDuringRead);
      return;
    }
  }

  /**
   * A notification with a summary: hand its transaction out if that is safe without a read (see
   * feed/summary.ts). Never while a read runs or is due: that read may have moved the head past what
   * the summary was judged against, and a read after a reconnect must come before any summary.
   */
  private takeSummary(payload: string): boolean {
    if (!this.started || this.sleeping || this.reading || this.unfinished) return false;
    const { key, history } = this.summaryKey;
    if (!key || history !== this.headCursor.history) return false;
    const summary = parseSummary(payload, key);
    if (!summary) {
      if (payload.startsWith('1 ')) this.stats.summariesRefused++;
      return false;
    }
    const step = extend(this.headCursor, summary);
    if (step.kind === 'read') return false;
    if (step.kind === 'take') {
      this.stats.summaries++;
      this.publish({ from: this.headCursor, to: step.to, txns: [{ xid: summary.xid, changes: step.changes, more: false }] });
      // Only a read closes them (feed/summary.ts): read now, after this transaction has gone out.
      if (step.to.partials.length >= OPEN_SUMMARIES_READ) this.requestRead();
    }
    return true;
  }

  /** The summary key and channel of the database's generation; again whenever a read finds another history. */
  private loadSummaryKey(): Promise<void> {
    this.loadingKey ??= readSummaryKey(this.options.db)
      .then(({ key, channel, history }) => {
        this.summaryKey = { key, history };
        this.options.listener.summaryChannel = channel;
      })
      .catch((err: unknown) => {
        // Without the key every summary is only a doorbell: the feed reads, as it did before them.
        this.options.log.info(
          { event: 'feed.summary_key_unavailable', reason: (err as Error).message },
          'summaries off: their key cannot be read',
        );
        this.summaryKey = { key: null, history: this.headCursor.history ?? null };
        this.options.listener.summaryChannel = null;
      })
      .finally(() => {
        this.loadingKey = null;
      });
    return this.loadingKey;
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
    if (this.started) this.judgeHeard();
    else this.heardDuringRead = [];
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
    if (history !== this.summaryKey.history) void this.loadSummaryKey();
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
    // Nothing new and the same snapshot: nothing to tell anyone (a quiet poll).
    if (txns.length > 0 || !equals(to, from)) this.publish({ from, to, txns });
    return full || finishing;
  }

  /**
   * The database is another history than the one this feed read (a restore into another cluster, a
   * point-in-time recovery, a failover: its history tag changed, or its transaction counter is below
   * what the feed handed out, or the pruning mark is from such a future). Cursors from before cannot be
   * trusted: forget the other history and reset every client.
   */
  private async rewound(): Promise<void> {
    const { removed, mark, history } = await forgetOtherHistory(this.options.db);
    this.restartAt(inHistory(mark, history), 'rewound', { removedChanges: removed });
  }

  /**
   * Retention (here or on another instance) removed changes this feed had not handed out yet: it lagged,
   * slept, or a tiny limit was set. Reading on would hand clients a silent gap, so the feed moves past the
   * mark and says so; the hub resets its clients, which reload their snapshot.
   */
  private skipPruned(mark: Cursor): void {
    this.restartAt(union(this.headCursor, mark), 'pruned', {});
  }

  /** Goes on from `head`, forgetting what is in memory; every client must reset. */
  private restartAt(head: Cursor, reason: 'rewound' | 'pruned', details: Record<string, unknown>): void {
    const [event, message] =
      reason === 'rewound'
        ? ['feed.rewound', 'the database went back in time or is another history; clients will be reset']
        : ['feed.gap', 'changes were pruned before this instance read them; clients will be reset'];
    this.options.log.warn({ event, from: formatCursor(this.headCursor), to: formatCursor(head), ...details }, message);
    this.headCursor = head;
    this.unfinished = false;
    this.memory.clear(head);
    this.emit('gap', { reason });
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
    this.memory.add(batch, count);
    if (traceBatch.hasSubscribers) traceBatch.publish({ at: traceNow(), batch });
    this.emit('batch', batch);
  }

  /** Whether memory reaches back to a client at `after` (everything it lacks is in memory). */
  remembers(after: Cursor): boolean {
    return this.memory.reaches(after);
  }

  /** What a client at `after` lacks, from memory, up to `upTo` (see RecentBatches.since). */
  recent(after: Cursor, upTo: Cursor): { batch: Batch; txns: Txn[] }[] | undefined {
    return this.memory.since(after, upTo);
  }

  /** A page of older changes from the database, for clients further behind than memory reaches. */
  readRange(after: Cursor, upTo: Cursor, limit: number, partialsOnly = false) {
    return readRange(this.options.db, after, upTo, limit, partialsOnly);
  }
}
