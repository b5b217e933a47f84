import type { Role } from '../contract/roles.js';
import type { Queryable } from '../db/database.js';

/**
 * The SQL of the api_tokens table, one function per statement: for the service (TokenStore) and for
 * `npm run token`. A token is active until it is revoked or expires; it exists (and keeps authentication
 * on, tokens.ts) even after that.
 */
const ACTIVE = 'revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())';

/** Whether any token was ever created, and whether one is active now. */
export async function tokensPresent(db: Queryable): Promise<{ ever: boolean; active: boolean }> {
  const { rows } = await db.query<{ ever: boolean; active: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM api_tokens) AS ever, EXISTS (SELECT 1 FROM api_tokens WHERE ${ACTIVE}) AS active`,
  );
  return rows[0] ?? { ever: false, active: false };
}

export interface ActiveToken {
  id: number;
  name: string;
  role: Role;
  scope: string | null;
  /** Null: it never expires. */
  expires_in_ms: number | null;
}

/** The active token with this SHA-256 (hex), if any. */
export async function findActiveToken(db: Queryable, hash: string): Promise<ActiveToken | undefined> {
  const { rows } = await db.query<ActiveToken>(
    `SELECT id, name, role, scope, (extract(epoch FROM expires_at - now()) * 1000)::float8 AS expires_in_ms
       FROM api_tokens WHERE token_hash = $1 AND ${ACTIVE}`,
    [hash],
  );
  return rows[0];
}

/** Of these token ids, the ones still active. */
export async function activeTokenIds(db: Queryable, ids: readonly number[]): Promise<number[]> {
  const { rows } = await db.query<{ id: number }>(`SELECT id FROM api_tokens WHERE id = ANY($1) AND ${ACTIVE}`, [ids]);
  return rows.map((r) => r.id);
}

export async function countActiveTokens(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM api_tokens WHERE ${ACTIVE}`);
  return rows[0]?.n ?? 0;
}

export interface NewToken {
  name: string;
  role: Role;
  /** SHA-256 of the token, hex: the token itself is never stored. */
  hash: string;
  expires: Date | null;
  /** A filter as query parameters (formatFilter), or null for every order. */
  scope: string | null;
}

/** Stores a token; returns its id. */
export async function insertToken(db: Queryable, token: NewToken): Promise<number> {
  const { rows } = await db.query<{ id: number }>(
    'INSERT INTO api_tokens (name, role, token_hash, expires_at, scope) VALUES ($1, $2, $3, $4, $5) RETURNING id',
    [token.name, token.role, token.hash, token.expires, token.scope],
  );
  return rows[0]?.id as number;
}

export interface TokenRow {
  id: number;
  name: string;
  role: string;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  scope: string | null;
}

/** Every token, revoked and expired ones included, oldest first. */
export async function listTokens(db: Queryable): Promise<TokenRow[]> {
  const { rows } = await db.query<TokenRow>('SELECT id, name, role, created_at, expires_at, revoked_at, scope FROM api_tokens ORDER BY id');
  return rows;
}

/** Revokes an active token; false when there is none with this id. */
export async function revokeToken(db: Queryable, id: number): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [id]);
  return Boolean(rowCount);
}
