import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { ServerMessage } from '../src/contract/protocol.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { type MainProcess, mainProcesses, startMain } from './helpers/main-process.js';
import { http } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';
import { insertOrders } from './helpers/writes.js';

/**
 * WORKERS=2: one port served by two worker processes under a primary (src/cluster.ts), run as a user
 * runs it. Both serve, a client resumes on the other worker without loss or repeats, /metrics shows
 * both, a worker killed is replaced, and SIGTERM to the primary drains both.
 */
let db: TestDatabase;
let proc: MainProcess;
let url: string;
const sockets: WebSocket[] = [];

interface Socket {
  ws: WebSocket;
  server: string;
  messages: ServerMessage[];
  closed: Promise<number>;
}

function open(query = ''): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws${query}`);
    sockets.push(ws);
    const messages: ServerMessage[] = [];
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString()) as ServerMessage;
      messages.push(m);
      if (m.type === 'hello') resolve({ ws, server: m.server, messages, closed });
    });
    ws.once('error', reject);
  });
}

const pidsOf = (stdout: string) =>
  new Set(
    stdout
      .split('\n')
      .filter((l) => l.includes('orders service listening'))
      .map((l) => (JSON.parse(l) as { pid: number }).pid),
  );

beforeAll(async () => {
  db = await createTestDatabase();
  proc = startMain({ DATABASE_URL: db.url, WORKERS: '2', PORT: '0', DB_MIGRATE: 'false', SHUTDOWN_TIMEOUT_MS: '5000' });
  url = await proc.listening;
  await waitFor(() => pidsOf(proc.output().stdout).size === 2, { timeout: 30_000, message: 'both workers listening' });
});

afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  for (const c of mainProcesses) c.kill('SIGKILL');
  await db?.drop();
});

it('serves one port from two workers, and a client resumes on the other one without loss or repeats', async () => {
  // node:cluster hands connections round-robin: a few sockets reach both workers.
  const first = await Promise.all([open(), open(), open(), open()]);
  const servers = new Set(first.map((s) => s.server));
  expect(servers.size).toBe(2);
  const a = first[0] as Socket;
  const ids = await insertOrders(db.sql, 3, 'before');
  await waitFor(() => a.messages.filter((m) => m.type === 'changes').flatMap((m) => (m.type === 'changes' ? m.changes : [])).length >= 3);
  const cursor = [...a.messages].reverse().find((m) => m.type === 'changes' || m.type === 'heartbeat') as { cursor: string };
  a.ws.close();
  const later = await insertOrders(db.sql, 4, 'after');

  // Resume on a worker other than the one the cursor came from.
  let other: Socket | undefined;
  for (let i = 0; i < 8 && !other; i++) {
    const s = await open(`?after=${encodeURIComponent(cursor.cursor)}`);
    if (s.server !== a.server) other = s;
    else s.ws.close();
  }
  if (!other) throw new Error('no socket reached the other worker');
  const o = other;
  const received = () => o.messages.flatMap((m) => (m.type === 'changes' ? m.changes.map((c) => c.order.id) : []));
  await waitFor(() => received().length >= 4, { message: 'the resumed client got the changes made while it was away' });
  await new Promise((r) => setTimeout(r, 300));
  expect(received()).toEqual(later);
  expect(received().some((id) => ids.includes(id))).toBe(false);
});

it('answers /metrics with every worker, each labelled', async () => {
  for (let i = 0; i < 3; i++) {
    const res = await http(url, 'GET', '/metrics');
    expect(res.status).toBe(200);
    const text = String(res.body);
    expect(text).toMatch(/process_resident_memory_bytes\{worker="\d+"\}/);
    expect(new Set([...text.matchAll(/process_resident_memory_bytes\{worker="(\d+)"\}/g)].map((m) => m[1])).size).toBe(2);
  }
});

it('replaces a worker that dies', async () => {
  const before = pidsOf(proc.output().stdout);
  const victim = [...before][0] as number;
  process.kill(victim, 'SIGKILL');
  await waitFor(() => pidsOf(proc.output().stdout).size === 3, { timeout: 30_000, message: 'a new worker listening' });
  const servers = new Set((await Promise.all([open(), open(), open(), open()])).map((s) => s.server));
  expect(servers.size).toBe(2);
  expect(proc.output().stdout).toContain('"event":"worker.died"');
});

it('drains both workers on SIGTERM to the primary and exits 0', async () => {
  const open4 = await Promise.all([open(), open(), open(), open()]);
  expect(new Set(open4.map((s) => s.server)).size).toBe(2);
  proc.child.kill('SIGTERM');
  const codes = await Promise.all(open4.map((s) => s.closed));
  expect(codes).toEqual([1012, 1012, 1012, 1012]);
  expect(await proc.exited).toBe(0);
  expect(proc.output().stdout.match(/"msg":"stopped"/g)?.length).toBe(3);
});
