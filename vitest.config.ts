import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Files that measure time, memory or a writer's rate run one at a time after the rest: two of them side
 * by side would measure each other. Everything else runs two files at a time; each file has its own
 * database (helpers/db.ts), and since the feed no longer waits for running transactions (issue 9), one
 * file's long transaction does not stall another's feed. The 2-minute soak runs among the rest: it
 * checks what was delivered, not how fast, and it is made to run beside trouble.
 */
const MEASURING = [
  'test/feed/stalled-catch-ups.test.ts',
  'test/feed/bounded.test.ts',
  'test/dashboard/performance.test.ts',
  // These two need their writer to reach a rate (500 writes, 400 writes in a few seconds).
  'test/feed/listener.test.ts',
  'test/feed/resume.test.ts',
];

/**
 * The longest files first, so two workers finish together instead of one running the soak alone at the
 * end (without a cache of past durations, vitest starts the largest files first, and the soak's is small).
 */
const LONGEST = [
  'test/soak.test.ts',
  'test/dashboard/workday.test.ts',
  'test/feed/model.test.ts',
  'test/feed/delivery.test.ts',
  'test/startup.test.ts',
  'test/dashboard/paging.test.ts',
];

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = LONGEST.findIndex((p) => f.moduleId.endsWith(p));
      return i === -1 ? LONGEST.length : i;
    };
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    globalSetup: ['test/helpers/global-setup.ts', 'test/dashboard/global-setup.ts'],
    setupFiles: ['test/helpers/no-leaks.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    sequence: { sequencer: LongestFirst },
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
