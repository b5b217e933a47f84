import type { Logger } from 'pino';
import { CLOSE } from '../contract/protocol.js';
import { type Cursor, formatCursor } from '../feed/cursor.js';
import type { Client } from './client.js';
import type { View } from './view.js';

export interface KeepAliveOptions {
  clients: () => Set<Client>;
  log: Logger;
  heartbeatMs: number;
  pingMs: number;
  /** What a view's clients in step have (broadcast.ts): the cursor a quiet one is told. */
  headOf: (view: View) => Cursor;
  send: (client: Client, message: string) => boolean;
  /** Clients were dropped: the feed learns how many are left. */
  dropped: () => void;
  /** Of these credential ids, the ones revoked since; their sockets are closed with 1008. */
  revokedPrincipals?: (ids: string[]) => Promise<string[]>;
  /** The credentials with an open socket. */
  principals: () => string[];
  revocationCheckMs: number;
}

/**
 * The periodic care of open sockets: heartbeats to quiet ones (with the cursor they have), protocol
 * pings that find dead ones, and closing the sockets of credentials revoked since they opened.
 */
export class KeepAlive {
  private readonly timers: NodeJS.Timeout[];

  constructor(private readonly options: KeepAliveOptions) {
    const revocation = setInterval(() => void this.closeRevoked(), options.revocationCheckMs);
    revocation.unref();
    this.timers = [
      setInterval(() => this.heartbeat(), options.heartbeatMs),
      setInterval(() => this.pingSweep(), options.pingMs),
      revocation,
    ];
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
  }

  /**
   * A heartbeat to every live socket sent nothing for half a period: an idle feed, or a filtered view
   * that nothing matched lately (it learns the cursor it has, so a reconnect does not replay the log).
   */
  private heartbeat(): void {
    const quiet = Date.now() - this.options.heartbeatMs / 2;
    // Per view: a view whose changes are held for a fuller frame (broadcast.ts) has its own head, and a
    // heartbeat must not tell its clients a cursor past changes they have not been sent.
    const shared = new Map<string, { cursor: string; message: string }>();
    for (const client of this.options.clients()) {
      if (!client.live || client.sentAt > quiet) continue;
      if (client.ahead) {
        this.options.send(client, JSON.stringify({ type: 'heartbeat', cursor: formatCursor(client.ahead) }));
        continue;
      }
      let beat = shared.get(client.view.key);
      if (!beat) {
        const cursor = formatCursor(this.options.headOf(client.view));
        beat = { cursor, message: JSON.stringify({ type: 'heartbeat', cursor }) };
        shared.set(client.view.key, beat);
      }
      this.options.send(client, beat.message);
      client.cursor = beat.cursor;
    }
  }

  private pingSweep(): void {
    const clients = this.options.clients();
    for (const client of clients) {
      if (!client.alive) {
        this.options.log.info({ event: 'client.dead', client: client.id }, 'no pong: terminating socket');
        clients.delete(client);
        client.socket.terminate();
        continue;
      }
      client.alive = false;
      client.socket.ping();
    }
    this.options.dropped();
  }

  private async closeRevoked(): Promise<void> {
    const principals = this.options.principals();
    if (!this.options.revokedPrincipals || principals.length === 0) return;
    try {
      const revoked = new Set(await this.options.revokedPrincipals(principals));
      if (revoked.size === 0) return;
      const clients = this.options.clients();
      for (const client of clients) {
        if (!revoked.has(client.principal)) continue;
        this.options.log.info(
          { event: 'client.revoked', client: client.id, principal: client.principal },
          'credential revoked; closing with 1008',
        );
        clients.delete(client);
        client.socket.close(CLOSE.POLICY, 'credential revoked');
      }
    } catch (err) {
      this.options.log.warn(
        { event: 'revocation_check.failed', reason: (err as Error).message },
        'could not check for revoked credentials',
      );
    }
  }
}
