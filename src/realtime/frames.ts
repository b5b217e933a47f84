import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { LoggedChange } from '../feed/change-log.js';

/**
 * The bytes of `changes` messages. A message holds whole transactions (a transaction larger than one
 * read arrives in pieces, each message but the last saying `"more":true`) and ends with the cursor the
 * client has once it has applied it. The changes' JSON comes from the database and is copied as is:
 * nothing here parses or rewrites it, for any client.
 */
export interface Piece {
  changes: readonly LoggedChange[];
  /** The transaction goes on in a later message. */
  more: boolean;
  /** The client's cursor once it has this piece (computed only where a message ends). */
  cursor: () => string;
}

/** Messages stop growing past this many bytes of changes (one transaction piece is never split). */
const MESSAGE_BYTES = 256 * 1024;

function message(changes: string[], cursor: string, more: boolean): string {
  return `{"type":"changes","changes":[${changes.join(',')}],"cursor":${JSON.stringify(cursor)}${more ? ',"more":true' : ''}}`;
}

/** The messages for these pieces, in order; the last one carries `finalCursor`. */
export function changeMessages(pieces: readonly Piece[], finalCursor: string): string[] {
  const messages: string[] = [];
  let parts: string[] = [];
  let bytes = 0;
  pieces.forEach((piece, i) => {
    for (const c of piece.changes) {
      parts.push(c.json);
      bytes += c.json.length + 1;
    }
    const last = i === pieces.length - 1;
    if (last || bytes >= MESSAGE_BYTES) {
      messages.push(message(parts, last ? finalCursor : piece.cursor(), piece.more));
      parts = [];
      bytes = 0;
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
