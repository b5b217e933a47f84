import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { FAULT_KINDS, SERVER_FAULTS } from '../soak/faults.js';

/**
 * `npm run soak` for 90 seconds with a fixed seed, as a child process with its own PostgreSQL, two
 * instances behind nginx and a steady third: every kind of fault occurs at least once (the plan guarantees it and the run
 * fails otherwise), and the run must end with exit 0 and a report with nothing lost, duplicated,
 * interleaved or unexpected, every view equal to the table, and no 5xx but 503 inside a fault.
 */
const root = path.resolve(import.meta.dirname, '..');
const SEED = 5;

it(`soaks for 90 seconds under every kind of fault (seed ${SEED}) and finds nothing wrong`, { timeout: 480_000 }, async () => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'soak/run.ts', '--minutes', '1.5', '--seed', String(SEED), '--clients', '100'],
    {
      cwd: root,
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 460_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(killer);
  const summaryText = output.slice(output.indexOf('=== soak summary'));
  expect(code, summaryText || output.slice(-3000)).toBe(0);

  const file = /report: (\S+\.json)/.exec(output)?.[1];
  expect(file, 'the report path').toBeDefined();
  const report = JSON.parse(await readFile(path.resolve(root, file as string), 'utf8'));
  const { summary } = report;
  expect(summary.violations).toBe(0);
  expect(summary.stream).toEqual({ lost: 0, duplicated: 0, interleaved: 0, unknown: 0, viewMismatches: 0 });
  // On DATABASE_URL's server (as the rest of the suite runs) the soak cannot stop or crash PostgreSQL.
  const kinds = FAULT_KINDS.filter((k) => !process.env.DATABASE_URL || !SERVER_FAULTS.has(k));
  expect(Object.keys(summary.faultsByKind).sort()).toEqual([...kinds].sort());
  expect(Object.keys(summary.http5xx).filter((status) => status !== '503')).toEqual([]);
  expect(summary.writes.restAcknowledged).toBeGreaterThan(500);
  expect(summary.changesDelivered).toBeGreaterThan(10_000);
  expect(summary.clients.total).toBeGreaterThanOrEqual(100);
  // The steady instance (never faulted, a quarter of the clients) is one process from start to end: its
  // memory series is the one the slope is judged on in long runs.
  const steadyPids = new Set(
    report.samples.flatMap((s: { instances: { name: string; pid: number }[] }) =>
      s.instances.filter((i) => i.name === 'steady').map((i) => i.pid),
    ),
  );
  expect(steadyPids.size).toBe(1);
  expect(summary.slopes.filter((s: { series: string }) => s.series.startsWith('steady '))).toHaveLength(1);
  // Two faults at once at least once.
  expect(report.faults.some((f: { overlapsWith?: string }) => f.overlapsWith)).toBe(true);
});
