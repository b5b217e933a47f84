import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The boundaries the layout promises, checked on the import graph: the dashboard knows the server only
 * through the shared contract (src/contract/), the contract needs nothing else (so it cannot pull server
 * internals into the bundle), and the feed knows nothing of the orders API.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|tsx)$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Every relative module a file imports or re-exports (static or dynamic), resolved and relative to the root. */
function relativeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1] as string);
  return specifiers.map((s) => path.relative(ROOT, path.resolve(path.dirname(file), s)));
}

function crossings(dir: string, allowed: (target: string) => boolean): string[] {
  return sources(path.join(ROOT, dir)).flatMap((file) =>
    relativeImports(file)
      .filter((target) => !allowed(target))
      .map((target) => `${path.relative(ROOT, file)} → ${target}`),
  );
}

describe('module boundaries', () => {
  it('web/ imports nothing from the server but src/contract/', () => {
    expect(crossings('web', (t) => t.startsWith('web/') || t.startsWith('src/contract/'))).toEqual([]);
  });

  it('src/contract/ imports only itself', () => {
    expect(crossings('src/contract', (t) => t.startsWith('src/contract/'))).toEqual([]);
  });

  it('src/feed/ imports nothing from src/orders/', () => {
    expect(crossings('src/feed', (t) => !t.startsWith('src/orders/'))).toEqual([]);
  });

  it('finds the imports it checks (a check that sees none cannot fail)', () => {
    expect(relativeImports(path.join(ROOT, 'web/src/feed-client.ts'))).toContain('src/contract/protocol.ts');
  });
});
