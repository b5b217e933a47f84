import { readFileSync } from 'node:fs';
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseDotenv } from 'dotenv';

/**
 * Every setting the service has, parsed and validated once. Nothing else in the code base reads
 * `process.env`: modules receive the frozen `Config` (or the slice they need) from `main.ts`.
 * An invalid value stops the start with one line naming the variable; we never fall back silently.
 */
const Int = (min: number, max: number, def: number, description: string) =>
  Type.Integer({ minimum: min, maximum: max, default: def, description });
const Bool = (def: boolean, description: string) => Type.Boolean({ default: def, description });

export const ConfigSchema = Type.Object({
  DATABASE_URL: Type.Optional(
    Type.String({
      pattern: '^postgres(ql)?://',
      description: 'PostgreSQL connection string. Unset: an embedded PostgreSQL is started in DATA_DIR.',
    }),
  ),
  DATABASE_LISTEN_URL: Type.Optional(
    Type.String({
      pattern: '^postgres(ql)?://',
      description:
        "Connection string for the feed's LISTEN connection when it must differ from DATABASE_URL (e.g. Neon's direct endpoint while the pool uses -pooler).",
    }),
  ),
  HOST: Type.String({ default: '127.0.0.1', minLength: 1, description: 'Address to bind.' }),
  PORT: Int(0, 65535, 3000, 'Port to bind (0 picks a free one).'),
  WORKERS: Type.String({
    pattern: '^(auto|[1-9][0-9]?)$',
    default: '1',
    description:
      'Service processes on the one port (node:cluster), each a full instance; auto = one per core. Above 1, the first process only supervises (and owns the embedded database).',
  }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level.' },
  ),
  DATA_DIR: Type.String({ default: './.data', minLength: 1, description: 'Embedded PostgreSQL data folder.' }),
  EMBEDDED_PG_PORT: Int(0, 65535, 0, 'Port of the embedded PostgreSQL (0 picks a free one).'),
  DB_POOL_MAX: Int(1, 1000, 10, 'Pool size for API queries and feed catch-up reads.'),
  DB_CONNECT_TIMEOUT_MS: Int(100, 120_000, 5000, 'Give up connecting to the database after this long (answers 503).'),
  DB_QUERY_TIMEOUT_MS: Int(100, 600_000, 15_000, 'Give up on a query whose answer does not arrive (answers 503).'),
  DB_LOCK_TIMEOUT_MS: Int(
    0,
    600_000,
    5000,
    'A write waits this long at most for an order another transaction holds, then answers 409 locked and changes nothing (0 = the server’s own lock_timeout; PostgreSQL’s default waits up to DB_QUERY_TIMEOUT_MS, then 503). Unset, and DB_QUERY_TIMEOUT_MS below 10000: half of that. Must be below DB_QUERY_TIMEOUT_MS.',
  ),
  CSV_EXPORTS_MAX: Int(
    0,
    1000,
    2,
    'CSV exports (GET /orders.csv) running at once; more answer 429 export-busy. Each holds a pooled connection while its client reads the file. Unset: 2, or half of DB_POOL_MAX if that is less (so none with a pool of 1: 503 exports-off). Must be below DB_POOL_MAX.',
  ),
  CSV_EXPORT_STALL_MS: Int(
    1000,
    3_600_000,
    30_000,
    'A CSV export whose client takes nothing for this long is cut off, which ends its transaction and frees its connection.',
  ),
  CSV_EXPORT_MAX_MS: Int(
    1000,
    86_400_000,
    600_000,
    'A CSV export still running after this long is cut off: its snapshot keeps VACUUM from removing rows it can see, and a client that reads just enough never to stall could hold it for hours.',
  ),
  DB_MIGRATE: Bool(true, 'Apply pending migrations at startup.'),
  BODY_LIMIT_BYTES: Int(1024, 10 * 1024 * 1024, 64 * 1024, 'Largest accepted request body (413 above).'),
  HTTP_HEADERS_TIMEOUT_MS: Int(
    0,
    600_000,
    10_000,
    'A client must send its complete request headers within this long (408, then closed; 0 = no limit).',
  ),
  HTTP_REQUEST_TIMEOUT_MS: Int(
    0,
    3_600_000,
    30_000,
    'A client must send its whole request, body included, within this long (408, then closed; 0 = no limit). Not a limit on answering it.',
  ),
  HTTP_CONNECTION_TIMEOUT_MS: Int(
    0,
    3_600_000,
    60_000,
    'A connection with no traffic either way for this long is closed, also while its request is being answered (WebSockets excepted; 0 = never).',
  ),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: Int(
    100,
    3_600_000,
    72_000,
    "An idle keep-alive connection is closed after this long; keep it above a proxy's upstream idle timeout (nginx: 60 s).",
  ),
  HTTP_MAX_CONNECTIONS: Int(
    0,
    10_000_000,
    20_000,
    'Open connections in total, WebSockets included; more are closed at once (0 = no limit).',
  ),
  HTTP_MAX_CONNECTIONS_PER_ADDRESS: Int(
    0,
    10_000_000,
    2500,
    'Open connections from one address, WebSockets included; more are closed at once. Not applied to TRUST_PROXY addresses (0 = no limit).',
  ),
  IDEMPOTENCY_TTL_HOURS: Int(1, 24 * 30, 24, 'How long an Idempotency-Key and its response are kept.'),
  CURRENCY: Type.String({
    pattern: '^[A-Z]{3}$',
    default: 'USD',
    description:
      'ISO 4217 code of the one currency every amount is in; the dashboard formats totals with it. Only currencies with 2 minor digits (cents).',
  }),
  HISTORY_RETENTION_DAYS: Int(1, 3650, 90, "How long each order's history (its timeline: who changed what, when) is kept."),
  FEED_SERVICE_DOORBELL: Bool(
    true,
    "The service's own writes skip the trigger NOTIFY and ring one doorbell per burst after commit (faster commits); off: every write notifies.",
  ),
  FEED_POLL_MS: Int(100, 60_000, 1000, 'Safety-net read of the change log when no notification arrives.'),
  FEED_BATCH_SIZE: Int(1, 10_000, 1000, 'Most changes read from the log per query.'),
  LISTENER_KEEPALIVE_MS: Int(100, 600_000, 25_000, 'Keepalive query interval on the LISTEN connection.'),
  LISTENER_KEEPALIVE_TIMEOUT_MS: Int(100, 600_000, 10_000, 'A keepalive unanswered this long counts as a dead connection.'),
  LISTENER_BACKOFF_MIN_MS: Int(10, 60_000, 250, 'First reconnect delay of the LISTEN connection.'),
  LISTENER_BACKOFF_MAX_MS: Int(100, 600_000, 15_000, 'Longest reconnect delay of the LISTEN connection.'),
  FEED_IDLE_DISCONNECT_MS: Int(
    0,
    7 * 24 * 3600_000,
    0,
    'With no WebSocket client for this long, disconnect the listener so a Neon compute can scale to zero (0 = never).',
  ),
  FEED_RETENTION_HOURS: Int(0, 24 * 365, 24, 'Prune changes older than this (0 = no age limit).'),
  FEED_RETENTION_MAX_ROWS: Int(0, 1_000_000_000, 1_000_000, 'Keep at most this many changes (0 = no count limit).'),
  FEED_RETENTION_INTERVAL_MS: Int(1000, 24 * 3600_000, 60_000, 'How often the retention pass runs.'),
  FEED_MEMORY_CHANGES: Int(0, 1_000_000, 10_000, 'Recent changes kept in memory to serve resumes without a query.'),
  WS_HEARTBEAT_MS: Int(100, 600_000, 15_000, 'Heartbeat message interval on idle WebSockets.'),
  WS_PING_MS: Int(100, 600_000, 30_000, 'Protocol ping sweep; a socket that missed a pong is terminated.'),
  WS_MAX_BUFFERED_BYTES: Int(
    16 * 1024,
    1024 * 1024 * 1024,
    4 * 1024 * 1024,
    'A client whose unsent data passes this is closed with 1013 (it resumes from its cursor).',
  ),
  WS_CATCH_UP_STALL_MS: Int(
    1000,
    600_000,
    10_000,
    'A client catching up from the log that takes nothing for this long is closed with 1013 (it resumes from its cursor).',
  ),
  WS_MAX_PAYLOAD_BYTES: Int(64, 1024 * 1024, 4096, 'Largest message a client may send (1009 above).'),
  WS_MAX_MESSAGES_PER_SEC: Int(1, 10_000, 20, 'Client message rate limit (sustained; twice that as a burst).'),
  WS_BROADCAST_PERCENT: Int(
    1,
    100,
    75,
    'Of the event loop, the share (%) broadcasting may use over time; past it batches are coalesced into fewer, larger frames.',
  ),
  AUTH_TOKENS: Type.Optional(
    Type.String({
      pattern: '^\\s*(viewer|operator|admin)=[0-9a-f]{64}\\s*(,\\s*(viewer|operator|admin)=[0-9a-f]{64}\\s*)*$',
      description: 'Credentials from configuration: comma-separated <role>=<sha256 hex of the token> (see `npm run token -- hash`).',
    }),
  ),
  AUTH: Type.Union([Type.Literal('auto'), Type.Literal('required')], {
    default: 'auto',
    description:
      "'auto': authentication switches on when the first credential appears (and never off again); 'required': on from the start, so with no active token nobody gets in (401).",
  }),
  ALLOWED_HOSTS: Type.String({
    default: '',
    description:
      'With authentication off, the Host names (comma-separated, no port) served besides localhost, 127.0.0.1 and [::1]; any other Host gets 421 (DNS rebinding).',
  }),
  AUTH_CACHE_MS: Int(0, 600_000, 5000, 'How long a token lookup is cached; also how long a revoked token keeps working at most.'),
  ALLOW_UNAUTHENTICATED: Bool(
    false,
    'Serve a non-loopback HOST with no credentials configured (everyone is admin until the first token is created). Never in production.',
  ),
  RATE_LIMIT_PER_MINUTE: Int(0, 10_000_000, 6000, 'Requests per minute per client address (0 = no limit; 429 above).'),
  RATE_LIMIT_PER_TOKEN_PER_MINUTE: Int(0, 10_000_000, 6000, 'Requests per minute per credential (0 = no limit; 429 above).'),
  CORS_ORIGINS: Type.String({ default: '', description: 'Comma-separated origins allowed by CORS (empty: CORS off).' }),
  WS_ALLOWED_ORIGINS: Type.String({
    default: '',
    description: 'Comma-separated extra origins allowed to open WebSockets (same origin always is).',
  }),
  WS_MAX_CONNECTIONS_PER_TOKEN: Int(0, 1_000_000, 500, 'Open WebSockets per credential (0 = no limit).'),
  WS_MAX_CONNECTIONS_PER_ADDRESS: Int(0, 1_000_000, 2000, 'Open WebSockets per client address (0 = no limit).'),
  WS_MAX_VIEWS: Int(
    0,
    100_000,
    200,
    'Distinct views (status/q filters) streamed at once; each costs one frame build per batch. A socket asking for one more is refused with 429 (0 = no limit).',
  ),
  DEBUG_ENDPOINTS: Bool(true, 'Serve the admin-only /debug/* endpoints (triggers check, round trip, clients).'),
  TRUST_PROXY: Type.String({
    default: '',
    description:
      "Behind a reverse proxy: 'true', or its addresses/CIDRs comma-separated, so client addresses come from X-Forwarded-For (empty: trust none).",
  }),
  SHUTDOWN_TIMEOUT_MS: Int(
    100,
    600_000,
    20_000,
    'Longest graceful stop on SIGTERM/SIGINT before exiting; keep it above DB_QUERY_TIMEOUT_MS so a request waiting on the database is answered.',
  ),
});

export type Config = Readonly<Static<typeof ConfigSchema>>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads `.env` (if present) under the real environment, which wins; then validates. */
export function loadConfig(env: Record<string, string | undefined> = process.env, envFile: string | null = '.env'): Config {
  let fileVars: Record<string, string> = {};
  if (envFile) {
    try {
      fileVars = parseDotenv(readFileSync(envFile));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(`cannot read ${envFile}: ${(err as Error).message}`);
    }
  }
  return parseConfig({ ...fileVars, ...env });
}

export function parseConfig(raw: Record<string, string | undefined>): Config {
  const known = Object.keys(ConfigSchema.properties) as (keyof typeof ConfigSchema.properties)[];
  const picked: Record<string, unknown> = {};
  for (const key of known) {
    const value = raw[key];
    if (value === undefined || value === '') continue;
    // TypeBox's conversion reads integers loosely ("3.5" → 3, "1e3" → 1, "0x10" → 16): a setting
    // that is not written as a whole number is refused before it can be misread.
    const type = (ConfigSchema.properties[key] as { type?: string }).type;
    if (type === 'integer' && !/^\s*-?\d+\s*$/.test(value)) {
      throw new ConfigError(`invalid ${key}=${JSON.stringify(value)}: Expected a whole number${describeExpectation(key)}`);
    }
    picked[key] = value;
  }
  const withDefaults = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, picked));
  const firstError = Value.Errors(ConfigSchema, withDefaults).First();
  if (firstError) {
    const name = firstError.path.replace(/^\//, '');
    const shown = name === 'DATABASE_URL' || name === 'DATABASE_LISTEN_URL' ? '(hidden)' : JSON.stringify(raw[name]);
    throw new ConfigError(`invalid ${name}=${shown}: ${firstError.message}${describeExpectation(name)}`);
  }
  const config = withDefaults as Static<typeof ConfigSchema>;
  if (config.LISTENER_BACKOFF_MAX_MS < config.LISTENER_BACKOFF_MIN_MS) {
    throw new ConfigError('invalid LISTENER_BACKOFF_MAX_MS: must be at least LISTENER_BACKOFF_MIN_MS');
  }
  if (config.HTTP_REQUEST_TIMEOUT_MS > 0 && config.HTTP_HEADERS_TIMEOUT_MS > config.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError('invalid HTTP_HEADERS_TIMEOUT_MS: must be at most HTTP_REQUEST_TIMEOUT_MS (the headers are part of the request)');
  }
  if (raw.DB_LOCK_TIMEOUT_MS === undefined || raw.DB_LOCK_TIMEOUT_MS === '') {
    config.DB_LOCK_TIMEOUT_MS = Math.min(config.DB_LOCK_TIMEOUT_MS, Math.floor(config.DB_QUERY_TIMEOUT_MS / 2));
  } else if (config.DB_LOCK_TIMEOUT_MS >= config.DB_QUERY_TIMEOUT_MS) {
    throw new ConfigError(
      `invalid DB_LOCK_TIMEOUT_MS=${config.DB_LOCK_TIMEOUT_MS}: must be below DB_QUERY_TIMEOUT_MS (${config.DB_QUERY_TIMEOUT_MS}), or a write waiting for a held order would give up as a 503 first`,
    );
  }
  if (raw.CSV_EXPORTS_MAX === undefined || raw.CSV_EXPORTS_MAX === '') {
    config.CSV_EXPORTS_MAX = Math.min(config.CSV_EXPORTS_MAX, Math.floor(config.DB_POOL_MAX / 2));
  } else if (config.CSV_EXPORTS_MAX >= config.DB_POOL_MAX) {
    throw new ConfigError(
      `invalid CSV_EXPORTS_MAX=${config.CSV_EXPORTS_MAX}: must be below DB_POOL_MAX (${config.DB_POOL_MAX}), or exports whose clients read slowly could hold every connection`,
    );
  }
  const currencyProblem = checkCurrency(config.CURRENCY);
  if (currencyProblem) throw new ConfigError(`invalid CURRENCY=${JSON.stringify(config.CURRENCY)}: ${currencyProblem}`);
  return Object.freeze(config);
}

/**
 * Amounts are stored as integer hundredths (total_cents), so a currency with 0 minor digits (JPY) or 3
 * (KWD) would be shown 100× or 10× off: such a currency is refused rather than misformatted.
 */
function checkCurrency(code: string): string | null {
  if (!Intl.supportedValuesOf('currency').includes(code)) return 'not an ISO 4217 currency code known to this Node.js';
  const digits = new Intl.NumberFormat('en', { style: 'currency', currency: code }).resolvedOptions().maximumFractionDigits;
  if (digits !== 2)
    return `has ${digits} minor digits; amounts are stored in hundredths (total_cents), so only 2-digit currencies are supported`;
  return null;
}

function describeExpectation(name: string): string {
  const schema = (ConfigSchema.properties as Record<string, { description?: string }>)[name];
  return schema?.description ? ` (${schema.description})` : '';
}

/** The connection string with its password removed, for logs and startup output. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable connection string)';
  }
}
