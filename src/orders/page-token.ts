import { KEY_KIND, type SortDirection, type SortKey, type SortPosition } from '../contract/sort-order.js';
import { ORDER_STATUSES } from '../contract/statuses.js';
import { ApiError } from '../errors.js';

/**
 * The `page` parameter of GET /orders: where the previous page ended, as an opaque token (base64url of
 * `[1, sort, dir, value, id]`). It is checked as hostile input: a token that does not decode, is too
 * long, belongs to another sort or direction, or carries a value its column cannot hold is a 400 naming
 * `query.page`, never an SQL error. Opaque so that its form can change; the version (1) says which.
 */
const MAX_TOKEN_LENGTH = 1200;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

function refuse(message: string): never {
  throw new ApiError('validation-failed', `page ${message}`, { errors: [{ field: 'query.page', message }] });
}

export function decodePageToken(token: string, sort: SortKey, dir: SortDirection): SortPosition {
  if (token.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token)) refuse('is not a page token from this API');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    refuse('is not a page token from this API');
  }
  if (!Array.isArray(parsed) || parsed.length !== 5 || parsed[0] !== 1) refuse('is not a page token from this API');
  const [, tSort, tDir, value, id] = parsed as [number, unknown, unknown, unknown, unknown];
  if (tSort !== sort || tDir !== dir)
    refuse(`belongs to another order (sort=${String(tSort)}, dir=${String(tDir)}): start again from the first page`);
  if (!Number.isSafeInteger(id) || (id as number) < 1) refuse('has an invalid order id');
  if (!validValue(sort, value)) refuse(`has an invalid ${sort} value`);
  return { value: value as string | number, id: id as number };
}

function validValue(sort: SortKey, value: unknown): boolean {
  switch (KEY_KIND[sort]) {
    case 'number':
      return Number.isSafeInteger(value) && (value as number) >= 0;
    case 'status':
      return (ORDER_STATUSES as readonly unknown[]).includes(value);
    case 'time': {
      if (typeof value !== 'string' || !TIME.test(value) || value.startsWith('0000')) return false;
      // Refuses dates that do not exist (2026-02-31), which PostgreSQL would reject with an error.
      const ms = Date.parse(`${value.slice(0, 23)}Z`);
      return Number.isFinite(ms) && new Date(ms).toISOString().slice(0, 19) === value.slice(0, 19);
    }
    default:
      // A folded name: PostgreSQL text cannot hold NUL, and no name is longer than 200 characters.
      return typeof value === 'string' && [...value].length <= 200 && !value.includes('\u0000');
  }
}
