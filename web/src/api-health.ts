import { backoffDelay } from '../../src/contract/backoff.ts';

/**
 * Whether the API can do its job now, from `GET /readyz` (public; each check's `ok` for anyone).
 *
 * The WebSocket alone cannot tell: when PostgreSQL stops, the service keeps every socket open and rides
 * the outage out, so the socket stays "live" while no change can be read and every write answers 503.
 * So the page asks /readyz: every 10 s while all is well (a few hundred bytes; the page's own API calls
 * that fail ask at once, see `checkSoon`), and with a short, growing interval while it is not (1 s up
 * to 5 s; only pages that see an outage ask that often), so that the header turns back, and the queue
 * is sent, within seconds of the database's return.
 *
 * `database` is what matters for the queue: when it answers, writes can go out, even if the service's
 * listener has not reconnected yet (its changes then arrive a little later, by the feed's poll).
 */
export type Health =
  | { kind: 'unknown' }
  | { kind: 'ready' }
  /** The service answers but cannot reach PostgreSQL. */
  | { kind: 'database-down' }
  /** The database answers but the service's change listener is not connected yet. */
  | { kind: 'feed-delayed' }
  /** No answer at all (network, service down, gateway error): the socket's state says the rest. */
  | { kind: 'unreachable' };

const READY_EVERY_MS = 10_000;
const HIDDEN_EVERY_MS = 30_000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 5000;

interface Readiness {
  checks?: Record<string, { ok?: boolean }>;
}

async function fetchHealth(): Promise<Health> {
  let res: Response;
  try {
    res = await fetch('/readyz', { cache: 'no-store', headers: { accept: 'application/json' } });
  } catch {
    return { kind: 'unreachable' };
  }
  if (res.ok) return { kind: 'ready' };
  if (res.status !== 503) return { kind: 'unreachable' };
  let body: Readiness;
  try {
    body = (await res.json()) as Readiness;
  } catch {
    // A gateway's 503 page: the service itself is not there.
    return { kind: 'unreachable' };
  }
  if (body.checks?.database?.ok === false) return { kind: 'database-down' };
  return { kind: 'feed-delayed' };
}

/** Whether writes can be sent now. */
export function databaseAnswers(health: Health): boolean {
  return health.kind === 'ready' || health.kind === 'feed-delayed';
}

export class HealthWatch {
  health: Health = { kind: 'unknown' };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private failures = 0;
  private running = false;
  private stopped = false;

  constructor(
    private readonly onHealth: (health: Health, previous: Health) => void,
    private readonly check: () => Promise<Health> = fetchHealth,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Ask now (a request just failed, or the user asked to retry). */
  checkSoon(): void {
    if (!this.stopped) this.schedule(0);
  }

  private schedule(delay: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), delay);
  }

  private async run(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    let health: Health;
    try {
      health = await this.check();
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    const previous = this.health;
    this.health = health;
    this.failures = health.kind === 'ready' ? 0 : this.failures + 1;
    this.onHealth(health, previous);
    const hidden = document.visibilityState === 'hidden';
    const next =
      health.kind === 'ready'
        ? hidden
          ? HIDDEN_EVERY_MS
          : READY_EVERY_MS
        : backoffDelay(this.failures - 1, { minMs: RETRY_MIN_MS, maxMs: RETRY_MAX_MS, jitter: 0.25 });
    this.schedule(next);
  }
}
