import http from 'node:http';
import { nowMs, post } from '../lib.js';

/**
 * Closed-loop create throughput: `concurrency` requests in flight for `seconds`. Used only for the
 * requests-per-second figure (the maximum the API sustains), never for latency.
 */
const args = JSON.parse(process.argv[2] as string) as { baseUrl: string; concurrency: number; seconds: number };
const agent = new http.Agent({ keepAlive: true, maxSockets: args.concurrency });
const body = JSON.stringify({ customer_name: 'Bench', product_name: 'Throughput' });

async function main() {
  process.send?.({ type: 'ready' });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  let ok = 0;
  let errors = 0;
  const start = nowMs();
  const end = start + args.seconds * 1000;
  await Promise.all(
    Array.from({ length: args.concurrency }, async () => {
      while (nowMs() < end) {
        try {
          if ((await post(`${args.baseUrl}/orders`, body, agent)) === 201) ok++;
          else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (nowMs() - start) / 1000;
  process.send?.({ type: 'done', ok, errors, rps: ok / elapsed });
  agent.destroy();
  process.exit(0);
}

main().catch((err) => {
  process.send?.({ type: 'error', message: String(err) });
  process.exit(1);
});
