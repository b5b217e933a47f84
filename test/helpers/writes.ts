import type pg from 'pg';

/**
 * Writes to `orders` the way "another program" does: raw SQL on its own connections, not through the
 * service. Kept to a few hundred orders so one GET /orders page is the whole table.
 */
export async function insertOrders(sql: pg.Pool, n: number, notes = ''): Promise<number[]> {
  const { rows } = await sql.query<{ id: string }>(
    `INSERT INTO orders (customer_name, product_name, quantity, notes)
     SELECT 'Customer ' || g, 'Product ' || g, 1 + g % 50, $2 FROM generate_series(1, $1) g RETURNING id`,
    [n, notes],
  );
  return rows.map((r) => Number(r.id));
}

/** One random write: mostly updates of live orders, some inserts, a few deletes. */
export async function randomWrite(sql: pg.Pool | pg.PoolClient, random: () => number = Math.random): Promise<void> {
  const r = random();
  if (r < 0.2) {
    await sql.query("INSERT INTO orders (customer_name, product_name) VALUES ('Writer', 'Widget')");
  } else if (r < 0.25) {
    await sql.query('DELETE FROM orders WHERE id = (SELECT id FROM orders ORDER BY id LIMIT 1 OFFSET $1)', [Math.floor(random() * 20)]);
  } else {
    await sql.query(
      `UPDATE orders SET quantity = quantity % 1000 + 1, notes = md5(random()::text)
       WHERE id = (SELECT id FROM orders ORDER BY id DESC LIMIT 1 OFFSET $1)`,
      [Math.floor(random() * 50)],
    );
  }
}

export interface SteadyWriter {
  /** Resolves when the writer has stopped (its time or count is up, or stop() was called). */
  done: Promise<void>;
  stop(): Promise<void>;
  readonly writes: number;
  readonly failures: number;
}

/**
 * About `perSecond` random writes a second for at most `durationMs` and `maxWrites`, from `workers`
 * connections. Failed writes (the database restarting, a connection cut) are counted and skipped; the
 * checker judges from order_changes, so one that committed before its answer was lost still counts.
 */
export function steadyWriter(
  sql: pg.Pool,
  options: { perSecond: number; durationMs: number; maxWrites?: number; workers?: number },
): SteadyWriter {
  const { perSecond, durationMs, workers = 2 } = options;
  const maxWrites = options.maxWrites ?? Math.ceil((perSecond * durationMs) / 1000);
  const started = Date.now();
  let stopped = false;
  let writes = 0;
  let failures = 0;
  const worker = async () => {
    while (!stopped && writes + failures < maxWrites && Date.now() - started < durationMs) {
      const due = started + ((writes + failures) * 1000) / perSecond;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      try {
        await randomWrite(sql);
        writes++;
      } catch {
        failures++;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const done = Promise.all(Array.from({ length: workers }, worker)).then(() => undefined);
  return {
    done,
    async stop() {
      stopped = true;
      await done;
    },
    get writes() {
      return writes;
    },
    get failures() {
      return failures;
    },
  };
}
