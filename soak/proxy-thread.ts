import { parentPort, Worker, workerData } from 'node:worker_threads';
import { TcpProxy } from '../test/helpers/tcp-proxy.js';

/**
 * The soak's TCP proxy between the instances and PostgreSQL, on a thread of its own. In the soak's
 * main thread it shared an event loop and a heap with 200 clients that keep every change they receive
 * (millions by the end of a long run): a garbage collection of that heap paused the proxy too, and the
 * instances saw the database not answer a connect within 2 s with no fault running (the first 30-minute
 * run with a steady instance: a 503 at 1,757 s, and REST and SQL writes slowed to a tenth for ~25 s).
 * A worker thread has its own heap and loop, so only the faults the soak injects reach the network.
 */
type Command = { op: 'blackhole' } | { op: 'pass' } | { op: 'delay'; ms: number } | { op: 'close' };

if (parentPort && workerData?.proxyTarget) {
  const port = parentPort;
  const { targetPort, targetHost } = workerData.proxyTarget as { targetPort: number; targetHost: string };
  const proxy = await TcpProxy.start(targetPort, targetHost);
  port.on('message', async (m: Command) => {
    if (m.op === 'blackhole') proxy.blackhole();
    else if (m.op === 'pass') proxy.pass();
    else if (m.op === 'delay') proxy.delay(m.ms);
    else if (m.op === 'close') {
      await proxy.close();
      port.postMessage({ closed: true });
    }
  });
  port.postMessage({ port: proxy.port });
}

/** The main thread's handle on the proxy thread: the same commands as TcpProxy's that the soak uses. */
export class ProxyThread {
  private constructor(
    private readonly worker: Worker,
    readonly port: number,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<ProxyThread> {
    // The thread runs this file. tsx's loader is registered in the main thread only (a worker's own
    // `--import tsx` is refused), so the thread registers it itself before importing this file.
    const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); });`;
    const worker = new Worker(bootstrap, { eval: true, workerData: { proxyTarget: { targetPort, targetHost } } });
    const port = await new Promise<number>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (m: { port: number }) => resolve(m.port));
    });
    return new ProxyThread(worker, port);
  }

  /** `url` with its host and port replaced by the proxy's. */
  urlFor(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  blackhole(): void {
    this.worker.postMessage({ op: 'blackhole' } satisfies Command);
  }

  pass(): void {
    this.worker.postMessage({ op: 'pass' } satisfies Command);
  }

  delay(ms: number): void {
    this.worker.postMessage({ op: 'delay', ms } satisfies Command);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.worker.once('message', () => resolve()));
    this.worker.postMessage({ op: 'close' } satisfies Command);
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
    await this.worker.terminate();
  }
}
