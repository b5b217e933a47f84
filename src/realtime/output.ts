import type { Logger } from 'pino';
import { CLOSE } from '../contract/protocol.js';
import type { Client } from './client.js';
import { rawSocket } from './frames.js';

export interface OutputOptions {
  clients: Set<Client>;
  log: Logger;
  maxBufferedBytes: number;
  stats: { slowClosed: number };
  /** Clients were dropped: the feed learns how many are left. */
  dropped: () => void;
}

/**
 * Writing to clients, bounded: a client whose unsent bytes pass the limit is closed with 1013 rather
 * than buffered for (buffering would let one stalled browser grow the server's memory without bound);
 * it resumes from its cursor and loses nothing.
 */
export class Output {
  constructor(private readonly options: OutputOptions) {}

  send(client: Client, message: string): boolean {
    if (client.socket.readyState !== 1) return false;
    if (client.socket.bufferedAmount > this.options.maxBufferedBytes) {
      this.closeSlow(client);
      return false;
    }
    client.socket.send(message);
    client.sentAt = Date.now();
    return true;
  }

  /** The broadcast path: a prebuilt frame, written straight to the socket, at `at` (Date.now()). */
  sendFrame(client: Client, frame: Buffer, message: string, at: number): boolean {
    const ws = client.socket;
    if (ws.readyState !== 1) return false;
    if (ws.bufferedAmount > this.options.maxBufferedBytes) {
      this.closeSlow(client);
      return false;
    }
    const raw = rawSocket(ws);
    if (raw) raw.write(frame);
    else ws.send(message);
    client.sentAt = at;
    return true;
  }

  closeSlow(client: Client): void {
    if (!this.options.clients.delete(client)) return;
    this.options.stats.slowClosed++;
    this.options.log.warn(
      { event: 'client.slow', client: client.id, remote: client.remote, bufferedBytes: client.socket.bufferedAmount },
      'client too slow; closed with 1013 (it will resume from its cursor)',
    );
    client.socket.close(CLOSE.SLOW_CONSUMER, 'too slow; resume from your cursor');
    // A client that does not read will not read the close frame either.
    setTimeout(() => client.socket.terminate(), 2000).unref();
    this.options.dropped();
  }
}
