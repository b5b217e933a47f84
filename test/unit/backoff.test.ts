import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/contract/backoff.js';

const attempt = fc.integer({ min: 0, max: 2000 });
const policy = fc
  .record({
    minMs: fc.integer({ min: 1, max: 10_000 }),
    spread: fc.integer({ min: 1, max: 1000 }),
    jitter: fc.double({ min: 0, max: 1, noNaN: true }),
  })
  .map(({ minMs, spread, jitter }) => ({ minMs, maxMs: minMs * spread, jitter }));
/** Math.random's range: [0, 1). */
const random = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

describe('backoffDelay', () => {
  it('waits between the ceiling less its jitter and the ceiling, and never past the cap', () => {
    fc.assert(
      fc.property(attempt, policy, random, (n, p, r) => {
        const ceiling = Math.min(p.maxMs, p.minMs * 2 ** n);
        const delay = backoffDelay(n, p, () => r);
        expect(delay).toBeGreaterThanOrEqual(Math.floor(ceiling * (1 - p.jitter)));
        expect(delay).toBeLessThanOrEqual(ceiling);
        expect(delay).toBeLessThanOrEqual(p.maxMs);
        expect(Number.isInteger(delay)).toBe(true);
      }),
    );
  });

  it('reaches the cap and stays there', () => {
    fc.assert(
      fc.property(policy, random, (p, r) => {
        const atCap = Math.ceil(Math.log2(p.maxMs / p.minMs));
        for (const n of [atCap, atCap + 1, atCap + 40, 10_000]) {
          expect(backoffDelay(n, p, () => r)).toBe(Math.round(p.maxMs * (1 - p.jitter + p.jitter * r)));
        }
      }),
    );
  });

  it('never waits less for a later attempt with the same luck, so the expected wait only grows', () => {
    fc.assert(
      fc.property(attempt, policy, random, (n, p, r) => {
        expect(backoffDelay(n + 1, p, () => r)).toBeGreaterThanOrEqual(backoffDelay(n, p, () => r));
      }),
    );
  });

  it('keeps the waits it replaced: 500 ms doubling to 30 s, at least half of it', () => {
    const policy = { minMs: 500, maxMs: 30_000 };
    expect([0, 1, 2, 3, 6, 7, 50].map((n) => backoffDelay(n, policy, () => 0))).toEqual([250, 500, 1000, 2000, 15_000, 15_000, 15_000]);
    expect([0, 1, 6].map((n) => backoffDelay(n, policy, () => 0.999_999))).toEqual([500, 1000, 30_000]);
    expect(backoffDelay(-1, policy, () => 0)).toBe(250);
    expect(backoffDelay(3, { minMs: 500, maxMs: 60_000, jitter: 0 }, () => 0.7)).toBe(4000);
  });
});
