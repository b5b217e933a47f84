/**
 * Case-insensitive search, defined so that PostgreSQL and JavaScript agree exactly on every input:
 * only the ASCII letters A–Z fold (to a–z); every other character compares as it is.
 *
 * `ILIKE` cannot be that definition: it folds with the database's locale (only ASCII under the C
 * locale, most of Unicode under a libc or ICU one, each with its own special cases such as 'İ' or the
 * German sharp s), so the same search would match different rows on different hosts, and no JavaScript
 * function reproduces all of them. The SQL side (orders/list-repository.ts) folds names with lower() under
 * `COLLATE "C"`, which changes the same 26 letters and nothing else, and finds the term with strpos(): no
 * LIKE wildcards, so no escaping either.
 */
export const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
export const LOWER = 'abcdefghijklmnopqrstuvwxyz';

export function foldCase(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32)) : s;
}
