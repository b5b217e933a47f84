import type { Server } from 'node:http';
import { Server as NetServer } from 'node:net';
import type { FastifyInstance } from 'fastify';

/**
 * The HTTP side of a graceful stop, in the order a load balancer that only learns from failures (nginx
 * without active health checks) needs to lose nothing:
 *
 * 1. `start()`: from now on every answer says `Connection: close` (so the proxy drops each kept-alive
 *    connection right after its answer instead of sending the next request on it), /readyz says 503, and
 *    WebSocket upgrades are refused with a 503 the client can read (the hub's `closing`).
 * 2. `stopListening()`: the listening socket closes, so a new connection is refused at once and the
 *    proxy tries the next instance: a refused connect carries no request, so even a POST moves on safely.
 *    Only then are WebSockets closed with 1012: their reconnects cannot land here again.
 * 3. `settle()`: requests already here are answered (their connections then close); a kept-alive
 *    connection that stays idle is closed once no request has arrived for a moment.
 *
 * What it avoids: Node's `server.close()` destroys every idle keep-alive connection at the instant it is
 * called, and a request the proxy has just written on one of them is lost with a reset (nginx answers a
 * POST or PATCH that way with 502, since it must not replay it); and a connection that was busy at that
 * instant stays open, idle, after its answer, holding the stop until the proxy happens to use it again.
 */
const QUIET_MS = 300;

export class HttpDrain {
  private startedAt: number | undefined;
  private lastRequestAt = 0;

  constructor(private readonly server: Server) {}

  get draining(): boolean {
    return this.startedAt !== undefined;
  }

  /** Hooks that mark answers `Connection: close` once draining and note when requests arrive. */
  install(app: FastifyInstance): void {
    app.addHook('onRequest', async () => {
      this.lastRequestAt = Date.now();
    });
    app.addHook('onSend', async (_request, reply, payload) => {
      if (this.draining) reply.header('connection', 'close');
      return payload;
    });
  }

  start(): void {
    this.startedAt ??= Date.now();
  }

  /** Closes the listening socket only: open connections stay, to be answered (http.Server.close() would also destroy the idle ones). */
  stopListening(): void {
    if (!this.server.listening) return;
    NetServer.prototype.close.call(this.server);
  }

  private openConnections(): Promise<number> {
    return new Promise((resolve) => this.server.getConnections((err, n) => resolve(err ? 0 : n)));
  }

  /** Waits until every connection is closed, or until `deadline` (ms since the epoch). */
  async settle(deadline: number): Promise<void> {
    for (;;) {
      if ((await this.openConnections()) === 0 || Date.now() >= deadline) return;
      if (Date.now() - this.lastRequestAt >= QUIET_MS) this.server.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
