import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { CLOSE, type ClientErrorCode } from '../contract/protocol.js';
import type { Cursor } from '../feed/cursor.js';
import { rawSocket } from './frames.js';
import type { View } from './view.js';

/** One connected WebSocket, as the hub tracks it. */
export interface Client {
  id: string;
  socket: WebSocket;
  live: boolean;
  /**
   * What the client has, while that is not simply the hub's head (it is ahead of it in part): it is sent
   * only what it lacks, in messages of its own. Null when in step with the head.
   */
  ahead: Cursor | null;
  alive: boolean;
  tokens: number;
  tokensAt: number;
  lastRateError: number;
  /** Judged a flood: nothing it sends is handled any more. */
  flooded: boolean;
  remote: string;
  principal: string;
  connectedAt: number;
  /** Last cursor sent to this client (for debugging and lag display). */
  cursor: string;
  /** What it subscribed to: the broadcast builds frames once per distinct view. */
  view: View;
  /** When it was last sent a message (a quiet one gets heartbeats, with the cursor it has). */
  sentAt: number;
}

export interface ClientInputOptions {
  maxMessagesPerSec: number;
  log: Logger;
  send: (client: Client, message: string) => boolean;
  /** The client is cut off (flood): forget it. */
  drop: (client: Client) => void;
}

/**
 * What a client sends: pings (protocol and JSON) and nothing else, at a bounded rate.
 */
export class ClientInput {
  constructor(private readonly options: ClientInputOptions) {}

  /** Wires a socket's incoming frames and pongs; `onPong` marks the client alive. */
  attach(client: Client): void {
    const { socket } = client;
    socket.on('pong', () => {
      client.alive = true;
      this.admit(client);
    });
    // Pings are answered here, not by ws (autoPong is off in routes.ts), so they count as messages.
    socket.on('ping', (data) => this.onPing(client, data));
    socket.on('message', (data, isBinary) => this.onMessage(client, data as Buffer, isBinary));
  }

  private clientError(client: Client, code: ClientErrorCode, detail: string): void {
    this.options.send(client, JSON.stringify({ type: 'error', code, detail }));
  }

  /**
   * Every frame a client sends, data or control, spends a token; the bucket refills at the message
   * rate and holds two seconds' worth. Past it frames are dropped (with at most one error frame a
   * second), and ten seconds' worth of dropped frames is a flood: the client is logged once, sent a
   * 1008 close and cut off. A flood arrives thousands of frames per TCP read, and ws goes on parsing
   * and emitting what it already received after close(): so the judgement is sticky (`flooded`), the
   * listeners are removed, reading stops, and the TCP socket is destroyed once the close frame is out.
   * Nothing a client sends can make the server write more than one log line.
   */
  private admit(client: Client): boolean {
    if (client.flooded) return false;
    const now = Date.now();
    const rate = this.options.maxMessagesPerSec;
    client.tokens = Math.min(rate * 2, client.tokens + ((now - client.tokensAt) / 1000) * rate);
    client.tokensAt = now;
    client.tokens -= 1;
    if (client.tokens >= 0) return true;
    if (client.tokens < -rate * 10) {
      this.cutOff(client);
      return false;
    }
    if (now - client.lastRateError > 1000) {
      client.lastRateError = now;
      this.clientError(client, 'rate-limited', `At most ${rate} messages per second; extra messages are dropped.`);
    }
    return false;
  }

  private cutOff(client: Client): void {
    client.flooded = true;
    this.options.log.warn({ event: 'client.flood', client: client.id, remote: client.remote }, 'message flood; closing with 1008');
    const ws = client.socket;
    ws.removeAllListeners('message');
    ws.removeAllListeners('ping');
    ws.removeAllListeners('pong');
    this.options.drop(client);
    ws.close(CLOSE.POLICY, 'too many messages');
    // The close frame is on the socket now: stop reading, and destroy the socket once it is written.
    const raw = rawSocket(ws);
    if (raw) {
      raw.pause();
      raw.destroySoon();
    }
    setTimeout(() => ws.terminate(), 1000).unref();
  }

  private onPing(client: Client, data: Buffer): void {
    if (this.admit(client) && client.socket.readyState === 1) client.socket.pong(data);
  }

  private onMessage(client: Client, data: Buffer, isBinary: boolean): void {
    if (!this.admit(client)) return;
    let message: unknown;
    try {
      message = isBinary ? undefined : JSON.parse(data.toString('utf8'));
    } catch {
      message = undefined;
    }
    if (!message || typeof message !== 'object') {
      this.clientError(client, 'malformed-message', 'Messages are JSON objects with a "type".');
      return;
    }
    const type = (message as { type?: unknown }).type;
    if (type === 'ping') {
      this.options.send(client, '{"type":"pong"}');
      return;
    }
    this.clientError(
      client,
      'unknown-message-type',
      `Unknown message type ${JSON.stringify(type)?.slice(0, 50)}; the only client message is {"type":"ping"}.`,
    );
  }
}
