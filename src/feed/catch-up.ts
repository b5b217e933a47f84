import { cursorAfter, type Txn, transactions } from './batches.js';
import type { LoggedChange } from './change-log.js';
import { type Cursor, contains, cursor, formatCursor, prefix, union } from './cursor.js';
import type { ChangeFeed } from './feed.js';

/**
 * Resume: bring a client from its cursor up to the feed, from memory when the feed still holds what it
 * lacks, otherwise from the log in pages, and report the moment it is level, synchronously with the
 * last check, so the caller joins the live stream with nothing between. The client may also be ahead of
 * this instance in part (its cursor came from a faster instance, or is a GET /orders snapshot taken after
 * the feed's last read): what it has is then the union of the two, and the live stream is filtered for
 * it until the feed has caught up.
 */
export interface CatchUpSink {
  /** Sends these transactions (with the cursor after each); resolves false when the client is gone. */
  send(pieces: CatchUpPiece[], final: Cursor): Promise<boolean>;
}

export interface CatchUpPiece {
  changes: readonly LoggedChange[];
  more: boolean;
  /** The transaction began before this piece (the client has its first changes). */
  continues: boolean;
  cursor: () => Cursor;
}

export type CatchUpResult = { kind: 'level'; cursor: Cursor } | { kind: 'closed' } | { kind: 'pruned' };

export async function catchUp(
  feed: ChangeFeed,
  from: Cursor,
  /** The point the live stream continues from (the hub's last broadcast). */
  head: () => Cursor,
  sink: CatchUpSink,
  pageSize: number,
  /** Runs each read of the log (the caller bounds how many run at once). */
  reading: <T>(read: () => Promise<T>) => Promise<T> = (read) => read(),
): Promise<CatchUpResult> {
  let have = from;
  // A client that stopped inside a large transaction gets the rest of it before anything else, so its
  // transactions stay whole (a lower one that committed meanwhile would sort in between).
  let finishing = from.partials.length > 0;
  for (;;) {
    const upTo = head();
    if (contains(have, upTo)) return { kind: 'level', cursor: have };
    const recent = feed.recent(have, upTo);
    if (recent) {
      const start = have;
      const pieces = recent.flatMap(({ batch, txns }) =>
        txns.map((t) => ({
          changes: t.changes,
          more: t.more,
          continues: start.partials.some((p) => p.xid === t.xid),
          cursor: () => union(start, cursorAfter(batch, t.xid)),
        })),
      );
      const final = union(have, upTo);
      if (pieces.length === 0) return { kind: 'level', cursor: final };
      // Sending may wait for the client to drain, and the head may move meanwhile: look again.
      if (!(await sink.send(pieces, final))) return { kind: 'closed' };
      have = final;
      continue;
    }
    const page = await reading(() => feed.readRange(have, upTo, pageSize, finishing));
    if (!contains(have, page.mark)) return { kind: 'pruned' };
    if (finishing) {
      finishing = page.full;
      if (page.changes.length === 0) continue;
      const txns = transactions(page.changes);
      const last = txns[txns.length - 1] as (typeof txns)[number];
      last.more = page.full && page.nextXid === last.xid;
      const next = cursor(
        have.snapshot,
        [...have.partials, ...txns.map((t) => ({ xid: t.xid, seq: (t.changes[t.changes.length - 1] as LoggedChange).seq }))],
        have.history,
      );
      if (
        !(await sink.send(
          txns.map((t) => ({ changes: t.changes, more: t.more, continues: true, cursor: () => next })),
          next,
        ))
      )
        return { kind: 'closed' };
      have = next;
      continue;
    }
    const txns = transactions(page.changes);
    const last = txns[txns.length - 1];
    const cutInside = page.full && last !== undefined && page.nextXid === last.xid;
    let next: Cursor;
    if (!page.full) {
      next = union(have, upTo);
    } else if (!last) {
      throw new Error('catch-up read a full page of nothing it could send');
    } else if (!cutInside) {
      next = union(have, prefix(upTo, last.xid + 1));
    } else if (txns.length > 1) {
      // Whole transactions only, like the feed's own reads: the last one is read again whole.
      txns.pop();
      next = union(have, prefix(upTo, last.xid));
    } else {
      // One transaction larger than a page goes in pieces.
      last.more = true;
      const seq = (last.changes[last.changes.length - 1] as LoggedChange).seq;
      next = union(have, cursor(prefix(upTo, last.xid).snapshot, [{ xid: last.xid, seq }]));
    }
    // A transaction the head has only the first changes of was sent whole (readRange): say so.
    const whole = txns.filter((t) => !t.more && upTo.partials.some((p) => p.xid === t.xid));
    if (whole.length > 0) next = cursor(next.snapshot, [...next.partials, ...whole.map(lastChange)], next.history);
    const start = have;
    const pieces = txns.map((t, i) => ({
      changes: t.changes,
      more: t.more,
      continues: start.partials.some((p) => p.xid === t.xid),
      cursor: () => {
        if (i === txns.length - 1) return next;
        const after = union(start, prefix(upTo, t.xid + 1));
        return whole.includes(t) ? cursor(after.snapshot, [...after.partials, lastChange(t)], after.history) : after;
      },
    }));
    if (pieces.length > 0 && !(await sink.send(pieces, next))) return { kind: 'closed' };
    if (formatCursor(next) === formatCursor(have)) throw new Error(`catch-up made no progress at ${formatCursor(have).slice(0, 200)}`);
    have = next;
  }
}

/** A transaction's changes up to its last one read, as a cursor partial. */
function lastChange(t: Txn): { xid: number; seq: number } {
  return { xid: t.xid, seq: (t.changes[t.changes.length - 1] as LoggedChange).seq };
}
