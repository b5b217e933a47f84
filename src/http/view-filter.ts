import type { Principal } from '../auth/roles.js';
import { ApiError } from '../errors.js';
import { EVERYTHING, type Filter, intersect, parseFilter } from '../filter/filter.js';

/**
 * The view a request asks for (`status`, `q` query parameters, as on `GET /orders`), intersected with
 * the scope of its credential: a scoped token can narrow its view, never widen it. A bad parameter is a
 * 400 problem naming it.
 */
export function requestedView(query: { status?: string | undefined; q?: string | undefined }, principal: Principal | null): Filter {
  const parsed = parseFilter(query);
  if ('errors' in parsed) {
    throw new ApiError('validation-failed', parsed.errors.map((e) => `${e.field} ${e.message}`).join('; '), {
      errors: parsed.errors.map((e) => ({ field: `query.${e.field}`, message: e.message })),
    });
  }
  return principal?.scope ? intersect(parsed.filter, principal.scope) : parsed.filter;
}

/** The scope of a credential: everything, unless it is a scoped token. */
export function scopeOf(principal: Principal | null): Filter {
  return principal?.scope ?? EVERYTHING;
}
