import type pg from 'pg';
import { NEXT_STATUSES, type OrderStatus } from '../src/contract/statuses.js';
import { between, fork, pick, type Random, sleep } from './random.js';

/**
 * The writes: REST writers through the entry point (nginx) with an Idempotency-Key on every write,
 * retried with the same key on 503, 409 idempotency-key-in-use, timeouts and connection errors; every
 * acknowledged write is recorded with the key (which also goes into `notes`, so the checker can find
 * exactly which change it made). And raw SQL writers on their own connections, straight to PostgreSQL,
 * in multi-statement transactions: some rolled back, some held open for seconds.
 */
const watched = new WeakSet<pg.PoolClient>();

export interface Ack {
  kind: 'create' | 'update' | 'status' | 'delete';
  key: string;
  id: number;
  /** The version the answer carried (absent for a delete). */
  version?: number;
  at: number;
  attempts: number;
}

export interface HttpError {
  at: number;
  status: number;
  method: string;
  path: string;
  detail: string;
}

export interface WorkloadOptions {
  /** Where one request goes (Topology.pickEntry). */
  entry: (random: Random) => string;
  admin: pg.Pool;
  random: Random;
  started: number;
  restWorkers: number;
  sqlWorkers: number;
  /** Pause between one worker's writes, ms. */
  restPauseMs: number;
  sqlPauseMs: number;
}

export class Workload {
  readonly acks: Ack[] = [];
  readonly httpErrors: HttpError[] = [];
  /** Non-ack outcomes by status (404 of a deleted order, 409 of a final status, 412...). */
  readonly rejected = new Map<string, number>();
  /** A write retried until it gave up (never acknowledged). */
  abandoned = 0;
  restAttempts = 0;
  /** Attempts answered 409 locked (an order a SQL writer held) and retried. */
  lockedRetries = 0;
  sqlCommits = 0;
  sqlRollbacks = 0;
  sqlFailures = 0;
  /** Orders known to exist, with status (refreshed from the table every couple of seconds). */
  private live = new Map<number, string>();
  liveCount = 0;
  private stopped = false;
  private burstUntil = 0;
  private running: Promise<void>[] = [];
  private seq = 0;

  constructor(private readonly o: WorkloadOptions) {}

  private now(): number {
    return Date.now() - this.o.started;
  }

  /** Ten times the writers' rate for `ms`. */
  burst(ms: number): void {
    this.burstUntil = Date.now() + ms;
  }

  private pause(base: number, random: Random): Promise<void> {
    const factor = Date.now() < this.burstUntil ? 0.1 : 1;
    return sleep(base * factor * between(random, 0.5, 1.5));
  }

  start(): void {
    const r = this.o.random;
    for (let i = 0; i < this.o.restWorkers; i++) this.running.push(this.restWorker(fork(r), i));
    for (let i = 0; i < this.o.sqlWorkers; i++) this.running.push(this.sqlWorker(fork(r), i));
    this.running.push(this.refreshLive());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }

  private async refreshLive(): Promise<void> {
    while (!this.stopped) {
      try {
        const { rows } = await this.o.admin.query<{ id: string; status: string }>('SELECT id, status FROM orders');
        this.live = new Map(rows.map((row) => [Number(row.id), row.status]));
        this.liveCount = rows.length;
      } catch {
        /* the database is down: keep the last picture */
      }
      await sleep(1000);
    }
  }

  private record(key: string, status: number): void {
    const k = String(status);
    this.rejected.set(k, (this.rejected.get(k) ?? 0) + 1);
    void key;
  }

  /** One write, retried with the same key until acknowledged, refused for good, or 60 s have passed. */
  private async send(
    method: string,
    path: string,
    body: unknown,
    key: string,
    random: Random,
  ): Promise<{ status: number; body: any } | undefined> {
    const deadline = Date.now() + 60_000;
    let attempts = 0;
    while (Date.now() < deadline) {
      attempts++;
      this.restAttempts++;
      const base = this.o.entry(random);
      let status = 0;
      let text = '';
      try {
        const res = await fetch(base + path, {
          method,
          headers: body === undefined ? { 'idempotency-key': key } : { 'content-type': 'application/json', 'idempotency-key': key },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(8000),
        });
        status = res.status;
        text = await res.text();
      } catch (err) {
        text = (err as Error).message;
      }
      let parsed: any;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      if (status >= 500) this.httpErrors.push({ at: this.now(), status, method, path, detail: text.slice(0, 200) });
      // 409 locked: a SQL writer's transaction holds the order (DB_LOCK_TIMEOUT_MS, 2.5 s here); it ends soon.
      const retry =
        status === 0 ||
        status === 503 ||
        status === 502 ||
        status === 504 ||
        (status === 409 && (parsed?.code === 'idempotency-key-in-use' || parsed?.code === 'locked'));
      if (!retry) return { status, body: { ...parsed, attempts } };
      if (status === 409 && parsed?.code === 'locked') this.lockedRetries++;
      await sleep(between(random, 100, 600));
    }
    this.abandoned++;
    return undefined;
  }

  private async restWorker(random: Random, index: number): Promise<void> {
    while (!this.stopped) {
      const key = `rest-${index}-${++this.seq}`;
      const ids = [...this.live.keys()];
      const crowded = this.liveCount > 600;
      const r = random();
      try {
        if (ids.length === 0 || r < (crowded ? 0.05 : 0.35)) {
          const res = await this.send(
            'POST',
            '/orders',
            { customer_name: `Soak ${index}`, product_name: 'Widget', quantity: 1 + Math.floor(random() * 50), notes: key },
            key,
            random,
          );
          if (res?.status === 201)
            this.acks.push({
              kind: 'create',
              key,
              id: res.body.id,
              version: res.body.version,
              at: this.now(),
              attempts: res.body.attempts,
            });
          else if (res) this.record(key, res.status);
        } else if (r < (crowded ? 0.6 : 0.45)) {
          const id = pick(random, ids);
          const res = await this.send('DELETE', `/orders/${id}`, undefined, key, random);
          if (res?.status === 204) {
            this.acks.push({ kind: 'delete', key, id, at: this.now(), attempts: res.body.attempts });
            this.live.delete(id);
          } else if (res) this.record(key, res.status);
        } else {
          const id = pick(random, ids);
          const current = this.live.get(id) ?? 'pending';
          const next: readonly string[] = NEXT_STATUSES[current as OrderStatus] ?? [];
          const status = random() < 0.3 && next.length > 0 ? pick(random, next) : undefined;
          const body = status ? { status, notes: key } : { quantity: 1 + Math.floor(random() * 1000), notes: key };
          const res = await this.send('PATCH', `/orders/${id}`, body, key, random);
          if (res?.status === 200) {
            this.acks.push({
              kind: status ? 'status' : 'update',
              key,
              id,
              version: res.body.version,
              at: this.now(),
              attempts: res.body.attempts,
            });
            if (status) this.live.set(id, status);
          } else if (res) this.record(key, res.status);
        }
      } catch (err) {
        this.httpErrors.push({ at: this.now(), status: -1, method: '?', path: '?', detail: (err as Error).message });
      }
      await this.pause(this.o.restPauseMs, random);
    }
  }

  private async sqlWorker(random: Random, index: number): Promise<void> {
    let n = 0;
    while (!this.stopped) {
      let client: pg.PoolClient | undefined;
      try {
        client = await this.o.admin.connect();
        // A connection that dies while held between statements emits 'error'; listen once per connection.
        if (!watched.has(client)) {
          watched.add(client);
          client.on('error', () => undefined);
        }
        await client.query('BEGIN');
        const statements = 1 + Math.floor(random() * 5);
        const crowded = this.liveCount > 600;
        for (let s = 0; s < statements; s++) {
          const tag = `sql-${index}-${++n}`;
          const r = random();
          if (r < (crowded ? 0.05 : 0.3)) {
            await client.query("INSERT INTO orders (customer_name, product_name, notes) VALUES ('SQL writer', 'Gadget', $1)", [tag]);
          } else if (r < (crowded ? 0.5 : 0.4)) {
            await client.query('DELETE FROM orders WHERE id = (SELECT id FROM orders ORDER BY id LIMIT 1 OFFSET $1)', [
              Math.floor(random() * 100),
            ]);
          } else {
            await client.query(
              'UPDATE orders SET quantity = quantity % 1000 + 1, notes = $1 WHERE id = (SELECT id FROM orders ORDER BY id DESC LIMIT 1 OFFSET $2)',
              [tag, Math.floor(random() * 200)],
            );
          }
          // Some transactions stay open a while between statements.
          if (random() < 0.05) await sleep(between(random, 500, 3000));
        }
        if (random() < 0.15) {
          await client.query('ROLLBACK');
          this.sqlRollbacks++;
        } else {
          await client.query('COMMIT');
          this.sqlCommits++;
        }
        client.release();
      } catch {
        this.sqlFailures++;
        client?.release(true);
        await sleep(200);
      }
      await this.pause(this.o.sqlPauseMs, random);
    }
  }
}
