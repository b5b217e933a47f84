import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { freePort, InstanceProcess } from './helpers/instance.js';
import { TcpProxy } from './helpers/tcp-proxy.js';
import { sleep, waitFor } from './helpers/wait.js';

/**
 * Found by the 30-minute soak: an instance restarted (SIGKILL, or a rolling restart) while the database
 * could not be reached exited with "cannot start" and stayed dead, leaving one instance for the rest of
 * the run. It must wait for the database instead, and serve once it answers.
 */
let db: TestDatabase;
let proxy: TcpProxy;
let instance: InstanceProcess | undefined;
let second: InstanceProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  const port = Number(new URL(db.url).port);
  proxy = await TcpProxy.start(port);
});

afterAll(async () => {
  await instance?.stop('SIGKILL');
  await second?.stop('SIGKILL');
  await proxy?.close();
  await db?.drop();
});

it('an instance started while the database is unreachable waits for it, then serves', { timeout: 90_000 }, async () => {
  proxy.blackhole();
  instance = new InstanceProcess(await freePort(), {
    DATABASE_URL: proxy.urlFor(db.url),
    DB_MIGRATE: 'false',
    LOG_LEVEL: 'warn',
    DB_CONNECT_TIMEOUT_MS: '1000',
    DB_QUERY_TIMEOUT_MS: '1000',
  });
  instance.start();
  let exitCode: number | null | undefined;
  void instance.exited().then((code) => {
    exitCode = code;
  });
  // Several connect timeouts' worth of an unreachable database (counted from its first failed attempt:
  // on a loaded machine the process alone can take seconds to start).
  const starting = instance;
  await waitFor(() => exitCode !== undefined || starting.output.includes('startup.database_unavailable'), {
    timeout: 30_000,
    message: 'the first attempt failed',
  });
  await sleep(3000);
  expect(exitCode, instance.output.slice(-2000)).toBeUndefined();
  expect(instance.output).toContain('startup.database_unavailable');
  proxy.pass();
  await instance.ready(30_000);
  const res = await fetch(`${instance.url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ customer_name: 'After the outage', product_name: 'Startup' }),
  });
  expect(res.status).toBe(201);
});

/**
 * Found by the next 30-minute soak: the service had started (the wait above passed), then its next
 * query, the auth check in main.ts, could not reach the database (a proxy blackhole, a 2 s connect
 * timeout on a loaded machine), and that error was not waited out: "cannot start", the instance dead
 * until something restarted it. Here the auth check's table is locked, so that one query times out
 * the way an unreachable database makes it.
 */
it('an instance whose auth check cannot reach the database right after the start waits for it too', { timeout: 90_000 }, async () => {
  const locker = await db.sql.connect();
  let exitCode: number | null | undefined;
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE');
    second = new InstanceProcess(await freePort(), {
      DATABASE_URL: db.url,
      DB_MIGRATE: 'false',
      LOG_LEVEL: 'warn',
      DB_CONNECT_TIMEOUT_MS: '1000',
      DB_QUERY_TIMEOUT_MS: '1000',
    });
    second.start();
    void second.exited().then((code) => {
      exitCode = code;
    });
    const started = second;
    await waitFor(() => exitCode !== undefined || started.output.includes('startup.database_unavailable'), {
      timeout: 30_000,
      message: 'the auth check failed once',
    });
    await sleep(2500);
    expect(exitCode, started.output.slice(-2000)).toBeUndefined();
  } finally {
    await locker.query('ROLLBACK').catch(() => undefined);
    locker.release();
  }
  await second.ready(30_000);
  expect((await fetch(`${second.url}/orders`)).status).toBe(200);
});
