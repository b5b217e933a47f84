/**
 * PostgreSQL errors classified by SQLSTATE, never by message text
 * (https://www.postgresql.org/docs/current/errcodes-appendix.html).
 *
 * An error raised by a database call either carries a SQLSTATE (the server answered) or does not (the
 * driver or the socket failed: refused, reset, timed out, terminated). node-postgres gives the second
 * kind no code, so "no SQLSTATE from a database call" is what classifies it as the database being
 * unavailable. Callers must only classify errors that came out of a database call.
 */
export type PgErrorClass =
  | 'unavailable'
  | 'serialization'
  /** A lock was not granted within lock_timeout (55P03): another transaction holds the row. */
  | 'locked'
  | 'unique_violation'
  | 'check_violation'
  | 'not_null_violation'
  | 'invalid_input'
  | 'other';

// 08 connection exception, 53 insufficient resources, 57 operator intervention (admin shutdown,
// crash shutdown, cannot connect now), 58 system error.
const UNAVAILABLE_CLASSES = new Set(['08', '53', '57', '58']);

export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function classifyPgError(err: unknown): PgErrorClass {
  const state = sqlState(err);
  if (!state) return 'unavailable';
  if (state === '40001' || state === '40P01') return 'serialization';
  if (state === '55P03') return 'locked';
  if (state === '23505') return 'unique_violation';
  if (state === '23514') return 'check_violation';
  if (state === '23502') return 'not_null_violation';
  if (state.startsWith('22')) return 'invalid_input';
  if (UNAVAILABLE_CLASSES.has(state.slice(0, 2))) return 'unavailable';
  return 'other';
}
