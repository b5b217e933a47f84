import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { isRole, ROLES } from '../contract/roles.js';
import { withCliDatabase } from '../db/cli-database.js';
import { Database } from '../db/database.js';
import { migrate } from '../db/migrate.js';
import { formatFilter, parseScope } from '../filter/filter.js';
import { createLogger } from '../logger.js';
import { countActiveTokens, insertToken, listTokens, revokeToken } from './token-repository.js';
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
  await withCliDatabase(config, log, { applicationName: 'orders-token', queryTimeoutMs: 60_000 }, async (pool) => {
    const db = new Database(pool);
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
      const id = await insertToken(db, { name, role: values.role, hash: hashToken(token), expires, scope });
      const until = expires ? `, expires ${expires.toISOString()}` : '';
      const scoped = scope ? `, scope ${scope}` : '';
      process.stdout.write(`created token ${id} (${values.role}, ${name}${until}${scoped}); it is shown only now:\n${token}\n`);
    } else if (command === 'list') {
      const rows = await listTokens(db);
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
      const revoked = await revokeToken(db, id);
      process.stdout.write(revoked ? `revoked token ${id}\n` : `no active token ${id}\n`);
      if (revoked && (await countActiveTokens(db)) === 0 && !config.AUTH_TOKENS) {
        process.stdout.write('no active token is left: every request is refused (401) until you create one (authentication stays on)\n');
      }
    }
  });
}

run().catch((err: unknown) => {
  process.stderr.write(`token: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  process.exit(1);
});
