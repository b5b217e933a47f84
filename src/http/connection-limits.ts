import type { Server } from 'node:http';
import { BlockList, isIPv4, isIPv6, type Socket } from 'node:net';
import type { FastifyHttpOptions, FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { type ProblemCode, problem } from '../errors.js';

/**
 * Slow and greedy clients. A connection costs a file descriptor and some memory for as long as it is
 * open, whether or not it ever completes a request, so every phase of it has a deadline and every
 * address a share:
 *
 * - headers must arrive within HTTP_HEADERS_TIMEOUT_MS and the whole request (body included) within
 *   HTTP_REQUEST_TIMEOUT_MS (Node's own headersTimeout and requestTimeout: a deadline from the first
 *   byte, which a client trickling one byte a second cannot stretch); the answer is a 408;
 * - a connection with no traffic either way for HTTP_CONNECTION_TIMEOUT_MS is closed (the socket's
 *   idle timeout), and an idle keep-alive connection after HTTP_KEEP_ALIVE_TIMEOUT_MS;
 * - at most HTTP_MAX_CONNECTIONS are open (Node's server.maxConnections drops the rest at accept) and
 *   at most HTTP_MAX_CONNECTIONS_PER_ADDRESS from one address.
 *
 * None of this touches WebSockets: once upgraded, a socket leaves Node's HTTP bookkeeping (no header
 * or request deadline) and ws clears its idle timeout; the hub's pings judge whether it is alive.
 * WebSockets do count towards both connection caps: they are connections.
 *
 * Behind a reverse proxy every connection comes from the proxy's address, so the per-address cap
 * is not applied to addresses TRUST_PROXY names (with TRUST_PROXY=true, to none): the proxy has to cap
 * its clients (nginx: limit_conn), and the request rate limits and WebSocket caps, which see the
 * forwarded address, still apply per client.
 */
export function slowClientOptions(config: Config): Partial<FastifyHttpOptions<Server>> {
  const deadlines = [config.HTTP_HEADERS_TIMEOUT_MS, config.HTTP_REQUEST_TIMEOUT_MS].filter((ms) => ms > 0);
  return {
    connectionTimeout: config.HTTP_CONNECTION_TIMEOUT_MS,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    http: {
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
      // Node checks these deadlines on a timer (30 s by default, which would triple a 10 s headers
      // timeout): check four times per shortest deadline, at most once a second.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(...deadlines, 4000) / 4))),
    },
    clientErrorHandler: answerClientError,
  };
}

const STATUS_LINES: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };
const answered = new WeakSet<Socket>();

/**
 * Node's parser errors and deadlines ('clientError'), answered like every other error: problem+json.
 * Only when no response has started on the socket (otherwise the answer would corrupt it); then the
 * connection is closed. Logged at debug only: anyone can cause these, as often as they can connect.
 */
function answerClientError(this: FastifyInstance, err: Error & { code?: string }, socket: Socket): void {
  if (answered.has(socket) || socket.destroyed) return;
  answered.add(socket);
  if (err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [code, detail]: [ProblemCode, string] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? ['request-timeout', 'The request did not arrive in time; the connection is closed.']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? ['headers-too-large', 'The request headers are larger than this service accepts.']
        : ['malformed-request', 'The request is not valid HTTP/1.1.'];
  this.log.debug({ event: 'http.client_error', reason: err.code, remote: socket.remoteAddress }, 'client error; closing the connection');
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const body = JSON.stringify(problem(code, detail));
    const status = problem(code, detail).status;
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_LINES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  // Written first, then closed: destroySoon waits for the answer to leave.
  socket.destroySoon();
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** The addresses TRUST_PROXY names, as a matcher; proxy-addr's names (loopback, …) included. */
function trustedProxies(trustProxy: string): ((address: string) => boolean) | null {
  if (trustProxy === 'true') return () => true;
  const entries = trustProxy
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length === 0) return null;
  const named: Record<string, string[]> = {
    loopback: ['127.0.0.1/8', '::1/128'],
    linklocal: ['169.254.0.0/16', 'fe80::/10'],
    uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
  };
  const list = new BlockList();
  for (const entry of entries.flatMap((e) => named[e] ?? [e])) {
    const [address = '', bits] = entry.split('/');
    const type = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : null;
    if (!type) continue;
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(bits), type);
  }
  return (address) => list.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
}

/** `::ffff:10.1.2.3` (an IPv4 client of a dual-stack socket) is 10.1.2.3. */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

export interface ConnectionCaps {
  total: number;
  perAddress: number;
  trustProxy: string;
  log: Logger;
}

/**
 * Caps the open connections of the server, in total and per client address. A connection over a cap
 * is destroyed at once, before a byte is read: it costs nothing more. Refusals are logged at most once
 * every ten seconds per cap, with how many there were, so a connection flood cannot flood the log.
 */
export function limitConnections(server: Server, { total, perAddress, trustProxy, log }: ConnectionCaps): void {
  const refused = { total: 0, 'per-address': 0 };
  const loggedAt = { total: 0, 'per-address': 0 };
  const note = (cap: keyof typeof refused, remote: string | undefined) => {
    refused[cap]++;
    const now = Date.now();
    if (now - loggedAt[cap] < 10_000) return;
    log.warn(
      { event: 'connection.refused', cap, remote, refused: refused[cap], limit: cap === 'total' ? total : perAddress },
      cap === 'total' ? 'connection cap reached; refusing connections' : 'per-address connection cap reached; refusing connections',
    );
    loggedAt[cap] = now;
    refused[cap] = 0;
  };
  if (total > 0) {
    server.maxConnections = total;
    server.on('drop', (data?: { remoteAddress?: string }) => note('total', data?.remoteAddress));
  }
  if (perAddress <= 0) return;
  const exempt = trustedProxies(trustProxy);
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    if (!socket.remoteAddress) return;
    const address = plainAddress(socket.remoteAddress);
    if (exempt?.(address)) return;
    const n = (open.get(address) ?? 0) + 1;
    if (n > perAddress) {
      socket.destroy();
      note('per-address', address);
      return;
    }
    open.set(address, n);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}
