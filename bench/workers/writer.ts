import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { nowMs, post } from '../lib.js';

/**
 * Open-loop writer: write i is due at start + i / rate and is sent then, whether or not earlier writes
 * have completed, so a slow server shows up as latency instead of silently lowering the rate (a closed
 * loop would hide queueing). `notes` carries the due time, which the clients subtract.
 */
const args = JSON.parse(process.argv[2] as string) as {
  mode: 'rest' | 'sql';
  baseUrl: string;
  dbUrl: string;
  rate: number;
  seconds: number;
  /** For SQL writes: the table (the naive baseline has its own, bench/naive/schema.sql). */
  table?: 'orders' | 'naive_orders';
  /** Vary status and product (write i: STATUSES[i % 5], PRODUCTS[i % 4]), for filtered views. */
  mix?: boolean;
};
const STATUSES = ['pending', 'processing', 'shipped', 'delivered', 'cancelled'];
const PRODUCTS = ['Laptop', 'Desk', 'Lamp', 'Chair'];
const total = Math.round(args.rate * args.seconds);
let done = 0;
let errors = 0;
let lateSends = 0;
/** Each write's round trip (its commit, for SQL writes), ms. */
const roundTrips: number[] = [];

/** With `--trace` (bench/trace.ts): each write's notes and when its commit (or 201) came back. */
const commits: [string, number][] | null = process.env.BENCH_TRACE ? [] : null;

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const POOL_MAX = 16;
const pool = new pg.Pool({ connectionString: args.dbUrl, max: POOL_MAX });
pool.on('error', () => undefined);

async function writeOne(due: number, i: number): Promise<void> {
  const body = args.mix
    ? { customer_name: 'Bench', product_name: PRODUCTS[i % 4] as string, notes: due.toFixed(3), status: STATUSES[i % 5] as string }
    : { customer_name: 'Bench', product_name: 'Latency', notes: due.toFixed(3), status: 'pending' };
  const sent = nowMs();
  try {
    if (args.mode === 'rest') {
      const status = await post(`${args.baseUrl}/orders`, JSON.stringify(body), agent);
      if (status !== 201) errors++;
    } else {
      await pool.query(`INSERT INTO ${args.table ?? 'orders'} (customer_name, product_name, notes, status) VALUES ($1, $2, $3, $4)`, [
        body.customer_name,
        body.product_name,
        body.notes,
        body.status,
      ]);
    }
    const committed = nowMs();
    roundTrips.push(committed - sent);
    commits?.push([body.notes, committed]);
  } catch {
    errors++;
  }
  done++;
}

async function main() {
  // Every connection of the pool opened and used once before the clock starts: a new backend's first
  // write compiles the triggers' functions (several ms each for the service's, far less for the naive
  // one's), which put up to 0.7 s on the first writes of a run. Their notes '0' keep them out of the
  // latencies (clients time only notes > 0).
  if (args.mode === 'sql') {
    await Promise.all(
      Array.from({ length: POOL_MAX }, () =>
        pool.query(`INSERT INTO ${args.table ?? 'orders'} (customer_name, product_name, notes) VALUES ('Bench', 'Warm-up', '0')`),
      ),
    );
  } else await fetch(`${args.baseUrl}/healthz`);
  process.send?.({ type: 'ready' });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  const start = nowMs() + 5;
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / args.rate;
    const wait = due - nowMs();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait - 0.5));
    while (nowMs() < due) {
      /* spin the last half millisecond for an accurate send time */
    }
    if (nowMs() - due > 2) lateSends++;
    inflight.push(writeOne(due, i));
  }
  await Promise.all(inflight);
  if (commits) writeFileSync(path.join(process.env.BENCH_TRACE as string, `writer-${process.pid}.json`), JSON.stringify(commits));
  roundTrips.sort((a, b) => a - b);
  const roundTripP50 = roundTrips[Math.floor(roundTrips.length / 2)] ?? Number.NaN;
  const warmed = args.mode === 'sql' ? POOL_MAX : 0;
  process.send?.({ type: 'done', done, warmed, errors, lateSends, roundTripP50, elapsedS: (nowMs() - start) / 1000 });
  await pool.end();
  agent.destroy();
  process.exit(0);
}

main().catch((err) => {
  process.send?.({ type: 'error', message: String(err) });
  process.exit(1);
});
