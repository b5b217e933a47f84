import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { isRole, ROLES } from '../contract/roles.js';
import { Database } from '../db/database.js';
import { openDatabaseServer } from '../db/database-server.js';
import { migrate } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { formatFilter, parseScope } from '../filter/filter.js';
import { createLogger } from '../logger.js';
import { generateToken, hashToken, parseExpiry } from './tokens.js';

/**
 * `npm run token -- <command>`: manage API tokens in the database the service uses.
 *   create --role <viewer|operator|admin> [--name <who>] [--expires 30d] [--scope status=processing]
 *                                                      prints the new token, once; --expires takes
 *                                                      <n>m, <n>h, <n>d or an ISO date; --scope a
 *                                                      filter the token can never widen (status=a,b&q=term)
 *   list                                               id, name, role, created, expires, revoked
 *   revoke <id>                                        takes effect within AUTH_CACHE_MS everywhere;
 *                                                      its WebSockets are closed with 1008
 *   hash <token>                                       the SHA-256 to put in AUTH_TOKENS
 *
 * It works while the service runs, on the embedded database too (it connects to the running one).
 */
const USAGE = `usage: npm run token -- create --role <${ROLES.join('|')}> [--name <name>] [--expires <n>m|<n>h|<n>d|<ISO date>] [--scope status=<a,b>&q=<term>] | list | revoke <id> | hash <token>`;

async function run(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { role: { type: 'string' }, name: { type: 'string' }, expires: { type: 'string' }, scope: { type: 'string' } },
  });
  const [command, arg] = positionals;
  if (command === 'hash') {
    if (!arg) throw new Error(USAGE);
    process.stdout.write(`${hashToken(arg)}\n`);
    return;
  }
  if (!['create', 'list', 'revoke'].includes(command ?? '')) throw new Error(USAGE);
  const config = loadConfig();
  const log = createLogger('warn', false);
  const server = await openDatabaseServer(config, log, { shareRunning: true });
  const pool = createPool(
    {
      connectionString: server.url,
      max: 1,
      connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
      queryTimeoutMs: 60_000,
      applicationName: 'orders-token',
    },
    log,
  );
  const db = new Database(pool);
  try {
    await migrate(pool, log);
    if (command === 'create') {
      if (!isRole(values.role) || values.name === '') throw new Error(USAGE);
      const expires = values.expires ? parseExpiry(values.expires) : null;
      let scope: string | null = null;
      if (values.scope !== undefined) {
        const parsed = parseScope(values.scope);
        if ('errors' in parsed)
          throw new Error(`--scope ${JSON.stringify(values.scope)}: ${parsed.errors.map((e) => `${e.field} ${e.message}`).join('; ')}`);
        scope = formatFilter(parsed.filter);
      }
      const name = values.name ?? (scope ? `${values.role} ${scope}` : values.role);
      const token = generateToken();
      const { rows } = await db.query<{ id: number }>(
        'INSERT INTO api_tokens (name, role, token_hash, expires_at, scope) VALUES ($1, $2, $3, $4, $5) RETURNING id',
        [name, values.role, hashToken(token), expires, scope],
      );
      const until = expires ? `, expires ${expires.toISOString()}` : '';
      const scoped = scope ? `, scope ${scope}` : '';
      process.stdout.write(`created token ${rows[0]?.id} (${values.role}, ${name}${until}${scoped}); it is shown only now:\n${token}\n`);
    } else if (command === 'list') {
      const { rows } = await db.query<{
        id: number;
        name: string;
        role: string;
        created_at: Date;
        expires_at: Date | null;
        revoked_at: Date | null;
        scope: string | null;
      }>('SELECT id, name, role, created_at, expires_at, revoked_at, scope FROM api_tokens ORDER BY id');
      const now = Date.now();
      for (const r of rows) {
        const expiry = r.expires_at ? `\t${r.expires_at.getTime() <= now ? 'expired' : 'expires'} ${r.expires_at.toISOString()}` : '';
        process.stdout.write(
          `${r.id}\t${r.role}\t${r.name}\tcreated ${r.created_at.toISOString()}${expiry}${r.scope ? `\tscope ${r.scope}` : ''}${r.revoked_at ? `\trevoked ${r.revoked_at.toISOString()}` : ''}\n`,
        );
      }
      if (rows.length === 0) process.stdout.write('no tokens: authentication is off (the service only serves loopback)\n');
    } else {
      const id = Number(arg);
      if (!Number.isInteger(id)) throw new Error(USAGE);
      const { rowCount } = await db.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [id]);
      process.stdout.write(rowCount ? `revoked token ${id}\n` : `no active token ${id}\n`);
      const { rows } = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM api_tokens WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())',
      );
      if (rowCount && rows[0]?.n === 0 && !config.AUTH_TOKENS) {
        process.stdout.write('no active token is left: every request is refused (401) until you create one (authentication stays on)\n');
      }
    }
  } finally {
    await pool.end();
    await server.stop();
  }
}

run().catch((err: unknown) => {
  process.stderr.write(`token: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  process.exit(1);
});
