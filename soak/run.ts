import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { checkAcks, checkClients, checkHttp, checkResources, commitToClient, type Thresholds, type Violation } from './checker.js';
import { Population } from './clients.js';
import { FAULT_KINDS, FaultRunner, plan, SERVER_FAULTS } from './faults.js';
import { fork, seeded, sleep } from './random.js';
import { connections, Sampler } from './sampler.js';
import { Topology } from './topology.js';
import { Workload } from './workload.js';

/**
 * `npm run soak -- --minutes N [--seed S] [--clients C]`: a bounded, seeded soak under faults, on
 * loopback. Starts the topology (topology.ts), the writes (workload.ts), the WebSocket clients
 * (clients.ts) and the faults (faults.ts) for N minutes while sampling resources (sampler.ts); then stops
 * the writes, lets the faults finish, waits for every client to catch up and judges (checker.ts). Writes
 * a JSON report to soak/results/ and a one-screen summary; exits 1 on any violation.
 *
 * With DATABASE_URL set it runs on that server, in a database of its own, without the faults that need
 * to own the server (topology.ts).
 */
const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '2' },
    seed: { type: 'string', default: '1' },
    clients: { type: 'string' },
    'keep-temp': { type: 'boolean', default: false },
  },
});
const minutes = Number(values.minutes);
const seed = Number(values.seed);
if (!(minutes > 0) || !Number.isInteger(seed)) {
  console.error('usage: npm run soak -- --minutes N [--seed S] [--clients C]');
  process.exit(2);
}
const random = seeded(seed);
const durationMs = Math.round(minutes * 60_000);
const clientCount = values.clients ? Number(values.clients) : 50 + Math.floor(fork(random)() * 151);
const POOL_MAX = 10;

// A client's failed automatic resync rejects a promise nobody awaits; the supervisor handles it.
process.on('unhandledRejection', () => undefined);

const say = (text: string) => process.stdout.write(`${text}\n`);

async function main(): Promise<number> {
  const topology = new Topology(process.env.DATABASE_URL || undefined);
  const kinds = FAULT_KINDS.filter((k) => topology.ownsServer || !SERVER_FAULTS.has(k));
  const skipped = FAULT_KINDS.filter((k) => !kinds.includes(k));
  // Interrupted: stop the instances, nginx and PostgreSQL rather than leave them running.
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      say(`soak: ${signal}: stopping everything (temp folder kept: ${topology.tempDir})`);
      void topology.stop(true).finally(() => process.exit(130));
    });
  say(
    `soak: ${minutes} min, seed ${seed}, ${clientCount} clients; starting ${topology.ownsServer ? 'PostgreSQL' : "a database on DATABASE_URL's server"}, proxy, 2 instances behind nginx and a steady one...`,
  );
  await topology.start();
  if (!topology.ownsServer)
    say(
      `soak: on DATABASE_URL's server, database ${topology.externalDatabase}; skipping the faults that need to own the server: ${skipped.join(', ')}`,
    );
  const started = Date.now();
  if (topology.nginxMissing)
    say('soak: nginx not found (NGINX_PATH or /usr/sbin/nginx): clients and writers talk to the instances directly');
  const sampler = new Sampler(topology, started, Math.max(2000, Math.min(10_000, durationMs / 40)));
  sampler.start();
  const workload = new Workload({
    entry: (r) => topology.pickEntry(r),
    admin: topology.admin,
    random: fork(random),
    started,
    restWorkers: 4,
    sqlWorkers: 2,
    restPauseMs: 200,
    sqlPauseMs: 300,
  });
  const population = new Population((r) => topology.pickEntry(r), fork(random), started);
  await population.open(Math.floor(clientCount * 0.8));
  workload.start();
  const faults = new FaultRunner(topology, workload, population, fork(random), started, Math.min(60_000, Math.round(durationMs * 0.125)));
  const schedule = plan(fork(random), Math.round(durationMs * 0.05), Math.round(durationMs * 0.75), kinds);
  faults.start(schedule);
  say(
    `soak: ${schedule.reduce((n, s) => n + s.kinds.length, 0)} faults planned: ${schedule.map((s) => `${s.kinds.join('+')}@${Math.round(s.at / 1000)}s`).join(', ')}`,
  );

  // Late joiners over the first two thirds.
  const joinRandom = fork(random);
  const joining = (async () => {
    for (let i = Math.floor(clientCount * 0.8); i < clientCount; i++) {
      await sleep(joinRandom() * ((durationMs * 0.66) / Math.max(1, clientCount * 0.2)));
      if (Date.now() - started > durationMs) break;
      await population.add(fork(joinRandom)).catch(() => undefined);
    }
  })();
  const progress = setInterval(() => {
    const last = faults.log[faults.log.length - 1];
    say(
      `  ${Math.round((Date.now() - started) / 1000)} s: ${workload.acks.length} REST acks, ${workload.sqlCommits} SQL commits, ${workload.liveCount} orders, ` +
        `${population.active().filter((c) => c.client.connected).length}/${population.active().length} clients connected, last fault ${last ? `${last.kind}@${Math.round(last.at / 1000)}s` : '-'}`,
    );
  }, 15_000);

  await sleep(Math.max(0, started + durationMs - Date.now()));
  say('soak: time is up: stopping writes, finishing faults');
  await workload.stop();
  await faults.finish();
  await joining;
  // An instance that never comes back is a finding, not a reason to end without a verdict.
  const notReady = await topology.allReady(90_000).then(
    () => undefined,
    (err: Error) => err.message,
  );
  say('soak: waiting for every client to catch up');
  await population.quiesce();
  clearInterval(progress);

  const {
    reports,
    violations: clientViolations,
    delivered,
  } = await checkClients(topology.admin, population.clients, faults.log, started, 90_000);
  const ackViolations = await checkAcks(topology.admin, workload.acks, faults.log);
  const http = checkHttp(workload.httpErrors, faults.log);
  const latency = await commitToClient(topology.admin, population.clients, faults.log, started);
  await sampler.sample();
  await sampler.stop();
  const endConnections = await connections(topology.admin);
  const secondHalf = Math.round(durationMs / 2);
  const slopes = sampler.slopes(secondHalf);
  const thresholds: Thresholds = { rssMiBPerMin: 1, fdsPerMin: 2, minSpanSec: 300, poolMax: POOL_MAX, instances: topology.all.length };
  const resourceViolations = checkResources(slopes, endConnections, thresholds);
  const crashViolations: Violation[] = topology.all.flatMap((i) =>
    i.unexpectedExits.map((e) => ({
      kind: 'instance-exit',
      detail: `instance ${i.name} exited on its own (code ${e.code}, signal ${e.signal})`,
      at: e.at,
    })),
  );
  if (notReady) crashViolations.push({ kind: 'not-ready', detail: `at the end: ${notReady}` });
  const violations = [...clientViolations, ...ackViolations, ...http.violations, ...resourceViolations, ...crashViolations];

  // Time to recover: from the fault being lifted to a probe written after it reaching every steady
  // client (faults.ts); time to ready: to both instances answering /readyz.
  const faultsByKind: Record<
    string,
    { count: number; overlapped: number; longestRecoverMs: number; longestReadyMs: number; errors: number }
  > = {};
  for (const f of faults.log) {
    const k = faultsByKind[f.kind] ?? { count: 0, overlapped: 0, longestRecoverMs: 0, longestReadyMs: 0, errors: 0 };
    faultsByKind[f.kind] = k;
    k.count++;
    if (f.overlapsWith) k.overlapped++;
    if (f.error) k.errors++;
    if (f.recoveredAt !== undefined && f.endedAt !== undefined)
      k.longestRecoverMs = Math.max(k.longestRecoverMs, f.recoveredAt - f.endedAt);
    if (f.readyAt !== undefined && f.endedAt !== undefined) k.longestReadyMs = Math.max(k.longestReadyMs, f.readyAt - f.endedAt);
  }
  const missingKinds = kinds.filter((k) => !faultsByKind[k]);
  if (missingKinds.length > 0) violations.push({ kind: 'faults', detail: `never injected: ${missingKinds.join(', ')}` });
  const sum = (f: (r: (typeof reports)[0]) => number) => reports.reduce((n, r) => n + f(r), 0);
  const summary = {
    seed,
    minutes,
    durationSec: Math.round((Date.now() - started) / 1000),
    nginx: !topology.nginxMissing,
    database: topology.ownsServer ? 'embedded (owned)' : `DATABASE_URL's server, database ${topology.externalDatabase}`,
    skippedFaults: skipped,
    clients: {
      total: population.clients.length,
      left: population.clients.filter((c) => c.leftAt !== undefined).length,
      reconnects: population.clients.reduce((n, c) => n + c.reconnects, 0),
      resets: population.clients.reduce((n, c) => n + c.client.resets.length, 0),
      // An automatic resync that failed (the supervisor then brings the client up); by reason.
      resyncFailures: population.clients
        .flatMap((c) => c.client.resyncFailures)
        .reduce<Record<string, number>>((m, r) => {
          m[r] = (m[r] ?? 0) + 1;
          return m;
        }, {}),
    },
    writes: {
      restAcknowledged: workload.acks.length,
      restAttempts: workload.restAttempts,
      restAbandoned: workload.abandoned,
      restLockedRetries: workload.lockedRetries,
      restRejected: Object.fromEntries(workload.rejected),
      sqlCommits: workload.sqlCommits,
      sqlRollbacks: workload.sqlRollbacks,
      sqlFailures: workload.sqlFailures,
    },
    changesDelivered: delivered,
    changeLogRows: sampler.samples[sampler.samples.length - 1]?.changeLogRows,
    faultsByKind,
    stream: {
      lost: sum((r) => r.lost.length),
      duplicated: sum((r) => r.duplicated.length),
      interleaved: sum((r) => r.outOfOrder.length),
      unknown: sum((r) => r.unknown.length),
      viewMismatches: sum((r) => r.viewMismatches.length),
    },
    http5xx: http.byStatus,
    commitToClientOutsideFaults: latency,
    eventLoopLagP99MsMax: Math.max(0, ...sampler.samples.flatMap((s) => s.instances.map((i) => i.eventLoopLagP99Ms ?? 0))),
    // The soak's own process (clients, writers, checker): a stall there is the harness's, not the service's.
    harness: {
      maxEventLoopDelayMs: Math.max(0, ...sampler.samples.map((s) => s.harness.maxDelayMs)),
      maxHeapMiB: Math.max(0, ...sampler.samples.map((s) => s.harness.heapMiB)),
    },
    heapUsedMiBAtEnd: Object.fromEntries(
      (sampler.samples[sampler.samples.length - 1]?.instances ?? []).map((i) => [`${i.name} pid ${i.pid}`, i.heapUsedMiB]),
    ),
    slopes,
    thresholds,
    endConnections,
    violations: violations.length,
  };
  const report = {
    summary,
    violations,
    faults: faults.log,
    schedule,
    samples: sampler.samples,
    httpErrors: workload.httpErrors,
    reports: reports.filter(
      (r) => r.lost.length + r.duplicated.length + r.outOfOrder.length + r.unknown.length + r.viewMismatches.length > 0,
    ),
  };
  const dir = path.join(import.meta.dirname, 'results');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-seed${seed}.json`);
  await writeFile(file, JSON.stringify(report, null, 2));

  say('');
  say(`=== soak summary (seed ${seed}, ${summary.durationSec} s, ${summary.nginx ? 'behind nginx' : 'no nginx'}, ${summary.database}) ===`);
  if (skipped.length > 0) say(`faults skipped (they need to own the server): ${skipped.join(', ')}`);
  say(
    `writes acknowledged (REST): ${summary.writes.restAcknowledged} (${summary.writes.restAttempts} attempts, ${summary.writes.restLockedRetries} of them answered 409 locked, ${summary.writes.restAbandoned} abandoned); SQL transactions: ${summary.writes.sqlCommits} committed, ${summary.writes.sqlRollbacks} rolled back, ${summary.writes.sqlFailures} failed`,
  );
  say(
    `changes delivered: ${delivered} to ${summary.clients.total} clients (${summary.clients.left} left early, ${summary.clients.reconnects} reconnects, ${summary.clients.resets} resets); change log ${summary.changeLogRows} rows`,
  );
  say(
    `faults: ${faults.log.length} (${faults.log.filter((f) => f.overlapsWith).length} of them overlapping another); longest time to recover, from the fault lifted to a probe reaching every steady client:`,
  );
  for (const [k, v] of Object.entries(faultsByKind))
    say(
      `  ${k.padEnd(21)} ×${String(v.count).padEnd(3)} recover ≤ ${(v.longestRecoverMs / 1000).toFixed(1)} s (instances ready ≤ ${(v.longestReadyMs / 1000).toFixed(1)} s)${v.overlapped ? `, ${v.overlapped} overlapping` : ''}${v.errors ? `, ${v.errors} with errors` : ''}`,
    );
  say(
    `commit → client outside fault windows (steady clients, REST writes): p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms, max ${latency.maxMs} ms over ${latency.samples} deliveries`,
  );
  say(
    `stream: lost ${summary.stream.lost}, duplicated ${summary.stream.duplicated}, interleaved ${summary.stream.interleaved}, unknown ${summary.stream.unknown}, view mismatches ${summary.stream.viewMismatches}`,
  );
  say(`5xx seen: ${JSON.stringify(http.byStatus)} (503 allowed inside database and instance faults, nothing else)`);
  for (const s of slopes)
    say(
      `  ${s.series}: RSS ${s.rssMiBPerMin.toFixed(2)} MiB/min, FDs ${s.fdsPerMin.toFixed(2)}/min (${s.otherFdsPerMin.toFixed(2)}/min besides WebSocket clients) over ${s.spanSec} s${s.spanSec < thresholds.minSpanSec ? ' (too short to judge)' : ''}`,
    );
  say(
    `resource limits (second half, series ≥ ${thresholds.minSpanSec} s): RSS > ${thresholds.rssMiBPerMin} MiB/min or FDs besides WebSocket clients > ${thresholds.fdsPerMin}/min fails`,
  );
  say(
    `event loop lag p99, worst sample: ${summary.eventLoopLagP99MsMax} ms; heap used at the end: ${JSON.stringify(summary.heapUsedMiBAtEnd)} MiB`,
  );
  say(
    `the soak's own process: longest event-loop stall ${summary.harness.maxEventLoopDelayMs} ms, heap up to ${summary.harness.maxHeapMiB} MiB`,
  );
  say(`connections at the end: ${JSON.stringify(endConnections)}`);
  say(`violations: ${violations.length}`);
  for (const v of violations.slice(0, 15))
    say(
      `  ✗ ${v.kind}${v.client ? ` client ${v.client}` : ''}${v.orderId !== undefined ? ` order ${v.orderId}` : ''}: ${v.detail}${v.at !== undefined ? ` at ${(v.at / 1000).toFixed(1)} s` : ''}${v.precedingFault ? `; after ${v.precedingFault}` : ''}`,
    );
  if (violations.length > 15) say(`  ... ${violations.length - 15} more in the report`);
  say(
    `report: ${path.relative(process.cwd(), file)}; instance logs: ${topology.logFile}${values['keep-temp'] || violations.length ? '' : ' (removed)'}` +
      (topology.externalDatabase
        ? `; database ${topology.externalDatabase} ${values['keep-temp'] || violations.length ? 'kept' : 'dropped'}`
        : ''),
  );

  await population.close();
  await topology.stop(values['keep-temp'] || violations.length > 0);
  return violations.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('soak failed to run:', err);
    process.exit(2);
  },
);
