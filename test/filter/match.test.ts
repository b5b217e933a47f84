import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ORDER_STATUSES } from '../../src/contract/statuses.js';
import { type Filter, intersect, normalise, parseFilter } from '../../src/filter/filter.js';
import { matches } from '../../src/filter/match.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { http, type RunningService, startService } from '../helpers/service.js';

/**
 * The stream's matcher (src/filter/match.ts) against the SQL of GET /orders, on random rows and random
 * filters in a real PostgreSQL: the same rows, every time. Characters are drawn to probe the places the
 * two could differ: case (ASCII and not: É/é, ß, İ/ı, K and the Kelvin sign), LIKE's wildcards and escape
 * (% _ \), spaces, and letters outside the BMP.
 */
let db: TestDatabase;
let svc: RunningService;

const ALPHABET = [
  'a',
  'B',
  'c',
  'A',
  'b',
  'C',
  'É',
  'é',
  'ß',
  'SS',
  'İ',
  'ı',
  'i',
  'I',
  'K',
  '\u212A',
  '%',
  '_',
  '\\',
  ' ',
  '😀',
  'Ω',
  'ω',
  '-',
];
const text = (min: number) => fc.array(fc.constantFrom(...ALPHABET), { minLength: min, maxLength: 8 }).map((parts) => parts.join(''));
const name = text(1).map((s) => `x${s}`);
const status = fc.constantFrom(...ORDER_STATUSES);
const row = fc.record({ customer_name: name, product_name: name, status });

function flipCase(s: string, seed: number): string {
  return [...s].map((c, i) => (((seed >> (i % 30)) & 1) === 1 ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c)).join('');
}

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startService(db.url);
});

afterAll(async () => {
  await svc?.close();
  await db?.drop();
});

describe('one rule for "this order is in the view"', () => {
  it('matches exactly the rows GET /orders returns, for random rows and filters', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(row, { minLength: 1, maxLength: 25 }),
        fc.array(
          fc.record({
            statuses: fc.option(fc.uniqueArray(status, { minLength: 1, maxLength: 5 }), { nil: undefined }),
            q: fc.oneof(
              fc.constant(undefined),
              text(1),
              fc.record({ pick: fc.nat(), from: fc.nat(), len: fc.integer({ min: 1, max: 4 }), seed: fc.nat() }),
            ),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        async (rows, filters) => {
          await db.sql.query('DELETE FROM orders');
          const { rows: stored } = await db.sql.query<{ id: string; customer_name: string; product_name: string; status: string }>(
            `INSERT INTO orders (customer_name, product_name, status)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) RETURNING id, customer_name, product_name, status`,
            [rows.map((r) => r.customer_name), rows.map((r) => r.product_name), rows.map((r) => r.status)],
          );
          for (const spec of filters) {
            let q: string | undefined;
            if (typeof spec.q === 'object') {
              // A substring of a real name, its case partly flipped: the interesting matches.
              const r = stored[spec.q.pick % stored.length] as (typeof stored)[number];
              const chars = [...(spec.q.seed % 2 ? r.customer_name : r.product_name)];
              const from = spec.q.from % chars.length;
              q = flipCase(chars.slice(from, from + spec.q.len).join(''), spec.q.seed);
            } else q = spec.q;
            const params = new URLSearchParams({ limit: '1000' });
            if (spec.statuses) params.set('status', spec.statuses.join(','));
            if (q !== undefined) params.set('q', q);
            const res = await http<{ id: number }[]>(svc.url, 'GET', `/orders?${params}`);
            expect(res.status).toBe(200);
            const parsed = parseFilter({ status: spec.statuses?.join(','), q });
            if ('errors' in parsed) throw new Error(JSON.stringify(parsed.errors));
            const expected = stored.filter((r) => matches(parsed.filter, r)).map((r) => Number(r.id));
            expect(
              res.body.map((o) => o.id).sort((a, b) => a - b),
              `status=${spec.statuses} q=${JSON.stringify(q)}`,
            ).toEqual(expected.sort((a, b) => a - b));
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('folds ASCII letters only, whatever the locale, and treats % _ \\ as plain characters', () => {
    const f = (q: string) => (parseFilter({ q }) as { filter: Filter }).filter;
    const r = (n: string) => ({ status: 'pending', customer_name: n, product_name: 'x' });
    expect(matches(f('LAP'), r('Laptop'))).toBe(true);
    expect(matches(f('é'), r('CAFÉ'))).toBe(false);
    expect(matches(f('É'), r('CAFÉ'))).toBe(true);
    expect(matches(f('50%'), r('50% off'))).toBe(true);
    expect(matches(f('5_%'), r('50% off'))).toBe(false);
    expect(matches(f('a\\b'), r('A\\B'))).toBe(true);
  });

  it('normalises equal views to equal filters and intersects a scope', () => {
    const a = parseFilter({ status: 'processing,pending,pending', q: 'LAP' });
    const b = parseFilter({ status: 'pending,processing', q: 'lap' });
    expect(a).toEqual(b);
    expect(parseFilter({ status: ORDER_STATUSES.join(',') })).toEqual({ filter: { statuses: null, terms: [] } });
    const scope = normalise({ statuses: ['processing'], terms: [] });
    expect(intersect((a as { filter: Filter }).filter, scope)).toEqual({ statuses: ['processing'], terms: ['lap'] });
    expect(intersect(normalise({ statuses: ['shipped'], terms: [] }), scope).statuses).toEqual([]);
  });

  it('refuses unknown statuses and over-long searches with a problem naming the parameter', async () => {
    for (const query of ['status=pending,lost', `q=${'a'.repeat(201)}`, 'q=%00']) {
      const res = await http(svc.url, 'GET', `/orders?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.body.errors[0].field).toMatch(/^query\.(status|q)$/);
    }
  });
});
