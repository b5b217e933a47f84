import type pg from 'pg';
import type { Population } from './clients.js';
import { between, pick, type Random, sleep } from './random.js';
import type { Topology } from './topology.js';
import type { Workload } from './workload.js';

/**
 * Faults at seeded random times, each logged with when it started, when it was lifted (`endedAt`), when
 * both instances answered /readyz again (`readyAt`) and when the system had recovered (`recoveredAt`).
 *
 * Time to recover, as the summary reports it: from the moment a fault is lifted (PostgreSQL is up again,
 * the proxy forwards on time, the killed instance has been started again, the transaction committed,
 * the paused clients read again) until a probe order, inserted straight into PostgreSQL after that
 * moment, has reached every steady client still in the run. So it covers the service noticing, the
 * listener reconnecting, clients reconnecting through nginx and catching up: what a user waits for.
 *
 * Sometimes two faults run at once (one from each of two groups: database side, instances, load and
 * clients): a slot of the plan can hold two kinds.
 */
export const FAULT_KINDS = [
  'terminate-listener',
  'terminate-pool',
  'pg-restart-fast',
  'pg-restart-immediate',
  'proxy-blackhole',
  'proxy-delay',
  'instance-kill',
  'rolling-restart',
  'long-transaction',
  'write-burst',
  'client-pause',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

const GROUP: Record<FaultKind, 'database' | 'instances' | 'load'> = {
  'terminate-listener': 'database',
  'terminate-pool': 'database',
  'pg-restart-fast': 'database',
  'pg-restart-immediate': 'database',
  'proxy-blackhole': 'database',
  'proxy-delay': 'database',
  'instance-kill': 'instances',
  'rolling-restart': 'instances',
  'long-transaction': 'load',
  'write-burst': 'load',
  'client-pause': 'load',
};

/** Faults during which the service may answer 503 (the database is unreachable or too slow for it for a while). */
export const DATABASE_FAULTS: ReadonlySet<FaultKind> = new Set([
  'terminate-listener',
  'terminate-pool',
  'pg-restart-fast',
  'pg-restart-immediate',
  'proxy-blackhole',
  'proxy-delay',
]);
/** Faults that need to own the PostgreSQL server (stop it, crash it): skipped on `DATABASE_URL`'s server. */
export const SERVER_FAULTS: ReadonlySet<FaultKind> = new Set(['pg-restart-fast', 'pg-restart-immediate']);
/** Faults during which an instance is going away: a WebSocket upgrade may be refused with 503 shutting-down. */
export const INSTANCE_FAULTS: ReadonlySet<FaultKind> = new Set(['instance-kill', 'rolling-restart']);

export interface FaultRecord {
  kind: FaultKind;
  /** ms since the soak started. */
  at: number;
  /** When the fault was lifted. */
  endedAt?: number;
  /** Both instances answered /readyz again. */
  readyAt?: number;
  /** A probe written after the fault was lifted had reached every steady client (see above). */
  recoveredAt?: number;
  /** The other fault of its slot, when two ran at once. */
  overlapsWith?: FaultKind;
  detail: string;
  error?: string;
}

export interface PlannedFault {
  kinds: FaultKind[];
  at: number;
}

function compatible(a: FaultKind, b: FaultKind): boolean {
  if (GROUP[a] === GROUP[b]) return false;
  // A held-open transaction would die with PostgreSQL, and then never commit: keep it meaningful.
  const pair = [a, b];
  return !(pair.includes('long-transaction') && pair.some((k) => k.startsWith('pg-restart')));
}

/**
 * The schedule: slots every ~9 s from `from` to `until`. Every kind (of `kinds`) occurs at least once:
 * when there are fewer slots than kinds, some slots hold two kinds at once; otherwise about one slot in
 * five holds two.
 */
export function plan(random: Random, from: number, until: number, kinds: readonly FaultKind[] = FAULT_KINDS): PlannedFault[] {
  const gap = 9000;
  const slots = Math.max(1, Math.floor((until - from) / gap));
  const queue: FaultKind[] = [...kinds].sort(() => random() - 0.5);
  const out: PlannedFault[] = [];
  for (let i = 0; i < slots; i++) {
    const at = Math.round(from + i * gap + between(random, 0, gap * 0.3));
    const first = queue.shift() ?? pick(random, kinds);
    const slot: FaultKind[] = [first];
    const slotsLeft = slots - i - 1;
    const mustDouble = queue.length > slotsLeft;
    if (mustDouble || random() < 0.2) {
      const fromQueue = queue.findIndex((k) => compatible(first, k));
      if (mustDouble && fromQueue >= 0) slot.push(queue.splice(fromQueue, 1)[0] as FaultKind);
      else {
        const options = kinds.filter((k) => compatible(first, k));
        if (options.length > 0) slot.push(pick(random, options));
      }
    }
    out.push({ kinds: slot, at });
  }
  // Whatever did not fit (very short runs) goes into one last slot, one after another.
  for (const kind of queue) out.push({ kinds: [kind], at: until });
  return out;
}

export class FaultRunner {
  readonly log: FaultRecord[] = [];
  private background: Promise<void>[] = [];
  private done: Promise<void> | undefined;
  private probes = 0;
  private finishing = false;
  private holding: Promise<void> = Promise.resolve();

  constructor(
    private readonly topology: Topology,
    private readonly workload: Workload,
    private readonly population: Population,
    private readonly random: Random,
    private readonly started: number,
    /** How long the held-open transaction lasts. */
    private readonly longTxMs: number,
  ) {}

  private now(): number {
    return Date.now() - this.started;
  }

  /** Runs the schedule, slot after slot (a late slot starts as soon as the previous one is over). */
  start(schedule: PlannedFault[]): void {
    this.done = (async () => {
      for (const slot of schedule) {
        // Once the run's time is up, only slots with a kind not injected yet still run (at once).
        if (this.finishing && slot.kinds.every((k) => this.log.some((f) => f.kind === k))) continue;
        const wait = this.started + slot.at - Date.now();
        if (wait > 0 && !this.finishing) await sleep(wait);
        const [a, b] = slot.kinds;
        await Promise.all(
          slot.kinds.map(async (kind, i) => {
            // The second of a pair starts a little later, so the two overlap without starting together.
            if (i > 0) await sleep(between(this.random, 300, 2500));
            await this.run(kind, slot.kinds.length > 1 ? (kind === a ? b : a) : undefined);
          }),
        );
      }
    })();
  }

  /**
   * Time is up: the slots left are skipped, except those with a kind that has not occurred yet (this is
   * what guarantees every kind once); waits for them and for the background ones (the long
   * transaction, a burst).
   */
  async finish(): Promise<void> {
    this.finishing = true;
    await this.done;
    await Promise.all(this.background);
  }

  private async terminate(admin: pg.Pool, application: string, one: boolean): Promise<number> {
    // Only this database's: on a shared server (DATABASE_URL) other programs may use the same names.
    const { rows } = await admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
      [application],
    );
    const victims = one && rows.length > 0 ? [pick(this.random, rows)] : rows;
    for (const v of victims) await admin.query('SELECT pg_terminate_backend($1)', [v.pid]);
    return victims.length;
  }

  /** The fault is lifted: note when, then when the instances are ready and when a probe reached every steady client. */
  private async recover(record: FaultRecord): Promise<void> {
    record.endedAt = this.now();
    const t = this.topology;
    await t.allReady(90_000).catch((err: Error) => {
      record.error = `${record.error ?? ''} not ready again: ${err.message}`.trim();
    });
    record.readyAt = this.now();
    try {
      const probe = `probe-${++this.probes}`;
      const { rows } = await t.admin.query<{ id: string; version: number }>(
        "INSERT INTO orders (customer_name, product_name, notes) VALUES ('Probe', 'Recovery', $1) RETURNING id, version",
        [probe],
      );
      const id = Number(rows[0]?.id);
      const deadline = Date.now() + 60_000;
      for (;;) {
        // Received as a change, or in a snapshot loaded after it (a client that started over).
        const waiting = this.population.steady().filter((c) => !c.client.view.has(id));
        if (waiting.length === 0) break;
        if (Date.now() > deadline) {
          record.error = `${record.error ?? ''} probe not received by ${waiting.length} steady clients within 60 s`.trim();
          break;
        }
        await sleep(50);
      }
    } catch (err) {
      record.error = `${record.error ?? ''} probe failed: ${(err as Error).message}`.trim();
    }
    record.recoveredAt = this.now();
  }

  async run(kind: FaultKind, overlapsWith?: FaultKind): Promise<void> {
    const t = this.topology;
    // A PostgreSQL restart waits until the long transaction is over: it would die uncommitted, and test nothing.
    if (kind.startsWith('pg-restart')) await this.holding;
    const record: FaultRecord = { kind, at: this.now(), detail: '', ...(overlapsWith ? { overlapsWith } : {}) };
    this.log.push(record);
    try {
      switch (kind) {
        case 'terminate-listener':
          record.detail = `terminated ${await this.terminate(t.admin, 'orders-listener', true)} listener backend(s)`;
          break;
        case 'terminate-pool':
          record.detail = `terminated ${await this.terminate(t.admin, 'orders-api', false)} pool backend(s)`;
          break;
        case 'pg-restart-fast':
        case 'pg-restart-immediate': {
          const down = Math.round(between(this.random, 500, 3000));
          await t.restartPostgres(kind === 'pg-restart-fast' ? 'fast' : 'immediate', down);
          record.detail = `down ${down} ms`;
          break;
        }
        case 'instance-kill': {
          const victim = pick(this.random, t.instances);
          const down = Math.round(between(this.random, 500, 3000));
          record.detail = `SIGKILL instance ${victim.name} (pid ${victim.proc.pid}), restarted after ${down} ms`;
          await t.restartInstance(victim, 'SIGKILL', down);
          break;
        }
        case 'rolling-restart':
          // As an operator does it: the next instance is stopped once the previous one answers /readyz.
          record.detail = 'SIGTERM a, start it, /readyz, then b';
          for (const i of t.instances) await t.restartInstance(i, 'SIGTERM', 200);
          break;
        case 'proxy-blackhole': {
          const ms = Math.round(between(this.random, 2000, 6000));
          record.detail = `blackhole ${ms} ms`;
          t.proxy.blackhole();
          await sleep(ms);
          t.proxy.pass();
          break;
        }
        case 'proxy-delay': {
          const ms = Math.round(between(this.random, 3000, 8000));
          const latency = Math.round(between(this.random, 200, 1500));
          record.detail = `every packet ${latency} ms late, both ways, for ${ms} ms`;
          t.proxy.delay(latency);
          await sleep(ms);
          t.proxy.delay(0);
          break;
        }
        case 'client-pause': {
          const ms = Math.round(between(this.random, 2000, 8000));
          const paused = await this.population.networkPause(this.random, 0.25, ms);
          record.detail = `${paused} clients stopped reading for ${ms} ms`;
          break;
        }
        case 'long-transaction': {
          record.detail = `an INSERT held open ${this.longTxMs} ms`;
          const held = this.holdOpen(record);
          this.holding = held;
          this.background.push(held);
          return;
        }
        case 'write-burst': {
          const ms = 10_000;
          record.detail = `writers at 10x for ${ms} ms`;
          this.workload.burst(ms);
          this.background.push(sleep(ms).then(() => this.recover(record)));
          return;
        }
      }
    } catch (err) {
      record.error = (err as Error).message;
    }
    await this.recover(record);
  }

  private async holdOpen(record: FaultRecord): Promise<void> {
    let client: pg.PoolClient | undefined;
    try {
      client = await this.topology.admin.connect();
      client.on('error', () => undefined); // a connection that dies while held between statements
      await client.query('BEGIN');
      await client.query("INSERT INTO orders (customer_name, product_name, notes) VALUES ('Held open', 'Blocker', 'long-transaction')");
      await sleep(this.longTxMs);
      await client.query('COMMIT');
      client.release();
    } catch (err) {
      record.error = `the held transaction failed (${(err as Error).message}); its insert never committed`;
      client?.release(true);
    }
    await this.recover(record);
  }
}
