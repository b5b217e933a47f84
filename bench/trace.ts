import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { percentile } from './lib.js';

/**
 * The per-stage breakdown of a traced latency run (`npm run bench -- --only naive --trace`): the writer,
 * the clients and the service (bench/trace-hook.ts; the naive relay traces itself) each wrote, per
 * benchmark write (keyed by its notes, the writer's due time), when it reached them. For every write
 * that went all the way: due → commit acknowledged → notification heard → batch handed out → broadcast
 * started → first frame written → last frame written, and each sampled client's parse after the first
 * frame was written. Medians and 90th percentiles of each step, in ms.
 */
export interface Breakdown {
  writes: number;
  steps: { step: string; p50: number; p90: number }[];
}

const STEPS = [
  'due → commit acknowledged',
  'commit → notification heard',
  'heard → handed out',
  'handed out → broadcast started',
  'broadcast started → first frame written',
  'first → last frame written',
  'first frame written → client parsed',
  'due → client parsed',
] as const;

function load<T>(dir: string, prefix: string): T[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix))
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as T);
}

export function breakdown(dir: string): Breakdown {
  const commits = new Map(load<[string, number][]>(dir, 'writer-').flat());
  const service = load<{ heard: [string, number][]; handed: [string, number][]; broadcast: [string, [number, number, number]][] }>(
    dir,
    'service-',
  );
  const heard = new Map(service.flatMap((s) => s.heard));
  const handed = new Map(service.flatMap((s) => s.handed));
  const broadcast = new Map(service.flatMap((s) => s.broadcast));
  const samples = new Map<string, number[]>(STEPS.map((s) => [s, []]));
  const add = (step: (typeof STEPS)[number], v: number) => samples.get(step)?.push(v);
  const parsed = load<[string, number][]>(dir, 'clients-').flat();
  // Only the measured writes (the clients record no warm-up).
  const measured = new Set(parsed.map(([key]) => key));
  let writes = 0;
  for (const [key, committed] of commits) {
    if (!measured.has(key)) continue;
    const h = heard.get(key);
    const o = handed.get(key);
    const b = broadcast.get(key);
    if (h === undefined || o === undefined || b === undefined) continue;
    writes++;
    const due = Number(key);
    add('due → commit acknowledged', committed - due);
    add('commit → notification heard', h - committed);
    add('heard → handed out', o - h);
    add('handed out → broadcast started', b[0] - o);
    add('broadcast started → first frame written', b[1] - b[0]);
    add('first → last frame written', b[2] - b[1]);
  }
  for (const [key, at] of parsed) {
    const b = broadcast.get(key);
    if (b === undefined || !commits.has(key)) continue;
    add('first frame written → client parsed', at - b[1]);
    add('due → client parsed', at - Number(key));
  }
  return {
    writes,
    steps: STEPS.map((step) => {
      const s = (samples.get(step) as number[]).sort((a, b) => a - b);
      return { step, p50: percentile(s, 50), p90: percentile(s, 90) };
    }),
  };
}
