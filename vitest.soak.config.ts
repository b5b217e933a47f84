import { defineConfig } from 'vitest/config';

/**
 * The 2-minute soak alone (scripts/run-tests.mjs runs it beside the rest of the suite): it brings its
 * own PostgreSQL, instances and nginx, so it needs none of the suite's global setup (whose dashboard
 * build would race the main run's).
 */
export default defineConfig({
  test: {
    include: ['test/soak.test.ts'],
    setupFiles: ['test/helpers/no-leaks.ts'],
    pool: 'forks',
    maxWorkers: 1,
    reporters: ['default'],
  },
});
