import { writeFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { nowMs } from '../lib.js';

/**
 * N WebSocket clients. "Sampled" clients parse every frame and record, for each change, the time from
 * the write being sent (the writer puts its send time in `notes`) to the change being parsed here. The
 * others count changes without parsing (a substring count), so one process can stand for thousands of
 * dashboards without the load generator becoming the bottleneck it is measuring.
 */
const args = JSON.parse(process.argv[2] as string) as {
  url: string;
  clients: number;
  sampled: number;
  connectConcurrency?: number;
  /** Client i streams the view filters[(offset + i) % length] ('' for everything). */
  filters?: string[];
  offset?: number;
};
const latencies: number[] = [];
/** With `--trace` (bench/trace.ts): each change a sampled client parsed (its notes) and when. */
const parsed: [string, number][] | null = process.env.BENCH_TRACE ? [] : null;
let changes = 0;
let frames = 0;
let bytes = 0;
let closed = 0;
let recording = false;
const sockets: WebSocket[] = [];

function open(i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const filter = args.filters ? (args.filters[((args.offset ?? 0) + i) % args.filters.length] as string) : '';
    const ws = new WebSocket(filter ? `${args.url}?${filter}` : args.url, { perMessageDeflate: false });
    // Sampled clients are spread over the connection order, which is also the server's send order.
    const sampled = args.sampled > 0 && i % Math.max(1, Math.floor(args.clients / args.sampled)) === 0;
    ws.on('message', (data: Buffer) => {
      if (!recording) return;
      frames++;
      bytes += data.length;
      if (sampled) {
        const msg = JSON.parse(data.toString());
        if (msg.type !== 'changes') return;
        const t = nowMs();
        for (const c of msg.changes) {
          changes++;
          const sent = Number(c.order.notes);
          if (c.op === 'insert' && sent > 0) {
            latencies.push(t - sent);
            parsed?.push([c.order.notes, t]);
          }
        }
      } else {
        // Each change has one "op" key (orders have none).
        const s = data.toString('latin1');
        let at = s.indexOf('"op":"');
        while (at !== -1) {
          changes++;
          at = s.indexOf('"op":"', at + 6);
        }
      }
    });
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.on('close', () => closed++);
    sockets.push(ws);
  });
}

async function main() {
  const concurrency = args.connectConcurrency ?? 200;
  for (let i = 0; i < args.clients; i += concurrency) {
    await Promise.all(Array.from({ length: Math.min(concurrency, args.clients - i) }, (_, k) => open(i + k)));
  }
  process.send?.({ type: 'ready', clients: sockets.length });
  process.on('message', (m: { type: string }) => {
    if (m.type === 'record') {
      latencies.length = 0;
      changes = frames = bytes = 0;
      recording = true;
    } else if (m.type === 'report') {
      recording = false;
      if (parsed) {
        writeFileSync(path.join(process.env.BENCH_TRACE as string, `clients-${process.pid}.json`), JSON.stringify(parsed));
        parsed.length = 0;
      }
      process.send?.({ type: 'report', latencies, changes, frames, bytes, closed });
    } else if (m.type === 'close') {
      for (const ws of sockets) ws.terminate();
      setTimeout(() => process.exit(0), 100);
    }
  });
}

main().catch((err) => {
  process.send?.({ type: 'error', message: String(err) });
  process.exit(1);
});
