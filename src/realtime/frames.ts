import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { LoggedChange } from '../feed/change-log.js';
import { addChanges, deltaJson, emptyDelta, mergeInto, type SummaryDelta } from './summary.js';
import { ALL_ROWS, entryOf, type View } from './view.js';

/**
 * The bytes of `changes` messages. A message holds whole transactions (a transaction larger than one
 * read arrives in pieces, each message but the last saying `"more":true`) and ends with the cursor the
 * client has once it has applied it. The changes' JSON comes from the database and is copied as is:
 * nothing here parses it, for any client; a filtered view only appends its `"view"` field.
 *
 * For a view (view.ts), a message holds the changes of rows in the view before or after them, and
 * `stats`, what all the changes of its transactions did to the totals (summary.ts). A message with
 * neither is not sent, except one ending a transaction the client was sent the start of (`more`).
 */
export interface Piece {
  changes: readonly LoggedChange[];
  /** The transaction goes on in a later message. */
  more: boolean;
  /** The client's cursor once it has this piece (computed only where a message ends). */
  cursor: () => string;
  /** The transaction began in an earlier message (the client may be waiting for its end). */
  continues?: boolean;
  /** The piece's effect on totals, per scope key: computed once, shared by every view that counts it. */
  deltas?: Map<string, SummaryDelta>;
}

/** Messages stop growing past this many bytes of changes (one transaction piece is never split). */
const MESSAGE_BYTES = 256 * 1024;

function message(changes: string[], cursor: string, more: boolean, stats: string | null): string {
  return `{"type":"changes","changes":[${changes.join(',')}],"cursor":${JSON.stringify(cursor)}${more ? ',"more":true' : ''}${stats === null ? '' : `,"stats":${stats}`}}`;
}

function pieceDelta(piece: Piece, view: View): SummaryDelta {
  piece.deltas ??= new Map();
  let d = piece.deltas.get(view.statsKey);
  if (!d) {
    d = emptyDelta();
    addChanges(d, piece.changes, view.stats as NonNullable<View['stats']>);
    piece.deltas.set(view.statsKey, d);
  }
  return d;
}

/** The messages for these pieces, in order, for a view; the last one carries `finalCursor`. */
export function changeMessages(pieces: readonly Piece[], finalCursor: string, view: View = ALL_ROWS): string[] {
  const messages: string[] = [];
  const { filter } = view;
  let parts: string[] = [];
  let bytes = 0;
  let delta = view.stats ? emptyDelta() : null;
  let closes = false;
  pieces.forEach((piece, i) => {
    if (filter === null) {
      for (const c of piece.changes) {
        parts.push(c.json);
        bytes += c.json.length + 1;
      }
    } else {
      for (const c of piece.changes) {
        const entry = entryOf(filter, c);
        if (entry === null) continue;
        const json = `${c.json.slice(0, -1)},"view":"${entry}"}`;
        parts.push(json);
        bytes += json.length + 1;
      }
    }
    if (delta) mergeInto(delta, pieceDelta(piece, view));
    if (piece.continues && !piece.more) closes = true;
    const last = i === pieces.length - 1;
    if (last || bytes >= MESSAGE_BYTES) {
      const stats = delta ? deltaJson(delta) : null;
      if (filter === null || parts.length > 0 || stats !== null || closes) {
        messages.push(message(parts, last ? finalCursor : piece.cursor(), piece.more, stats));
      }
      parts = [];
      bytes = 0;
      delta = view.stats ? emptyDelta() : null;
      closes = false;
    }
  });
  return messages;
}

/**
 * A complete unmasked WebSocket text frame (RFC 6455 §5.2), built once per broadcast and written as is
 * to every socket: no per-client encoding, framing or copying. Servers never mask.
 */
export function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
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
export function rawSocket(ws: WebSocket): Socket | undefined {
  return (ws as unknown as { _socket?: Socket })._socket;
}

/** Changes in a built message, for the delivery count of a filtered view (counted once per build). */
export function countChanges(message: string): number {
  let n = 0;
  for (let i = message.indexOf('"view":"'); i !== -1; i = message.indexOf('"view":"', i + 8)) n++;
  return n;
}
