import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { crashPostgres } from '../test/helpers/crash.js';
import { databaseUrl } from '../test/helpers/db.js';
import { freePort } from '../test/helpers/instance.js';
import { NGINX_PATH, startNginx } from '../test/helpers/nginx.js';
import { waitFor } from '../test/helpers/wait.js';
import { ProxyThread } from './proxy-thread.js';
import { pick, type Random } from './random.js';

/**
 * What the soak runs on, all on loopback: a private embedded PostgreSQL in a temp folder, a TCP proxy in
 * front of it on a thread of its own (proxy-thread.ts; the service only ever reaches the database through it), two service processes
 * (`node --import tsx src/main.ts`) on fixed ports so they can be restarted in place, and nginx with
 * deploy/nginx.conf in front of both (as test/load-balancer.test.ts runs it). Without nginx the clients
 * talk to the instances directly, alternating.
 *
 * A third instance, the steady one, is never stopped or killed, and a quarter of the clients and writes
 * go to it directly: the instance faults restart the pair every minute or two, so without it no process
 * would live long enough for its memory and descriptors to be judged over the run's second half. It
 * goes through every database fault like the others.
 *
 * With `DATABASE_URL` set, the soak uses that server instead: a fresh database of its own on it
 * (`CREATE DATABASE orders_soak_<random>`, so the role needs CREATEDB; dropped at the end unless kept),
 * migrated like the embedded one. A server the soak does not own cannot be stopped or crashed by it:
 * the faults that need that are skipped (faults.ts, SERVER_FAULTS). Everything it looks at or
 * terminates in pg_stat_activity is limited to its own database, so other users of the server are left
 * alone.
 */
const root = path.resolve(import.meta.dirname, '..');
const log = pino({ level: 'silent' });

export interface Instance {
  name: string;
  port: number;
  url: string;
  proc: ChildProcess;
  /** Set while the soak itself is stopping or killing it (an exit then is expected). */
  expectingExit: boolean;
  unexpectedExits: { at: number; code: number | null; signal: string | null }[];
}

async function ready(url: string, timeout = 60_000): Promise<void> {
  await waitFor(
    async () => {
      try {
        return (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200;
      } catch {
        return false;
      }
    },
    { timeout, interval: 100, message: `${url} ready` },
  );
}

export class Topology {
  /** The private cluster; undefined when the soak runs on `DATABASE_URL`'s server. */
  postgres: EmbeddedPostgres | undefined;
  proxy!: ProxyThread;
  /** The database the soak uses (direct, not through the proxy). */
  databaseUrl = '';
  /** On `DATABASE_URL`'s server: the database the soak created there. */
  externalDatabase: string | undefined;
  /** Direct to PostgreSQL (not through the proxy): the soak's SQL writers, faults and checker. */
  admin!: pg.Pool;
  /** The pair behind nginx, which the instance faults kill and restart. */
  readonly instances: Instance[] = [];
  /** Never stopped by a fault (see above). */
  steady!: Instance;
  nginx: ChildProcess | undefined;
  /** Where clients and REST writers go: nginx, or (without it) the instances themselves. */
  entry: string[] = [];
  nginxMissing = false;
  private dir = '';
  private pgRoot = '';
  private logStream: ReturnType<typeof createWriteStream> | undefined;
  readonly started = Date.now();

  constructor(private readonly external: string | undefined = undefined) {}

  /** Whether the soak can stop and crash PostgreSQL (its own cluster), or only use it (`DATABASE_URL`). */
  get ownsServer(): boolean {
    return this.external === undefined;
  }

  get logFile(): string {
    return path.join(this.dir, 'instances.log');
  }

  async start(): Promise<void> {
    this.dir = await mkdtemp(path.join(tmpdir(), 'orders-soak-'));
    // As root, PostgreSQL runs as the postgres user, which must pass through this folder to its own.
    await chmod(this.dir, 0o711);
    this.pgRoot = path.join(this.dir, 'pg-root');
    this.logStream = createWriteStream(this.logFile);
    let target: { host: string; port: number };
    if (this.external === undefined) {
      this.postgres = await startEmbeddedPostgres({ dataDir: this.pgRoot, port: 0, log });
      this.databaseUrl = this.postgres.url;
      target = { host: '127.0.0.1', port: this.postgres.port };
    } else {
      const name = `orders_soak_${randomBytes(4).toString('hex')}`;
      const server = new pg.Client({ connectionString: this.external, application_name: 'soak' });
      await server.connect();
      try {
        await server.query(`CREATE DATABASE ${name}`);
      } finally {
        await server.end();
      }
      this.externalDatabase = name;
      this.databaseUrl = databaseUrl(this.external, name);
      const u = new URL(this.external);
      target = { host: u.hostname || '127.0.0.1', port: Number(u.port || 5432) };
    }
    this.admin = new pg.Pool({ connectionString: this.databaseUrl, max: 12, application_name: 'soak', connectionTimeoutMillis: 3000 });
    this.admin.on('error', () => undefined);
    await migrate(this.admin, log);
    this.proxy = await ProxyThread.start(target.port, target.host);
    for (const name of ['a', 'b', 'steady']) {
      const port = await freePort();
      const instance: Instance = {
        name,
        port,
        url: `http://127.0.0.1:${port}`,
        proc: undefined as never,
        expectingExit: false,
        unexpectedExits: [],
      };
      if (name === 'steady') this.steady = instance;
      else this.instances.push(instance);
      this.spawnInstance(instance);
    }
    await this.allReady();
    await this.startNginx();
  }

  private spawnInstance(instance: Instance): void {
    const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        DATABASE_URL: this.proxy.urlFor(this.databaseUrl),
        PORT: String(instance.port),
        DB_MIGRATE: 'false',
        LOG_LEVEL: 'warn',
        TRUST_PROXY: '127.0.0.1',
        RATE_LIMIT_PER_MINUTE: '0',
        RATE_LIMIT_PER_TOKEN_PER_MINUTE: '0',
        HTTP_MAX_CONNECTIONS_PER_ADDRESS: '0',
        WS_MAX_CONNECTIONS_PER_ADDRESS: '0',
        WS_MAX_CONNECTIONS_PER_TOKEN: '0',
        DB_CONNECT_TIMEOUT_MS: '2000',
        DB_QUERY_TIMEOUT_MS: '5000',
        LISTENER_KEEPALIVE_MS: '2000',
        LISTENER_KEEPALIVE_TIMEOUT_MS: '2000',
        LISTENER_BACKOFF_MIN_MS: '100',
        LISTENER_BACKOFF_MAX_MS: '2000',
        FEED_POLL_MS: '500',
        SHUTDOWN_TIMEOUT_MS: '8000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tag = (d: Buffer) => this.logStream?.write(`[${instance.name} pid ${proc.pid}] ${d.toString()}`);
    proc.stdout?.on('data', tag);
    proc.stderr?.on('data', tag);
    proc.once('exit', (code, signal) => {
      if (!instance.expectingExit) instance.unexpectedExits.push({ at: Date.now() - this.started, code, signal });
    });
    instance.proc = proc;
    instance.expectingExit = false;
  }

  private async startNginx(): Promise<void> {
    if (!existsSync(NGINX_PATH)) {
      this.nginxMissing = true;
      this.entry = this.instances.map((i) => i.url);
      return;
    }
    const [a, b] = this.instances as [Instance, Instance];
    const { proc, url } = await startNginx(this.dir, [a.port, b.port], await freePort());
    this.nginx = proc;
    this.entry = [url];
  }

  /** Every instance, the steady one included. */
  get all(): Instance[] {
    return [...this.instances, this.steady];
  }

  /** Where a client or a write goes: the steady instance one time in four, otherwise the entry point. */
  pickEntry(random: Random): string {
    return random() < 0.25 ? this.steady.url : pick(random, this.entry);
  }

  /** Every instance answers /readyz 200. */
  async allReady(timeout = 60_000): Promise<void> {
    await Promise.all(this.all.map((i) => ready(i.url, timeout)));
  }

  async isReady(instance: Instance): Promise<boolean> {
    try {
      return (await fetch(`${instance.url}/readyz`, { signal: AbortSignal.timeout(1000) })).status === 200;
    } catch {
      return false;
    }
  }

  private exited(instance: Instance): Promise<void> {
    const p = instance.proc;
    if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
    return new Promise((r) => p.once('exit', () => r()));
  }

  /** Stops an instance with `signal` (SIGKILL: a crash; SIGTERM: a graceful restart), waits `downMs`, starts it again on its port. */
  async restartInstance(instance: Instance, signal: 'SIGKILL' | 'SIGTERM', downMs: number): Promise<void> {
    instance.expectingExit = true;
    instance.proc.kill(signal);
    await this.exited(instance);
    await new Promise((r) => setTimeout(r, downMs));
    this.spawnInstance(instance);
    await ready(instance.url);
  }

  /** Stops PostgreSQL fast (SIGINT) or immediately (SIGQUIT, crash recovery at the next start), and starts it again on its port. */
  async restartPostgres(mode: 'fast' | 'immediate', downMs: number): Promise<void> {
    if (!this.postgres) throw new Error("PostgreSQL is not the soak's own (DATABASE_URL): it cannot restart it");
    if (mode === 'fast') {
      await this.postgres.stop();
    } else {
      await crashPostgres(this.postgres.dataDir);
    }
    await new Promise((r) => setTimeout(r, downMs));
    this.postgres = await startEmbeddedPostgres({ dataDir: this.pgRoot, port: this.postgres.port, log });
  }

  pids(): { name: string; pid: number | undefined; url: string }[] {
    return this.all.map((i) => ({
      name: i.name,
      url: i.url,
      pid: i.proc.exitCode === null && i.proc.signalCode === null ? i.proc.pid : undefined,
    }));
  }

  async stop(keepDir = false): Promise<void> {
    this.nginx?.kill('SIGTERM');
    for (const i of this.all) {
      i.expectingExit = true;
      if (i.proc.exitCode === null && i.proc.signalCode === null) i.proc.kill('SIGTERM');
    }
    await Promise.all(this.all.map((i) => Promise.race([this.exited(i), new Promise((r) => setTimeout(r, 8000))])));
    for (const i of this.all) if (i.proc.exitCode === null && i.proc.signalCode === null) i.proc.kill('SIGKILL');
    await this.admin?.end().catch(() => undefined);
    await this.proxy?.close();
    await this.postgres?.stop();
    if (this.externalDatabase && this.external && !keepDir) await this.dropExternal(this.external, this.externalDatabase);
    this.logStream?.end();
    if (!keepDir && this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  private async dropExternal(server: string, name: string): Promise<void> {
    const c = new pg.Client({ connectionString: server, application_name: 'soak' });
    try {
      await c.connect();
      // Stopped instances may leave a backend or two still exiting.
      await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      await c.query(`DROP DATABASE IF EXISTS ${name}`);
    } catch (err) {
      process.stderr.write(`soak: could not drop database ${name}: ${(err as Error).message}\n`);
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  get tempDir(): string {
    return this.dir;
  }
}
