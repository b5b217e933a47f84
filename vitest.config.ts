import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts', 'test/dashboard/global-setup.ts'],
    setupFiles: ['test/helpers/no-leaks.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One file at a time. The files share one PostgreSQL cluster, and its snapshot horizon is cluster-wide:
    // a test that deliberately holds a transaction open stalls every other file's feed meanwhile, and the
    // browser tests need the CPU their timings assume. Serial, the suite still runs in a few minutes.
    maxWorkers: 1,
    reporters: ['default'],
  },
});
