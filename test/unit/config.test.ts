import { describe, expect, it } from 'vitest';
import { ConfigError, ConfigSchema, parseConfig, redactUrl } from '../../src/config.js';

/** Settings are parsed once, strictly, and an invalid one names itself (without leaking secrets). */
describe('parseConfig', () => {
  it('gives every setting its documented default from an empty environment', () => {
    const config = parseConfig({});
    for (const [key, schema] of Object.entries(ConfigSchema.properties as Record<string, { default?: unknown }>)) {
      if (schema.default !== undefined) expect(config[key as keyof typeof config], key).toEqual(schema.default);
    }
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('converts numbers and booleans from text, and treats an empty value as unset', () => {
    const config = parseConfig({ PORT: '8080', DB_MIGRATE: 'false', WORKERS: 'auto', DB_POOL_MAX: '' });
    expect(config.PORT).toBe(8080);
    expect(config.DB_MIGRATE).toBe(false);
    expect(config.WORKERS).toBe('auto');
    expect(config.DB_POOL_MAX).toBe(10);
  });

  it.each([
    ['PORT', '70000'],
    ['PORT', '3.5'],
    ['PORT', '1e3'],
    ['PORT', '0x10'],
    ['WORKERS', '0'],
    ['WORKERS', 'all'],
    ['DB_POOL_MAX', '0'],
    ['LOG_LEVEL', 'loud'],
    ['DB_MIGRATE', 'maybe'],
  ])('refuses %s=%s, naming it', (name, value) => {
    expect(() => parseConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => parseConfig({ [name]: value })).toThrow(new RegExp(`^invalid ${name}=`));
  });

  it('takes an ISO 4217 CURRENCY with cents, and refuses one it would misformat', () => {
    expect(parseConfig({}).CURRENCY).toBe('USD');
    expect(parseConfig({ CURRENCY: 'EUR' }).CURRENCY).toBe('EUR');
    expect(() => parseConfig({ CURRENCY: 'eur' })).toThrow(/^invalid CURRENCY="eur"/);
    expect(() => parseConfig({ CURRENCY: 'XYZ' })).toThrow(/^invalid CURRENCY="XYZ": not an ISO 4217/);
    expect(() => parseConfig({ CURRENCY: 'JPY' })).toThrow(/^invalid CURRENCY="JPY": has 0 minor digits/);
    expect(() => parseConfig({ CURRENCY: 'KWD' })).toThrow(/^invalid CURRENCY="KWD": has 3 minor digits/);
  });

  it('never repeats a connection string in its error (it may hold a password)', () => {
    expect(() => parseConfig({ DATABASE_URL: 'mysql://u:secret@h/db' })).toThrow(/invalid DATABASE_URL=\(hidden\)/);
    try {
      parseConfig({ DATABASE_URL: 'mysql://u:secret@h/db' });
    } catch (err) {
      expect((err as Error).message).not.toContain('secret');
    }
  });

  it('checks settings against each other', () => {
    expect(() => parseConfig({ LISTENER_BACKOFF_MIN_MS: '5000', LISTENER_BACKOFF_MAX_MS: '1000' })).toThrow(/LISTENER_BACKOFF_MAX_MS/);
    expect(() => parseConfig({ HTTP_HEADERS_TIMEOUT_MS: '60000', HTTP_REQUEST_TIMEOUT_MS: '30000' })).toThrow(/HTTP_HEADERS_TIMEOUT_MS/);
    expect(() => parseConfig({ DB_LOCK_TIMEOUT_MS: '5000', DB_QUERY_TIMEOUT_MS: '5000' })).toThrow(
      /^invalid DB_LOCK_TIMEOUT_MS=5000: must be below DB_QUERY_TIMEOUT_MS \(5000\)/,
    );
  });

  it('waits for a held order 5 s by default, or half of a query timeout below 10 s, never as long as the query', () => {
    expect(parseConfig({}).DB_LOCK_TIMEOUT_MS).toBe(5000);
    expect(parseConfig({ DB_QUERY_TIMEOUT_MS: '4000' }).DB_LOCK_TIMEOUT_MS).toBe(2000);
    expect(parseConfig({ DB_QUERY_TIMEOUT_MS: '60000' }).DB_LOCK_TIMEOUT_MS).toBe(5000);
    expect(parseConfig({ DB_QUERY_TIMEOUT_MS: '60000', DB_LOCK_TIMEOUT_MS: '30000' }).DB_LOCK_TIMEOUT_MS).toBe(30000);
    expect(parseConfig({ DB_QUERY_TIMEOUT_MS: '1000', DB_LOCK_TIMEOUT_MS: '0' }).DB_LOCK_TIMEOUT_MS).toBe(0);
  });

  it('runs 2 CSV exports at once by default, at most half the pool, and never the whole pool', () => {
    expect(parseConfig({}).CSV_EXPORTS_MAX).toBe(2);
    expect(parseConfig({ DB_POOL_MAX: '3' }).CSV_EXPORTS_MAX).toBe(1);
    // A pool of one has no connection to spare: no exports (503 exports-off).
    expect(parseConfig({ DB_POOL_MAX: '1' }).CSV_EXPORTS_MAX).toBe(0);
    expect(parseConfig({ DB_POOL_MAX: '40', CSV_EXPORTS_MAX: '8' }).CSV_EXPORTS_MAX).toBe(8);
    expect(() => parseConfig({ DB_POOL_MAX: '4', CSV_EXPORTS_MAX: '4' })).toThrow(
      /^invalid CSV_EXPORTS_MAX=4: must be below DB_POOL_MAX \(4\)/,
    );
    expect(() => parseConfig({ DB_POOL_MAX: '1', CSV_EXPORTS_MAX: '1' })).toThrow(/^invalid CSV_EXPORTS_MAX=1/);
  });

  it('redacts the password of a connection string for logs', () => {
    expect(redactUrl('postgresql://app:s3cret@db.example:5432/orders')).toBe('postgresql://app:***@db.example:5432/orders');
    expect(redactUrl('not a url')).toBe('(unparseable connection string)');
  });
});
