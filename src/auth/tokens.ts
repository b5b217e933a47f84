import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { isRole, type Role } from '../contract/roles.js';
import type { Database } from '../db/database.js';
import { parseScope } from '../filter/filter.js';
import type { Principal } from './roles.js';
import { activeTokenIds, findActiveToken, tokensPresent } from './token-repository.js';

/**
 * Credentials: random bearer tokens, known to the service only by their SHA-256. They come from the
 * api_tokens table (managed with `npm run token`) and, for configuration-only deployments, from
 * AUTH_TOKENS (`role=<sha256 hex>` pairs). Lookups are cached for a few seconds, which bounds how long a
 * revoked token keeps working (and how often the database is asked).
 */
const TOKEN_PREFIX = 'ord_';

export function generateToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** `--expires`: a duration from now (`90m`, `12h`, `30d`) or an ISO date in the future. */
export function parseExpiry(value: string, now = new Date()): Date {
  const m = /^(\d{1,6})([mhd])$/.exec(value.trim());
  const at = m
    ? new Date(now.getTime() + Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'])
    : new Date(value);
  if (Number.isNaN(at.getTime()) || at.getTime() <= now.getTime()) {
    throw new Error(`--expires ${JSON.stringify(value)}: give a duration like 90m, 12h or 30d, or a future ISO date`);
  }
  return at;
}

export interface EnvToken {
  role: Role;
  hash: Buffer;
}

/** Parses AUTH_TOKENS: `viewer=<64 hex>,admin=<64 hex>`; throws with the position of a bad entry. */
export function parseEnvTokens(value: string | undefined): EnvToken[] {
  if (!value) return [];
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry, i) => {
      const [role, hash] = entry.split('=');
      if (!isRole(role) || !hash || !/^[0-9a-f]{64}$/.test(hash)) {
        throw new Error(`entry ${i + 1} must be <viewer|operator|admin>=<sha256 of the token, 64 hex digits>`);
      }
      return { role, hash: Buffer.from(hash, 'hex') };
    });
}

/**
 * A token row as a principal. A scope that no longer parses (edited by hand) fails closed: the token
 * then sees nothing rather than everything.
 */
function toPrincipal(row: { id: number; name: string; role: Role; scope: string | null }, log: Logger): Principal {
  const principal: Principal = { id: `db:${row.id}`, name: row.name, role: row.role };
  if (row.scope === null) return principal;
  const parsed = parseScope(row.scope);
  if ('errors' in parsed) {
    log.warn({ event: 'auth.bad-scope', token: row.id }, 'token scope does not parse; the token sees nothing');
    principal.scope = { statuses: [], terms: [] };
  } else principal.scope = parsed.filter;
  return principal;
}

interface Cached {
  principal: Principal | null;
  until: number;
}

export interface TokenStoreOptions {
  db: Database;
  envTokens: EnvToken[];
  /** How long a lookup (and the answer to "is authentication on") is cached. */
  cacheMs: number;
  /** On from the start (AUTH=required, or a non-loopback HOST): with no active token nobody gets in. */
  required: boolean;
  log: Logger;
}

/**
 * Authentication fails closed: it is on from the start when required, and otherwise switches on as
 * soon as any credential has ever existed (a revoked or expired token still counts), and once on it
 * never switches off in this process. Revoking every token therefore locks everybody out (401) rather
 * than letting everybody in as admin.
 */
export class TokenStore {
  private readonly cache = new Map<string, Cached>();
  private on: boolean;
  private checkedUntil = 0;
  private lockedOutLogged = false;
  private everExisted = false;

  constructor(private readonly options: TokenStoreOptions) {
    this.on = options.required || options.envTokens.length > 0;
  }

  /** Whether callers must present a token. Only ever goes from false to true. */
  async authRequired(): Promise<boolean> {
    const now = Date.now();
    if (this.checkedUntil > now) return this.on;
    const { ever, active } = await tokensPresent(this.options.db);
    if (ever && !this.on) this.options.log.info({ event: 'auth.on' }, 'a credential exists: authentication is on from now on');
    this.on ||= ever;
    this.everExisted = ever || this.options.envTokens.length > 0;
    this.checkedUntil = now + this.options.cacheMs;
    const lockedOut = this.on && !active && this.options.envTokens.length === 0;
    if (lockedOut && !this.lockedOutLogged) {
      this.options.log.warn(
        { event: 'auth.no-active-credential' },
        'authentication is on but no credential is active (all revoked or expired): every request is refused with 401 until one is created (npm run token -- create)',
      );
    }
    this.lockedOutLogged = lockedOut;
    return this.on;
  }

  /**
   * The last known answer of authRequired(), without asking the database (readiness probes must not
   * wake a sleeping one). Only ever goes from false to true, like authRequired().
   */
  get knownRequired(): boolean {
    return this.on;
  }

  /** Whether any credential has ever been configured (as of the last check). */
  get credentialsConfigured(): boolean {
    return this.everExisted || this.options.envTokens.length > 0;
  }

  async authenticate(token: string): Promise<Principal | null> {
    if (token.length < 10 || token.length > 200) return null;
    const hash = hashToken(token);
    const digest = Buffer.from(hash, 'hex');
    // Every configured hash is compared, in constant time, whichever matches.
    let envMatch: Principal | null = null;
    this.options.envTokens.forEach((t, i) => {
      if (timingSafeEqual(t.hash, digest) && !envMatch) envMatch = { id: `env:${i + 1}`, name: `AUTH_TOKENS #${i + 1}`, role: t.role };
    });
    if (envMatch) return envMatch;
    const now = Date.now();
    const cached = this.cache.get(hash);
    if (cached && cached.until > now) return cached.principal;
    const row = await findActiveToken(this.options.db, hash);
    const principal = row ? toPrincipal(row, this.options.log) : null;
    if (this.cache.size > 10_000) this.cache.clear();
    // A cached answer never outlives the token's expiry.
    this.cache.set(hash, { principal, until: now + Math.min(this.options.cacheMs, row?.expires_in_ms ?? Number.POSITIVE_INFINITY) });
    return principal;
  }

  /**
   * Of the given principal ids, those that are no longer valid: revoked, expired or deleted tokens, and
   * `local` (authentication off) once authentication is on.
   */
  async revoked(ids: readonly string[]): Promise<string[]> {
    const gone = new Set<string>();
    if (ids.includes('local') && (await this.authRequired())) gone.add('local');
    const dbIds = ids.filter((id) => id.startsWith('db:')).map((id) => Number(id.slice(3)));
    if (dbIds.length > 0) {
      const active = new Set((await activeTokenIds(this.options.db, dbIds)).map((id) => `db:${id}`));
      for (const id of ids) if (id.startsWith('db:') && !active.has(id)) gone.add(id);
    }
    return [...gone];
  }
}
