import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { hashToken } from '../src/auth/tokens.js';
import { listMigrations } from '../src/db/migrate.js';
import { createTestDatabase, databaseUrl, type TestDatabase } from './helpers/db.js';

/** The commands operators run: `npm run db:migrate` and `npm run token`. */
const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const cli = (script: string, args: string[], env: Record<string, string>) =>
  run(process.execPath, ['--import', 'tsx', script, ...args], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env } });

let db: TestDatabase;
const emptyName = `orders_cli_${Date.now()}`;
let admin: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase();
  admin = new pg.Client({ connectionString: inject('adminUrl') });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${emptyName}`);
});

afterAll(async () => {
  await admin.query(`DROP DATABASE IF EXISTS ${emptyName} WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  await db?.drop();
});

it('db:migrate applies the schema to an empty database, once', async () => {
  const url = databaseUrl(inject('adminUrl'), emptyName);
  const known = await listMigrations();
  const first = await cli('src/db/migrate-cli.ts', [], { DATABASE_URL: url, LOG_LEVEL: 'info' });
  expect(first.stdout).toMatch(new RegExp(`applied ${known.length} migration\\(s\\)`));
  const second = await cli('src/db/migrate-cli.ts', [], { DATABASE_URL: url, LOG_LEVEL: 'info' });
  expect(second.stdout).toMatch(/schema is up to date/);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const { rows } = await c.query('SELECT version FROM schema_migrations ORDER BY version');
  await c.end();
  expect(rows.map((r) => r.version)).toEqual(known.map((m) => m.version));
});

it('token creates, lists and revokes credentials, storing only a hash', { timeout: 60_000 }, async () => {
  const env = { DATABASE_URL: db.url };
  const created = await cli('src/auth/token-cli.ts', ['create', '--role', 'operator', '--name', 'tablet 3'], env);
  const token = created.stdout.trim().split('\n').pop() as string;
  expect(token).toMatch(/^ord_[A-Za-z0-9_-]{43}$/);
  const { rows } = await db.sql.query('SELECT id, name, role, token_hash FROM api_tokens');
  expect(rows).toEqual([{ id: expect.any(String), name: 'tablet 3', role: 'operator', token_hash: hashToken(token) }]);
  expect(JSON.stringify(rows)).not.toContain(token);
  const listed = await cli('src/auth/token-cli.ts', ['list'], env);
  expect(listed.stdout).toMatch(/operator\ttablet 3/);
  await cli('src/auth/token-cli.ts', ['revoke', String(rows[0].id)], env);
  const after = await db.sql.query('SELECT revoked_at FROM api_tokens WHERE id = $1', [rows[0].id]);
  expect(after.rows[0].revoked_at).toBeInstanceOf(Date);
  const hashed = await cli('src/auth/token-cli.ts', ['hash', token], {});
  expect(hashed.stdout.trim()).toBe(hashToken(token));
  await expect(cli('src/auth/token-cli.ts', ['create', '--role', 'root', '--name', 'x'], env)).rejects.toMatchObject({
    stderr: expect.stringMatching(/^token: usage:/),
  });
  // A scope: stored normalised, shown by list; a bad one is refused naming what is wrong.
  const scoped = await cli('src/auth/token-cli.ts', ['create', '--role', 'viewer', '--scope', 'status=processing'], env);
  expect(scoped.stdout).toMatch(/scope status=processing/);
  const stored = await db.sql.query("SELECT name, scope FROM api_tokens WHERE role = 'viewer'");
  expect(stored.rows).toEqual([{ name: 'viewer status=processing', scope: 'status=processing' }]);
  expect((await cli('src/auth/token-cli.ts', ['list'], env)).stdout).toMatch(
    /viewer\tviewer status=processing\t.*\tscope status=processing/,
  );
  await expect(cli('src/auth/token-cli.ts', ['create', '--role', 'viewer', '--scope', 'status=lost'], env)).rejects.toMatchObject({
    stderr: expect.stringMatching(/--scope "status=lost": status must be one or more of/),
  });
});
