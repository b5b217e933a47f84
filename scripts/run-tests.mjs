// `npm test`'s last step: the suite, with the 2-minute soak (test/soak.test.ts) run beside the other
// files instead of after them. The soak spends most of its time waiting on its own faults and
// processes; serial, it alone added two and a half minutes to a suite that must stay under ten.
// The soak's output is held back and printed after the suite's, so the two do not interleave.
// Arguments (file filters) go to the main run only, and then the soak is skipped.
import { spawn } from 'node:child_process';

const SOAK = 'test/soak.test.ts';
const args = process.argv.slice(2);
const vitest = (extra, quiet) =>
  new Promise((resolve) => {
    const child = spawn('npx', ['vitest', 'run', ...extra], { stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    let output = '';
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    child.once('exit', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output }));
  });

if (args.length > 0) {
  process.exit((await vitest(args, false)).code);
}
const [main, soak] = await Promise.all([vitest(['--exclude', SOAK], false), vitest(['--config', 'vitest.soak.config.ts'], true)]);
process.stdout.write(`\n--- ${SOAK} (run beside the suite) ---\n${soak.output}`);
process.exit(main.code || soak.code);
