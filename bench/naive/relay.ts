import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { WebSocketServer } from 'ws';
import { nowMs } from '../lib.js';

/**
 * The naive relay, as people write it: one pg.Client LISTENs, and each notification (the whole row, sent
 * by the trigger in bench/naive/schema.sql) is parsed and sent to every socket with
 * `ws.send(JSON.stringify(…))`. No cursor, no catch-up, no backpressure: whatever is sent while a
 * socket or the listener is away is lost. Run by `npm run bench -- --only naive` as the baseline,
 * in a process of its own like the service. Messages have the service's `changes` shape so the same
 * clients read both.
 */
const databaseUrl = process.env.DATABASE_URL as string;
/** With `--trace` (bench/trace.ts): per write, when its notification arrived, was parsed, and its last send returned. */
const trace = process.env.BENCH_TRACE ? new Map<string, [number, number, number]>() : null;
const port = Number(process.env.PORT);

const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('ok');
});
const wss = new WebSocketServer({ server, path: '/ws' });
const listener = new pg.Client({ connectionString: databaseUrl });

listener.on('notification', (n) => {
  const heardAt = trace ? nowMs() : 0;
  const change = JSON.parse(n.payload as string);
  const firstAt = trace ? nowMs() : 0;
  for (const ws of wss.clients) ws.send(JSON.stringify({ type: 'changes', changes: [change] }));
  if (trace && change.order?.notes) trace.set(change.order.notes, [heardAt, firstAt, nowMs()]);
});

await listener.connect();
await listener.query('LISTEN naive_orders');
server.listen(port, '127.0.0.1');
process.once('exit', () => {
  if (!trace) return;
  const heard = [...trace].map(([k, [at]]) => [k, at]);
  const service = { heard, handed: heard, broadcast: [...trace] };
  writeFileSync(path.join(process.env.BENCH_TRACE as string, `service-${process.pid}.json`), JSON.stringify(service));
});
process.once('SIGTERM', () => {
  for (const ws of wss.clients) ws.terminate();
  server.close();
  void listener.end().finally(() => process.exit(0));
});
