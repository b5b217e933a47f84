import { describe, expect, it } from 'vitest';
import { classifyPgError, sqlState } from '../../src/db/pg-errors.js';

/** The SQLSTATE table the API's answers rest on (503 vs 409 vs 400), without a database. */
describe('classifyPgError', () => {
  it.each([
    ['40001', 'serialization'],
    ['40P01', 'serialization'],
    ['55P03', 'locked'],
    ['23505', 'unique_violation'],
    ['23514', 'check_violation'],
    ['23502', 'not_null_violation'],
    ['22P02', 'invalid_input'],
    ['22003', 'invalid_input'],
    ['08006', 'unavailable'],
    ['53300', 'unavailable'],
    ['57P01', 'unavailable'],
    ['57P03', 'unavailable'],
    ['58030', 'unavailable'],
    ['42P01', 'other'],
    ['P0001', 'other'],
  ])('SQLSTATE %s is %s', (code, kind) => {
    expect(classifyPgError(Object.assign(new Error('x'), { code }))).toBe(kind);
  });

  it('treats an error without a SQLSTATE (socket, timeout, driver) as the database being unavailable', () => {
    for (const err of [
      new Error('Connection terminated unexpectedly'),
      Object.assign(new Error('x'), { code: 'ECONNREFUSED' }),
      null,
      undefined,
      'text',
    ]) {
      expect(classifyPgError(err)).toBe('unavailable');
    }
  });

  it('never reads a SQLSTATE out of something that is not one', () => {
    expect(sqlState({ code: 'ECONNRESET' })).toBeUndefined();
    expect(sqlState({ code: 23505 })).toBeUndefined();
    expect(sqlState({ code: '2350' })).toBeUndefined();
    expect(sqlState({ code: '23505' })).toBe('23505');
  });
});
