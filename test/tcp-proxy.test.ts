import net from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { TcpProxy } from './helpers/tcp-proxy.js';

/** The soak's delay fault: every chunk late by the set latency both ways, in order, and on time again after delay(0). */
let echo: net.Server | undefined;
let proxy: TcpProxy | undefined;
let socket: net.Socket | undefined;

afterEach(async () => {
  socket?.destroy();
  await proxy?.close();
  await new Promise<void>((r) => (echo ? echo.close(() => r()) : r()));
});

it('delays traffic both ways, keeps its order, and stops delaying', async () => {
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo?.listen(0, '127.0.0.1', () => r()));
  proxy = await TcpProxy.start((echo.address() as net.AddressInfo).port);
  const s = net.connect(proxy.port, '127.0.0.1');
  socket = s;
  await new Promise((r) => s.once('connect', r));
  let received = '';
  s.on('data', (d) => {
    received += d.toString();
  });
  const roundTrip = async (text: string) => {
    const before = received.length;
    const t = Date.now();
    s.write(text);
    while (received.length < before + text.length) await new Promise((r) => setTimeout(r, 5));
    return Date.now() - t;
  };

  expect(await roundTrip('a')).toBeLessThan(600);
  proxy.delay(400);
  expect(await roundTrip('b')).toBeGreaterThanOrEqual(795);
  for (const c of 'cdefg') s.write(c);
  proxy.delay(0);
  // Written during the delay, arriving after it ended: still in order, and nothing overtakes them.
  expect(await roundTrip('h')).toBeGreaterThanOrEqual(0);
  expect(received).toBe('abcdefgh');
  expect(await roundTrip('i')).toBeLessThan(600);
});
