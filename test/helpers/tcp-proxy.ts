import net from 'node:net';

/**
 * A TCP proxy between the service and PostgreSQL that fails the way networks fail:
 * - `pass()`: forward bytes both ways (new connections only, once blackholed: see below);
 * - `cut()`: destroy every connection (the peer sees a reset/close at once);
 * - `retarget(port)`: send new connections to another server (existing ones stay where they are: `cut()`
 *   them to move everyone, as a failover or a restore into another cluster does);
 * - `delay(ms)`: forward everything, each chunk `ms` late in each direction (a congested or far link),
 *   order kept; `delay(0)` ends it (chunks already delayed still arrive in order);
 * - `blackhole()`: keep every connection open but forward nothing, in either direction, and accept new
 *   connections without ever reaching the database. No FIN, no RST: the service only notices by timing
 *   out, as with a NAT that forgot the flow or a suspended compute.
 * A connection blackholed once stays dead after `pass()` (its flow is gone), until its owner gives up on
 * it; when the service side closes it, the database side is closed too, so no backend lingers.
 */
type Mode = 'pass' | 'blackhole';

interface Pair {
  client: net.Socket;
  upstream: net.Socket | null;
  dead: boolean;
  /** Per direction, when the last delayed chunk is due (ms since the epoch): a later one never overtakes it. */
  dueUp: number;
  dueDown: number;
}

export class TcpProxy {
  private mode: Mode = 'pass';
  private latencyMs = 0;
  private readonly pairs = new Set<Pair>();
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private targetPort: number,
    private targetHost: string,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const proxy = new TcpProxy(server, port, targetPort, targetHost);
    server.on('connection', (socket) => proxy.accept(socket));
    return proxy;
  }

  /** `url` with its host and port replaced by the proxy's. */
  urlFor(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  get connections(): number {
    return this.pairs.size;
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    const pair: Pair = { client, upstream: null, dead: this.mode === 'blackhole', dueUp: 0, dueDown: 0 };
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      client.destroy();
      pair.upstream?.destroy();
    };
    client.on('error', drop);
    client.on('close', drop);
    client.on('data', (chunk) => {
      if (!pair.dead) this.forward(pair, 'dueUp', chunk, () => pair.upstream);
    });
    if (pair.dead) return;
    const upstream = net.connect(this.targetPort, this.targetHost);
    pair.upstream = upstream;
    upstream.on('data', (chunk) => {
      if (!pair.dead) this.forward(pair, 'dueDown', chunk, () => client);
    });
    // A blackholed flow hears nothing from the database, not even that it went away.
    const upstreamGone = () => {
      if (!pair.dead) drop();
    };
    upstream.on('error', upstreamGone);
    upstream.on('close', upstreamGone);
    client.pause();
    upstream.once('connect', () => client.resume());
  }

  private forward(pair: Pair, due: 'dueUp' | 'dueDown', chunk: Buffer, to: () => net.Socket | null): void {
    const now = Date.now();
    if (this.latencyMs === 0 && pair[due] <= now) {
      to()?.write(chunk);
      return;
    }
    pair[due] = Math.max(now + this.latencyMs, pair[due]);
    setTimeout(() => {
      const socket = to();
      if (!pair.dead && socket && !socket.destroyed) socket.write(chunk);
    }, pair[due] - now);
  }

  /** Every chunk from now on arrives `ms` late, both ways (0: on time again). */
  delay(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }

  /** New connections go to this port (and host) from now on; existing ones are left alone. */
  retarget(port: number, host = this.targetHost): void {
    this.targetPort = port;
    this.targetHost = host;
  }

  pass(): void {
    this.mode = 'pass';
  }

  blackhole(): void {
    this.mode = 'blackhole';
    for (const pair of this.pairs) pair.dead = true;
  }

  cut(): void {
    for (const pair of [...this.pairs]) {
      this.pairs.delete(pair);
      pair.client.destroy();
      pair.upstream?.destroy();
    }
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.cut();
    await closed;
  }
}
