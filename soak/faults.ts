import type pg from 'pg';
import { between, pick, type Random, sleep } from './random.js';
import type { Topology } from './topology.js';
import type { Workload } from './workload.js';

/**
 * Faults at seeded random times, one after another (the next starts once the previous one is over),
 * each logged with when it started, ended, and when both instances answered /readyz again.
 */
export const FAULT_KINDS = [
  'terminate-listener',
  'terminate-pool',
  'pg-restart-fast',
  'pg-restart-immediate',
  'instance-kill',
  'proxy-blackhole',
  'rolling-restart',
  'long-transaction',
  'write-burst',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults during which the service may answer 503 (the database is unreachable to it for a while). */
export const DATABASE_FAULTS: ReadonlySet<FaultKind> = new Set([
  'terminate-listener',
  'terminate-pool',
  'pg-restart-fast',
  'pg-restart-immediate',
  'proxy-blackhole',
]);
/** Faults during which nginx may answer 502 for a request in flight on an instance that died. */
export const INSTANCE_FAULTS: ReadonlySet<FaultKind> = new Set(['instance-kill', 'rolling-restart']);

export interface FaultRecord {
  kind: FaultKind;
  /** ms since the soak started. */
  at: number;
  endedAt?: number;
  /** Both instances ready again, ms since the start. */
  recoveredAt?: number;
  detail: string;
  error?: string;
}

export interface PlannedFault {
  kind: FaultKind;
  at: number;
}

/**
 * The schedule: spread over the first `until` ms of the run (from `from`), every kind at least once (the
 * priority kinds first when the run is too short for all), then random kinds.
 */
export function plan(random: Random, from: number, until: number): PlannedFault[] {
  const gap = 9000;
  const slots = Math.max(1, Math.floor((until - from) / gap));
  const kinds: FaultKind[] = [];
  const shuffled = [...FAULT_KINDS].sort(() => random() - 0.5);
  for (let i = 0; i < slots; i++) kinds.push(i < shuffled.length ? (shuffled[i] as FaultKind) : pick(random, FAULT_KINDS));
  return kinds.map((kind, i) => ({ kind, at: Math.round(from + i * gap + between(random, 0, gap * 0.3)) }));
}

export class FaultRunner {
  readonly log: FaultRecord[] = [];
  private background: Promise<void>[] = [];
  private stopped = false;
  private done: Promise<void> | undefined;

  constructor(
    private readonly topology: Topology,
    private readonly workload: Workload,
    private readonly random: Random,
    private readonly started: number,
    /** How long the held-open transaction lasts. */
    private readonly longTxMs: number,
  ) {}

  private now(): number {
    return Date.now() - this.started;
  }

  start(schedule: PlannedFault[]): void {
    this.done = (async () => {
      for (const f of schedule) {
        if (this.stopped) break;
        const wait = this.started + f.at - Date.now();
        if (wait > 0) await sleep(wait);
        if (this.stopped) break;
        await this.run(f.kind);
      }
    })();
  }

  /** No new faults; waits for the running one and the background ones (the long transaction, a burst). */
  async finish(): Promise<void> {
    this.stopped = true;
    await this.done;
    await Promise.all(this.background);
  }

  private async terminate(admin: pg.Pool, application: string, one: boolean): Promise<number> {
    const { rows } = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [application]);
    const victims = one && rows.length > 0 ? [pick(this.random, rows)] : rows;
    for (const v of victims) await admin.query('SELECT pg_terminate_backend($1)', [v.pid]);
    return victims.length;
  }

  async run(kind: FaultKind): Promise<void> {
    const t = this.topology;
    const record: FaultRecord = { kind, at: this.now(), detail: '' };
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
          record.detail = 'SIGTERM a, restart, then b';
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
        case 'long-transaction': {
          record.detail = `an INSERT held open ${this.longTxMs} ms`;
          this.background.push(this.holdOpen(record));
          return;
        }
        case 'write-burst': {
          const ms = 10_000;
          record.detail = `writers at 10x for ${ms} ms`;
          this.workload.burst(ms);
          this.background.push(
            sleep(ms).then(() => {
              record.endedAt = this.now();
              record.recoveredAt = this.now();
            }),
          );
          return;
        }
      }
    } catch (err) {
      record.error = (err as Error).message;
    }
    record.endedAt = this.now();
    await t.allReady(90_000).catch((err: Error) => {
      record.error = `${record.error ?? ''} not ready again: ${err.message}`.trim();
    });
    record.recoveredAt = this.now();
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
    record.endedAt = this.now();
    record.recoveredAt = this.now();
  }
}
