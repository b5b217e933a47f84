import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import type { BrowserContext, BrowserContextOptions } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { launchBrowser, type TestBrowser } from './browser.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { type RunningService, startService } from './service.js';

/**
 * The setup and teardown a test file would otherwise write out: call these at the top of the file. They
 * return objects filled in before the file's first test (so tests read `svc.url`, `db.sql` as usual)
 * and close everything after its last one.
 */

export interface ServiceOptions {
  /** Every test starts with no orders (and ids from 1 again). */
  emptyEachTest?: boolean;
  /** Runs on the new database before the service starts (e.g. to create tokens it finds at start). */
  beforeStart?: (db: TestDatabase) => Promise<void>;
}

/** A database of the file's own and the whole service on it. To restart the service: `Object.assign(svc, await startService(…))`. */
export function useService(settings: Record<string, string> = {}, options: ServiceOptions = {}): { db: TestDatabase; svc: RunningService } {
  const db = {} as TestDatabase;
  const svc = {} as RunningService;
  beforeAll(async () => {
    Object.assign(db, await createTestDatabase());
    await options.beforeStart?.(db);
    Object.assign(svc, await startService(db.url, settings));
  });
  afterAll(async () => {
    await svc.close?.();
    await db.drop?.();
  });
  if (options.emptyEachTest) beforeEach(() => emptyOrders(db));
  return { db, svc };
}

/**
 * A PostgreSQL cluster of the file's own, migrated, and the whole service on it: for tests whose subject
 * is the cluster's (transaction ids and the commit order of every database in it), which another file's
 * writes on the shared cluster would disturb.
 */
export function usePrivateCluster(settings: Record<string, string> = {}): {
  db: { url: string; sql: pg.Pool };
  svc: RunningService;
} {
  const db = {} as { url: string; sql: pg.Pool };
  const svc = {} as RunningService;
  let dir: string | undefined;
  let postgres: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
  beforeAll(async () => {
    const log = pino({ level: 'silent' });
    dir = await mkdtemp(path.join(tmpdir(), 'orders-private-cluster-'));
    postgres = await startEmbeddedPostgres({ dataDir: dir, port: 0, log });
    Object.assign(db, { url: postgres.url, sql: new pg.Pool({ connectionString: postgres.url, max: 4 }) });
    db.sql.on('error', () => undefined);
    await migrate(db.sql, log);
    Object.assign(svc, await startService(db.url, settings));
  });
  afterAll(async () => {
    await svc.close?.();
    await db.sql?.end();
    await postgres?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return { db, svc };
}

export async function emptyOrders(db: Pick<TestDatabase, 'sql'>): Promise<void> {
  await db.sql.query("SELECT set_config('orders.allow_truncate', 'on', true); TRUNCATE orders RESTART IDENTITY");
}

export interface BrowserFixture {
  /** One Chromium for the file. */
  readonly browser: TestBrowser;
  /** This test's own context (one person's browser), opened before the test and closed after it. */
  readonly context: BrowserContext;
  /** Another context for this test (another person's browser), closed after it. */
  newContext(options?: BrowserContextOptions): Promise<BrowserContext>;
  /** After the test, fails it if this page threw or logged an error (a CSP violation among them). */
  watch<T extends { errors: string[] }>(page: T): T;
}

/** Chromium for the file, a context per test, and no page error left unnoticed. */
export function useBrowser({ contextEachTest = true } = {}): BrowserFixture {
  const browser = {} as TestBrowser;
  const contexts: BrowserContext[] = [];
  const watched: { errors: string[] }[] = [];
  let context: BrowserContext | undefined;
  const fixture: BrowserFixture = {
    browser,
    get context() {
      if (!context) throw new Error('no context for this test: useBrowser({ contextEachTest: true })');
      return context;
    },
    async newContext(options) {
      const c = await browser.newContext(options);
      contexts.push(c);
      return c;
    },
    watch(page) {
      watched.push(page);
      return page;
    },
  };
  beforeAll(async () => {
    Object.assign(browser, await launchBrowser());
  });
  afterAll(async () => {
    await browser.close?.();
  });
  if (contextEachTest) {
    beforeEach(async () => {
      context = await fixture.newContext();
    });
  }
  afterEach(async () => {
    const errors = watched.splice(0).flatMap((p) => p.errors);
    for (const c of contexts.splice(0)) await c.close();
    context = undefined;
    // A CSP violation or an exception in the page is a failure of whichever test caused it.
    expect(errors).toEqual([]);
  });
  return fixture;
}
