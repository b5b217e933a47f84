import pino, { type Logger } from 'pino';
import { parseConfig } from '../../src/config.js';
import { createService, type Service } from '../../src/service.js';

export interface RunningService {
  service: Service;
  /** http://127.0.0.1:<port> */
  url: string;
  wsUrl: string;
  port: number;
  close(): Promise<void>;
}

/** The whole service (pool, listener, feed, hub, HTTP) on a real socket, port 0. */
export async function startService(databaseUrl: string, settings: Record<string, string> = {}, logger?: Logger): Promise<RunningService> {
  // Rate limits are off unless a test turns them on: suites fire hundreds of requests from one address.
  const config = parseConfig({
    DATABASE_URL: databaseUrl,
    DB_MIGRATE: 'false',
    LOG_LEVEL: 'silent',
    PORT: '0',
    RATE_LIMIT_PER_MINUTE: '0',
    RATE_LIMIT_PER_TOKEN_PER_MINUTE: '0',
    ...settings,
  });
  const log = logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? config.LOG_LEVEL });
  const service = await createService(config, log, databaseUrl);
  await service.app.listen({ host: '127.0.0.1', port: settings.PORT ? Number(settings.PORT) : 0 });
  const address = service.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    service,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    close: () => service.close(),
  };
}

export interface JsonResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** fetch + JSON, for tests that read like what a user of the API does. */
export async function http<T = any>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<JsonResponse<T>> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON; keep the text */
  }
  return { status: res.status, headers: res.headers, body: parsed as T, text };
}
