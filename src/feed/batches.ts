import type { LoggedChange } from './change-log.js';
import { type Cursor, contains, EMPTY, has, prefix, union } from './cursor.js';

/**
 * Batches: what the feed hands out, whole transactions between two cursors; and the memory of the
 * recent ones, from which clients that reconnect are brought up to date without a query.
 */
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

/**
 * The most recent batches, oldest first: every change the feed's head has and `from` lacks, up to about
 * `maxChanges` changes (0 keeps nothing).
 */
export class RecentBatches {
  private batches: Batch[] = [];
  private changes = 0;
  private from: Cursor = EMPTY;

  constructor(private readonly maxChanges: number) {}

  /** Forget everything; memory starts at `head`. */
  clear(head: Cursor): void {
    this.batches = [];
    this.changes = 0;
    this.from = head;
  }

  /** A batch the feed handed out, with its number of changes. */
  add(batch: Batch, count: number): void {
    const max = this.maxChanges;
    const last = this.batches[this.batches.length - 1];
    if (max === 0 || !last) {
      if (count === 0 || max === 0) {
        this.from = batch.to;
        return;
      }
    } else if (count === 0) {
      // Only the snapshot moved: the last batch now reaches the new head (nothing lies in between).
      this.batches[this.batches.length - 1] = { from: last.from, to: batch.to, txns: last.txns };
      return;
    }
    this.batches.push(batch);
    this.changes += count;
    while (this.changes > max && this.batches.length > 1) {
      const dropped = this.batches.shift() as Batch;
      for (const t of dropped.txns) this.changes -= t.changes.length;
      this.from = dropped.to;
    }
  }

  /** Whether memory reaches back to a client at `after` (everything it lacks is in memory). */
  reaches(after: Cursor): boolean {
    return contains(after, this.from);
  }

  /**
   * The changes a client at `after` lacks, from the batches in memory up to `upTo` (a head the feed has
   * passed), each with the batch it came in; undefined when memory does not reach back that far.
   * Synchronous, so the caller can join the live stream at exactly the point it read up to.
   */
  since(after: Cursor, upTo: Cursor): { batch: Batch; txns: Txn[] }[] | undefined {
    if (!contains(after, this.from)) return undefined;
    const out: { batch: Batch; txns: Txn[] }[] = [];
    for (const batch of this.batches) {
      const txns: Txn[] = [];
      for (const t of batch.txns) {
        const changes = t.changes.filter((c) => !has(after, c.xid, c.seq) && has(upTo, c.xid, c.seq));
        if (changes.length > 0) txns.push({ xid: t.xid, changes, more: t.more });
      }
      if (txns.length > 0) out.push({ batch, txns });
    }
    return out;
  }
}
