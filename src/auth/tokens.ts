import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Database } from '../db/database.js';
import { isRole, type Principal, type Role } from './roles.js';

/**
 * Credentials: random bearer tokens, known to the service only by their SHA-256. They come from the
 * api_tokens table (managed with `npm run token`) and, for configuration-only deployments, from
 * AUTH_TOKENS (`role=<sha256 hex>` pairs). Lookups are cached for a few seconds, which bounds how long a
 * revoked token keeps working (and how often the database is asked).
 */
export const TOKEN_PREFIX = 'ord_';

export function generateToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
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

interface Cached {
  principal: Principal | null;
  until: number;
}

export class TokenStore {
  private readonly cache = new Map<string, Cached>();
  private required: { value: boolean; until: number } | null = null;

  constructor(
    private readonly db: Database,
    private readonly envTokens: EnvToken[],
    private readonly cacheMs: number,
  ) {}

  /** Authentication is on as soon as any credential exists. */
  async authRequired(): Promise<boolean> {
    if (this.envTokens.length > 0) return true;
    const now = Date.now();
    if (this.required && this.required.until > now) return this.required.value;
    const { rows } = await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_tokens WHERE revoked_at IS NULL');
    const value = (rows[0]?.n ?? 0) > 0;
    this.required = { value, until: now + this.cacheMs };
    return value;
  }

  async authenticate(token: string): Promise<Principal | null> {
    if (token.length < 10 || token.length > 200) return null;
    const hash = hashToken(token);
    const digest = Buffer.from(hash, 'hex');
    // Every configured hash is compared, in constant time, whichever matches.
    let envMatch: Principal | null = null;
    this.envTokens.forEach((t, i) => {
      if (timingSafeEqual(t.hash, digest) && !envMatch) envMatch = { id: `env:${i + 1}`, name: `AUTH_TOKENS #${i + 1}`, role: t.role };
    });
    if (envMatch) return envMatch;
    const now = Date.now();
    const cached = this.cache.get(hash);
    if (cached && cached.until > now) return cached.principal;
    const { rows } = await this.db.query<{ id: number; name: string; role: Role }>(
      'SELECT id, name, role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL',
      [hash],
    );
    const row = rows[0];
    const principal = row ? { id: `db:${row.id}`, name: row.name, role: row.role } : null;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(hash, { principal, until: now + this.cacheMs });
    return principal;
  }

  /** Of the given principal ids, those that are no longer valid (revoked or deleted). */
  async revoked(ids: readonly string[]): Promise<string[]> {
    const dbIds = ids.filter((id) => id.startsWith('db:')).map((id) => Number(id.slice(3)));
    if (dbIds.length === 0) return [];
    const { rows } = await this.db.query<{ id: number }>('SELECT id FROM api_tokens WHERE id = ANY($1) AND revoked_at IS NULL', [dbIds]);
    const active = new Set(rows.map((r) => `db:${r.id}`));
    return ids.filter((id) => id.startsWith('db:') && !active.has(id));
  }
}
