import { createHmac, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { contains, cursor, formatCursor, formatSnapshot, has, parseCursor, snapshot } from '../../src/feed/cursor.js';
import { extend, MAX_OPEN_SUMMARIES, parseSummary, type Summary } from '../../src/feed/summary.js';

/**
 * Summaries (src/feed/summary.ts) without a database: what parses, and what extending the head may do.
 * test/feed/summaries.test.ts drives the real thing.
 */
const key = randomBytes(32);
const sign = (body: string, k = key) => `1 ${createHmac('sha256', k).update(body, 'utf8').digest('hex')} ${body}`;
const change = (id: number) => JSON.stringify({ op: 'insert', order: { id, version: 1 }, old: null, at: '2026-12-01T00:00:00.000000Z' });

describe('parseSummary', () => {
  const body = `812 810:812:810\n41 1764547200000.5 ${change(7)}\n42 1764547200001 ${change(8)}`;

  it('reads a signed summary exactly, JSON untouched', () => {
    const s = parseSummary(sign(body), key) as Summary;
    expect(s.xid).toBe(812);
    expect(formatSnapshot(s.snapshot)).toBe('810:812:810');
    expect(s.changes.map((c) => [c.xid, c.seq, c.atMs, c.json])).toEqual([
      [812, 41, 1764547200000.5, change(7)],
      [812, 42, 1764547200001, change(8)],
    ]);
  });

  it('refuses the doorbell, another key, and any change to a signed payload', () => {
    expect(parseSummary('', key)).toBeUndefined();
    expect(parseSummary(sign(body, randomBytes(32)), key)).toBeUndefined();
    const signed = sign(body);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: signed.length - 1 }), fc.integer({ min: 1, max: 0xffff }), (at, code) => {
        const tampered = signed.slice(0, at) + String.fromCharCode(signed.charCodeAt(at) ^ code) + signed.slice(at + 1);
        expect(parseSummary(tampered, key)).toBeUndefined();
      }),
    );
  });

  it('never throws, and parses nothing unsigned, whatever the payload (even well signed nonsense)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.boolean(), (text, signIt) => {
        const s = parseSummary(signIt ? sign(text) : text, key);
        if (!signIt) expect(s).toBeUndefined();
        if (s) expect(s.changes.length).toBeGreaterThan(0);
      }),
    );
  });
});

describe('extend', () => {
  const summary = (xid: number, xmax: number, xip: number[], seqs: number[]): Summary =>
    parseSummary(
      sign([`${xid} ${formatSnapshot(snapshot(xmax, xip))}`, ...seqs.map((q) => `${q} 0 ${change(q)}`)].join('\n')),
      key,
    ) as Summary;

  it('takes a transaction whose snapshot the head has, as an open partial; a read is asked for otherwise', () => {
    const head = cursor(snapshot(100, [97]));
    // X = 100 saw 97 still running: the head lacks only what X lacks.
    const step = extend(head, summary(100, 100, [97], [5, 6]));
    expect(step.kind).toBe('take');
    if (step.kind !== 'take') return;
    expect(step.changes.map((c) => c.seq)).toEqual([5, 6]);
    expect(contains(step.to, head)).toBe(true);
    expect(has(step.to, 100, 6)).toBe(true);
    expect(has(step.to, 100, 7)).toBe(false);
    expect(has(step.to, 97, 1)).toBe(false);
    // X = 101 saw 100 committed and 99 too, which the head never had: read first.
    expect(extend(head, summary(101, 101, [97], [8])).kind).toBe('read');
    // Already had (a read came first).
    expect(extend(cursor(snapshot(102, [])), summary(100, 100, [], [5])).kind).toBe('had');
  });

  it('keeps summarised transactions open until a read, and at most MAX_OPEN_SUMMARIES of them', () => {
    // Even when a later transaction saw an open one committed: only a read can show it has no more changes.
    let head = cursor(snapshot(100, []));
    const steps: string[] = [];
    for (let x = 100; x < 110; x++) {
      const step = extend(head, summary(x, x, [], [x * 10]));
      steps.push(step.kind);
      if (step.kind === 'take') head = step.to;
    }
    expect(steps).toEqual([...Array(MAX_OPEN_SUMMARIES).fill('take'), 'read', 'read']);
    expect(head.partials.map((p) => p.xid)).toEqual([100, 101, 102, 103, 104, 105, 106, 107]);
    for (let x = 100; x < 108; x++) {
      expect(has(head, x, x * 10)).toBe(true);
      expect(has(head, x, x * 10 + 1)).toBe(false);
    }
    expect(parseCursor(formatCursor(head))).toEqual(head);
  });

  it('a later summary of the same transaction adds only what is new', () => {
    const head = cursor(snapshot(100, []));
    const first = extend(head, summary(100, 100, [], [1, 2]));
    if (first.kind !== 'take') throw new Error(first.kind);
    const second = extend(first.to, summary(100, 100, [], [1, 2, 3]));
    expect(second.kind).toBe('take');
    if (second.kind === 'take') expect(second.changes.map((c) => c.seq)).toEqual([3]);
  });
});
