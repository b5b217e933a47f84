import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mainProcesses, startMain } from './helpers/main-process.js';
import { http } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

/**
 * The process as a user runs it (`npm start` builds, then runs `node dist/main.js`): configuration errors, the embedded
 * database kept between runs, a restart after kill -9, and a graceful stop.
 */
const root = path.resolve(import.meta.dirname, '..');
let dataDir: string;

function postmasterPid(): number | undefined {
  const file = path.join(dataDir, 'pg', 'postmaster.pid');
  return existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'orders-start-'));
});

afterEach(() => {
  for (const c of mainProcesses) c.kill('SIGKILL');
});

afterAll(async () => {
  const pid = postmasterPid();
  if (pid && alive(pid)) process.kill(pid, 'SIGQUIT');
  await rm(dataDir, { recursive: true, force: true });
});

describe('configuration', () => {
  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['DB_POOL_MAX', '0'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'mysql://nope'],
  ])('stops with one line naming %s=%s', async (name, value) => {
    const proc = startMain({ [name]: value });
    expect(await proc.exited).toBe(1);
    const lines = proc.output().stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^orders: invalid ${name}=`));
    if (name === 'DATABASE_URL') expect(lines[0]).not.toContain('mysql://nope');
  });
});

describe('embedded database lifecycle', () => {
  it('keeps data between runs, survives kill -9, and stops cleanly on SIGTERM (the second run compiled, as `npm start` runs it)', {
    timeout: 120_000,
  }, async () => {
    const env = { DATA_DIR: dataDir, PORT: '0' };
    const built = promisify(execFile)('npm', ['run', '-s', 'build:server'], { cwd: root });
    const first = startMain(env);
    const url1 = await first.listening;
    expect(first.output().stdout).toMatch(/embedded PostgreSQL in .*orders-start-/);
    const created = await http(url1, 'POST', '/orders', { customer_name: 'Persisted', product_name: 'Across runs' });
    expect(created.status).toBe(201);
    const orphan = postmasterPid();
    expect(orphan && alive(orphan)).toBe(true);

    first.child.kill('SIGKILL');
    await first.exited;
    // The database outlives a killed Node process; the next start must cope with it.
    expect(alive(orphan as number)).toBe(true);

    // What `npm start` runs: the compiled JavaScript (migrations copied beside it), no TypeScript at run time.
    await built;
    const second = startMain(env, ['--enable-source-maps', 'dist/main.js']);
    const url2 = await second.listening;
    const list = await http<any[]>(url2, 'GET', '/orders');
    expect(list.body.map((o) => o.customer_name)).toEqual(['Persisted']);
    expect(alive(orphan as number)).toBe(false);
    const running = postmasterPid() as number;

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(second.output().stdout).toMatch(/shutting down/);
    expect(alive(running)).toBe(false);
  });
});

describe('safe default', () => {
  it('refuses to serve a non-loopback address when no credential exists', { timeout: 60_000 }, async () => {
    const proc = startMain({ DATA_DIR: dataDir, PORT: '0', HOST: '0.0.0.0' });
    expect(await proc.exited).toBe(1);
    const { stderr } = proc.output();
    expect(stderr).toMatch(/^orders: refusing to serve 0\.0\.0\.0 without credentials/m);
    expect(stderr).toMatch(/npm run token -- create/);
  });

  it('says at startup on loopback that authentication is off', { timeout: 60_000 }, async () => {
    const proc = startMain({ DATA_DIR: dataDir, PORT: '0' });
    await proc.listening;
    expect(proc.output().stdout).toMatch(/authentication OFF/);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });
});

describe('token management while the service runs', () => {
  const token = (args: string[]) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/auth/token-cli.ts', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', DATA_DIR: dataDir },
    });

  it('creates, lists and revokes tokens on the running embedded database, without a stop', { timeout: 120_000 }, async () => {
    const proc = startMain({ DATA_DIR: dataDir, PORT: '0', AUTH_CACHE_MS: '100' });
    const url = await proc.listening;
    const created = await token(['create', '--role', 'admin', '--name', 'on call', '--expires', '30d']);
    const secret = created.stdout.trim().split('\n').pop() as string;
    expect(created.stdout).toMatch(/created token \d+ \(admin, on call, expires 20\d\d-/);
    await waitFor(async () => (await http(url, 'GET', '/orders')).status === 401, { message: 'authentication switched on' });
    expect((await http(url, 'GET', '/orders', undefined, { authorization: `Bearer ${secret}` })).status).toBe(200);
    expect((await token(['list'])).stdout).toMatch(/admin\ton call\tcreated .*\texpires 20\d\d-/);
    const id = /created token (\d+)/.exec(created.stdout)?.[1] as string;
    const revoked = await token(['revoke', id]);
    expect(revoked.stdout).toMatch(/revoked token \d+\nno active token is left: every request is refused \(401\)/);
    await waitFor(async () => (await http(url, 'GET', '/orders', undefined, { authorization: `Bearer ${secret}` })).status === 401, {
      message: 'the revoked token refused',
    });
    expect((await http(url, 'POST', '/orders', { customer_name: 'Nobody', product_name: 'In' })).status).toBe(401);
    expect(proc.child.exitCode).toBeNull();
    await expect(token(['create', '--role', 'admin', '--name', 'x', '--expires', 'yesterday'])).rejects.toMatchObject({
      stderr: expect.stringMatching(/--expires "yesterday": give a duration/),
    });
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });
});
