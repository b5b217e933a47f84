import { foldCase } from '../contract/fold.js';
import { ORDER_STATUSES, type OrderStatus } from '../contract/statuses.js';

/**
 * A view of the orders: which rows a client looks at. The same filter parameters as `GET /orders`
 * (`status=a,b` and `q=`), normalised so that two filters selecting the same rows by the same rule
 * have the same key (the hub groups sockets by it, and builds one frame per group).
 *
 * `terms` are all required (AND): a scoped token's `q` and the client's own `q` both apply. Each term
 * is already case-folded (contract/fold.ts), so matching needs no folding of the term again.
 */
export interface Filter {
  /** Statuses a row may have; null: any. An empty list matches nothing (an empty intersection). */
  statuses: readonly OrderStatus[] | null;
  /** Case-folded substrings, each of which must occur in the customer or the product name. */
  terms: readonly string[];
}

export const EVERYTHING: Filter = { statuses: null, terms: [] };

/** At most this many characters in `q` (the length of a name: a longer term can match nothing). */
const MAX_TERM_LENGTH = 200;

export interface FilterError {
  field: 'status' | 'q';
  message: string;
}

/** Parses the query parameters `status` and `q`; errors name the parameter, as a problem's `errors`. */
export function parseFilter(params: {
  status?: string | undefined;
  q?: string | undefined;
}): { filter: Filter } | { errors: FilterError[] } {
  const errors: FilterError[] = [];
  let statuses: OrderStatus[] | null = null;
  if (params.status !== undefined) {
    const parts = params.status.split(',');
    const unknown = parts.filter((s) => !(ORDER_STATUSES as readonly string[]).includes(s));
    if (unknown.length > 0 || params.status.length > 100) {
      errors.push({
        field: 'status',
        message: `must be one or more of ${ORDER_STATUSES.join(', ')}, comma-separated (unknown: ${JSON.stringify(unknown[0]?.slice(0, 40) ?? '')})`,
      });
    } else statuses = parts as OrderStatus[];
  }
  const terms: string[] = [];
  if (params.q !== undefined && params.q !== '') {
    if ([...params.q].length > MAX_TERM_LENGTH) errors.push({ field: 'q', message: `must be at most ${MAX_TERM_LENGTH} characters` });
    else if (params.q.includes('\u0000')) errors.push({ field: 'q', message: 'must not contain NUL characters' });
    else terms.push(params.q);
  }
  if (errors.length > 0) return { errors };
  return { filter: normalise({ statuses, terms }) };
}

/** The canonical form: statuses deduplicated in lifecycle order (all five is no restriction), terms folded, deduplicated, sorted. */
export function normalise(f: Filter): Filter {
  let statuses: OrderStatus[] | null = null;
  if (f.statuses !== null) {
    const set = new Set(f.statuses);
    statuses = ORDER_STATUSES.filter((s) => set.has(s));
    if (statuses.length === ORDER_STATUSES.length) statuses = null;
  }
  const terms = [...new Set(f.terms.map(foldCase))].sort();
  return { statuses, terms };
}

/** Rows both filters select: what a scoped client asking for `f` may see. */
export function intersect(a: Filter, b: Filter): Filter {
  let statuses: OrderStatus[] | null;
  if (a.statuses === null) statuses = b.statuses === null ? null : [...b.statuses];
  else if (b.statuses === null) statuses = [...a.statuses];
  else statuses = a.statuses.filter((s) => (b.statuses as readonly OrderStatus[]).includes(s));
  return normalise({ statuses, terms: [...a.terms, ...b.terms] });
}

export function isEverything(f: Filter): boolean {
  return f.statuses === null && f.terms.length === 0;
}

/** A stable key of a normalised filter ('' for no restriction). */
export function filterKey(f: Filter): string {
  return isEverything(f) ? '' : JSON.stringify([f.statuses, f.terms]);
}

/** The filter as query parameters (`status=a,b&q=term`), as a token's scope is stored. */
export function formatFilter(f: Filter): string {
  const p = new URLSearchParams();
  if (f.statuses !== null) p.set('status', f.statuses.join(','));
  for (const t of f.terms) p.append('q', t);
  return p.toString();
}

/** A token's scope as written (`status=processing`, `status=pending,processing&q=acme`); errors say what is wrong. */
export function parseScope(text: string): { filter: Filter } | { errors: FilterError[] } {
  const p = new URLSearchParams(text);
  const unknown = [...p.keys()].filter((k) => k !== 'status' && k !== 'q');
  if (unknown.length > 0) return { errors: [{ field: 'status', message: `a scope has only status= and q=, not ${unknown[0]}=` }] };
  const terms = p.getAll('q');
  const parsed = parseFilter({ status: p.get('status') ?? undefined, q: terms[0] });
  if ('errors' in parsed) return parsed;
  for (const t of terms.slice(1)) {
    const more = parseFilter({ q: t });
    if ('errors' in more) return more;
    parsed.filter = intersect(parsed.filter, more.filter);
  }
  return parsed;
}
