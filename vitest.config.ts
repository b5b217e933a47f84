import { defineConfig } from 'vitest/config';

/**
 * Files that measure time, memory or throughput on the whole machine, or that load it on purpose, run one
 * at a time after the rest: two of them side by side would measure each other. Everything else runs two
 * files at a time; each file has its own database (helpers/db.ts), and since the feed no longer waits for
 * running transactions (issue 9), one file's long transaction does not stall another's feed.
 */
const MEASURING = [
  'test/soak.test.ts',
  'test/feed/model.test.ts',
  'test/feed/stalled-catch-ups.test.ts',
  'test/feed/bounded.test.ts',
  'test/feed/held-views.test.ts',
  'test/feed/flood.test.ts',
  'test/feed/slow-clients.test.ts',
  // These two need their writer to reach a rate (500 writes, 400 writes in a few seconds).
  'test/feed/listener.test.ts',
  'test/feed/resume.test.ts',
  'test/dashboard/performance.test.ts',
];

export default defineConfig({
  test: {
    globalSetup: ['test/helpers/global-setup.ts', 'test/dashboard/global-setup.ts'],
    setupFiles: ['test/helpers/no-leaks.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'shared', include: ['test/**/*.test.ts'], exclude: MEASURING, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'alone', include: MEASURING, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
