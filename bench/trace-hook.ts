import diagnostics_channel from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Loaded into the service process (`--import`) when the benchmark traces (`--trace`): subscribes to
 * the live path's trace points (src/trace.ts) and, at exit, writes when each benchmark write (its
 * `notes`, the writer's due time) was heard in a notification, handed out in a batch, and when the
 * broadcast carrying it started, wrote its first frame and its last (bench/trace.ts reads them).
 */
const dir = process.env.BENCH_TRACE as string;
/** A benchmark write's notes in a change's JSON, or in a summary, where that JSON may be escaped. */
const NOTES = /\\?"notes\\?":\\?"(\d+\.\d{3})/g;
const heard = new Map<string, number>();
const handed = new Map<string, number>();
const broadcast = new Map<string, [number, number, number]>();

interface Batch {
  txns: { changes: { json: string }[] }[];
}
function* keys(batches: Batch[]): Generator<string> {
  for (const b of batches) for (const t of b.txns) for (const c of t.changes) for (const m of c.json.matchAll(NOTES)) yield m[1] as string;
}

diagnostics_channel.subscribe('orders:listener:notification', (m) => {
  const { at, payload } = m as { at: number; payload: string };
  for (const match of payload.matchAll(NOTES)) if (!heard.has(match[1] as string)) heard.set(match[1] as string, at);
});
diagnostics_channel.subscribe('orders:feed:batch', (m) => {
  const { at, batch } = m as { at: number; batch: Batch };
  for (const k of keys([batch])) if (!handed.has(k)) handed.set(k, at);
});
diagnostics_channel.subscribe('orders:realtime:broadcast', (m) => {
  const { batches, startedAt, firstAt, lastAt } = m as { batches: Batch[]; startedAt: number; firstAt: number; lastAt: number };
  for (const k of keys(batches)) if (!broadcast.has(k)) broadcast.set(k, [startedAt, firstAt, lastAt]);
});
process.once('exit', () => {
  writeFileSync(
    path.join(dir, `service-${process.pid}.json`),
    JSON.stringify({ heard: [...heard], handed: [...handed], broadcast: [...broadcast] }),
  );
});
