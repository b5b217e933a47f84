import { PassThrough, type Readable } from 'node:stream';
import type { SortDirection, SortKey } from '../contract/sort-order.js';
import type { Database } from '../db/database.js';
import type { Filter } from '../filter/filter.js';
import { type ExportRow, exportRows, snapshotCursor } from './list-repository.js';

/**
 * GET /orders.csv: the orders of a view as CSV (RFC 4180: comma-separated, CRLF, a field with a comma,
 * quote or line break quoted, quotes doubled), streamed from one REPEATABLE READ READ ONLY transaction
 * so that every row comes from one snapshot, whatever the file's size and the client's speed.
 *
 * A cell that begins with = + - @ (or a tab or carriage return) would be run as a formula by a
 * spreadsheet (CSV injection: a customer named `=HYPERLINK(…)`), so it is written with a leading `'`,
 * the escape OWASP recommends; the value is otherwise unchanged.
 */
export const CSV_COLUMNS = [
  'id',
  'customer_name',
  'product_name',
  'quantity',
  'total_cents',
  'status',
  'notes',
  'created_at',
  'updated_at',
  'version',
] as const;

export function csvCell(value: string | number): string {
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvLine(row: ExportRow): string {
  return `${CSV_COLUMNS.map((c) => csvCell(row[c])).join(',')}\r\n`;
}

/** How many exports may run at once (0: none), how long one may wait for its client, and how long it may take. */
export interface ExportLimits {
  max: number;
  stallMs: number;
  maxMs: number;
}

/**
 * The exports running on this instance. Each holds a pooled connection (its transaction) and a snapshot
 * (which keeps VACUUM from removing what it can see) for as long as its client takes to read the file,
 * so they are bounded whatever the clients do: at most `max` run at once; one whose client takes nothing
 * for `stallMs` is cut off, and so is one still running after `maxMs` (a client that reads just enough
 * never to stall); and the ones running when the service stops are cut off once its drain is over.
 */
export class CsvExports {
  private readonly running = new Set<PassThrough>();

  constructor(
    private readonly db: Database,
    private readonly limits: ExportLimits,
  ) {}

  /** Starts an export (see exportCsv), or answers undefined when `max` are running already. */
  async start(view: Filter, sort: SortKey, dir: SortDirection): Promise<{ cursor: string; body: Readable } | undefined> {
    if (this.running.size >= this.limits.max) return undefined;
    const body = new PassThrough();
    this.running.add(body);
    // Its place is free once its transaction has ended, not merely when the client has gone.
    return exportCsv(this.db, body, view, sort, dir, this.limits, () => this.running.delete(body));
  }

  /** Cuts off every running export (the service is stopping and its drain is over). */
  abortAll(): void {
    for (const body of this.running) body.destroy(new Error('the service is stopping'));
  }
}

/**
 * Starts an export into `body`: resolves once the transaction has its snapshot (its feed cursor is the
 * answer's X-Change-Cursor). A failure before that rejects (a problem+json answer); after it, the stream
 * is destroyed and the client sees a cut-off transfer rather than a short file passed off as whole, as it
 * does when it takes nothing for `stallMs` or the export runs past `maxMs`. The transaction ends when
 * the file does or the client goes away; then `ended` is called, once.
 */
function exportCsv(
  db: Database,
  body: PassThrough,
  view: Filter,
  sort: SortKey,
  dir: SortDirection,
  limits: ExportLimits,
  ended: () => void,
): Promise<{ cursor: string; body: Readable }> {
  return new Promise((resolve, reject) => {
    let started = false;
    const tooLong = setTimeout(() => body.destroy(new Error(`the export took longer than ${limits.maxMs} ms`)), limits.maxMs);
    db.transaction(
      async (tx) => {
        const cursor = await snapshotCursor(tx);
        started = true;
        resolve({ cursor, body });
        body.write(`${CSV_COLUMNS.join(',')}\r\n`);
        for await (const rows of exportRows(tx, view, sort, dir)) {
          if (body.destroyed) return;
          if (!body.write(rows.map(csvLine).join(''))) await drained(body, limits.stallMs);
        }
        body.end();
      },
      { begin: 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' },
    )
      .catch((err: unknown) => {
        if (!started) reject(err);
        else body.destroy(err as Error);
      })
      .finally(() => {
        clearTimeout(tooLong);
        ended();
      });
  });
}

/**
 * Waits until the client reads on, or leaves (then the next write finds the stream destroyed), or has
 * taken nothing for `stallMs` (then the stream is destroyed here, and the client's transfer is cut off).
 */
function drained(stream: PassThrough, stallMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    const timer = setTimeout(() => stream.destroy(new Error(`the client took nothing for ${stallMs} ms`)), stallMs);
    stream.on('drain', done);
    stream.on('close', done);
  });
}
