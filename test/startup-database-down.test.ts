import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { freePort, InstanceProcess } from './helpers/instance.js';
import { TcpProxy } from './helpers/tcp-proxy.js';
import { sleep } from './helpers/wait.js';

/**
 * Found by the 30-minute soak: an instance restarted (SIGKILL, or a rolling restart) while the database
 * could not be reached exited with "cannot start" and stayed dead, leaving one instance for the rest of
 * the run. It must wait for the database instead, and serve once it answers.
 */
let db: TestDatabase;
let proxy: TcpProxy;
let instance: InstanceProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  const port = Number(new URL(db.url).port);
  proxy = await TcpProxy.start(port);
});

afterAll(async () => {
  await instance?.stop('SIGKILL');
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
  // Several connect timeouts' worth of an unreachable database.
  await sleep(5000);
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
