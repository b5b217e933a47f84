import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import type { Logger } from 'pino';

const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

// Any constant works as long as nothing else uses it; several instances starting together queue on it.
const MIGRATION_LOCK_KEY = 7_245_018_311;

export interface Migration {
  version: number;
  name: string;
  file: string;
}

export async function listMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return files.map((file) => ({
    version: Number(file.slice(0, 4)),
    name: file.slice(5, -4),
    file: path.join(dir, file),
  }));
}

/**
 * Applies pending migrations in one transaction under a transaction-scoped advisory lock, so instances
 * that start at the same moment apply them once, and a failure leaves the schema as it was. Each file
 * records itself in schema_migrations (so applying the files with `psql -1 -f` is equivalent); we check
 * that it did.
 */
export async function migrate(pool: pg.Pool, log: Logger): Promise<string[]> {
  // Up to date: touch nothing, so a service running as a role that may not change the schema (see
  // deploy/least-privilege.sql) starts with the default DB_MIGRATE=true.
  if ((await pendingMigrations(pool)).length === 0) return [];
  const migrations = await listMigrations();
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
    const done = new Set(rows.map((r) => r.version));
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query(await readFile(m.file, 'utf8'));
      const recorded = await client.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (recorded.rowCount !== 1) throw new Error(`migration ${path.basename(m.file)} does not record itself in schema_migrations`);
      applied.push(path.basename(m.file));
      log.info({ migration: path.basename(m.file) }, 'migration applied');
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Migrations the code knows but the database lacks (for readiness when DB_MIGRATE is off). */
export async function pendingMigrations(pool: pg.Pool): Promise<string[]> {
  const migrations = await listMigrations();
  const { rows } = await pool
    .query<{ version: number }>("SELECT version FROM schema_migrations WHERE to_regclass('schema_migrations') IS NOT NULL")
    .catch((err: { code?: string }) => {
      if (err.code === '42P01') return { rows: [] as { version: number }[] };
      throw err;
    });
  const done = new Set(rows.map((r) => r.version));
  return migrations.filter((m) => !done.has(m.version)).map((m) => path.basename(m.file));
}
