import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { ConfigSchema } from '../src/config.js';

const root = path.resolve(import.meta.dirname, '..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

it('documents every setting in the README configuration table', () => {
  const missing = Object.keys(ConfigSchema.properties).filter((key) => !readme.includes(`| \`${key}\` |`));
  expect(missing).toEqual([]);
});

it('shows the two commands a new user runs', () => {
  expect(readme).toContain('npm install && npm start');
  expect(readme).toMatch(/^npm test\b/m);
  expect(readFileSync(path.join(root, '.ci/run'), 'utf8')).toMatch(/^npm test$/m);
});
