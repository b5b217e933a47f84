import { readdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type pg from 'pg';
import { sleep } from './random.js';
import type { Topology } from './topology.js';

/**
 * Every few seconds: each instance's RSS (VmRSS) and open file descriptors, PostgreSQL connections by
 * application and state, and the change log's row count. Then a least-squares slope over the second
 * half of the run, per process (a restarted instance is a new series), to tell steady from growing.
 */
export interface Sample {
  at: number;
  instances: {
    name: string;
    pid: number;
    rssKiB: number;
    fds: number;
    heapUsedMiB?: number;
    eventLoopLagP99Ms?: number;
    /** Its `ws_clients` gauge: each is a socket, so one descriptor. */
    wsClients?: number;
  }[];
  /** `<application_name>/<state>` -> count. */
  connections: Record<string, number>;
  changeLogRows: number;
  /** The soak's own process: its longest event-loop delay since the last sample, and its heap. */
  harness: { maxDelayMs: number; heapMiB: number };
}

export interface Slope {
  series: string;
  samples: number;
  spanSec: number;
  /** RSS MiB per minute, FDs per minute. */
  rssMiBPerMin: number;
  fdsPerMin: number;
  /**
   * Descriptors other than the WebSocket clients' sockets, per minute: what is judged. A restarted
   * instance gains clients for minutes as they reconnect and least_conn sends it the new ones (one run:
   * 47 → 109 over two minutes, then flat); that is load arriving, not a leak. A leak grows this.
   */
  otherFdsPerMin: number;
}

function readProc(pid: number): { rssKiB: number; fds: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)/.exec(status);
    return { rssKiB: Number(m?.[1] ?? 0), fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined;
  }
}

/** Heap used and event-loop lag p99 from the instance's own /metrics (prom-client's defaults). */
async function readMetrics(url: string): Promise<{ heapUsedMiB?: number; eventLoopLagP99Ms?: number; wsClients?: number }> {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(1000) })).text();
    const value = (name: string) => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
      return m ? Number(m[1]) : undefined;
    };
    const heap = value('nodejs_heap_size_used_bytes');
    const lag = value('nodejs_eventloop_lag_p99_seconds');
    const clients = value('ws_clients');
    return {
      ...(clients === undefined ? {} : { wsClients: clients }),
      ...(heap === undefined ? {} : { heapUsedMiB: Math.round((heap / 2 ** 20) * 10) / 10 }),
      ...(lag === undefined ? {} : { eventLoopLagP99Ms: Math.round(lag * 10_000) / 10 }),
    };
  } catch {
    return {};
  }
}

export async function connections(admin: pg.Pool): Promise<Record<string, number>> {
  const { rows } = await admin.query<{ app: string; state: string; n: number }>(
    `SELECT coalesce(nullif(application_name, ''), backend_type) AS app, coalesce(state, '-') AS state, count(*)::int AS n
     FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database() GROUP BY 1, 2`,
  );
  return Object.fromEntries(rows.map((r) => [`${r.app}/${r.state}`, r.n]));
}

export class Sampler {
  readonly samples: Sample[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** The soak's own loop: a stall here stalls its clients and writers, not the service. */
  private readonly delay = monitorEventLoopDelay({ resolution: 20 });

  constructor(
    private readonly topology: Topology,
    private readonly started: number,
    private readonly everyMs: number,
  ) {}

  start(): void {
    this.delay.enable();
    this.loop = (async () => {
      while (!this.stopped) {
        await this.sample();
        await sleep(this.everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.delay.disable();
    this.stopped = true;
    await this.loop;
  }

  async sample(): Promise<Sample> {
    const harness = { maxDelayMs: Math.round(this.delay.max / 1e6), heapMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20) };
    this.delay.reset();
    const s: Sample = { at: Date.now() - this.started, instances: [], connections: {}, changeLogRows: -1, harness };
    for (const { name, pid, url } of this.topology.pids()) {
      if (pid === undefined) continue;
      const p = readProc(pid);
      if (p) s.instances.push({ name, pid, ...p, ...(await readMetrics(url)) });
    }
    try {
      s.connections = await connections(this.topology.admin);
      const { rows } = await this.topology.admin.query<{ n: number }>('SELECT count(*)::int AS n FROM order_changes');
      s.changeLogRows = rows[0]?.n ?? -1;
    } catch {
      /* the database is down */
    }
    this.samples.push(s);
    return s;
  }

  /** Least-squares slopes per instance process over samples taken at or after `fromMs`. */
  slopes(fromMs: number): Slope[] {
    const series = new Map<string, { t: number; rss: number; fds: number; other: number }[]>();
    for (const s of this.samples) {
      if (s.at < fromMs) continue;
      for (const i of s.instances) {
        const key = `${i.name} pid ${i.pid}`;
        const list = series.get(key) ?? [];
        // A sample without the gauge (the instance did not answer /metrics in time) says nothing of it.
        if (i.wsClients === undefined) continue;
        list.push({ t: s.at / 60_000, rss: i.rssKiB / 1024, fds: i.fds, other: i.fds - i.wsClients });
        series.set(key, list);
      }
    }
    return [...series].map(([key, points]) => ({
      series: key,
      samples: points.length,
      spanSec: points.length > 1 ? Math.round(((points[points.length - 1]?.t ?? 0) - (points[0]?.t ?? 0)) * 60) : 0,
      rssMiBPerMin: slope(points.map((p) => [p.t, p.rss])),
      fdsPerMin: slope(points.map((p) => [p.t, p.fds])),
      otherFdsPerMin: slope(points.map((p) => [p.t, p.other])),
    }));
  }
}

export function slope(points: [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
