/**
 * How long to wait before retry number `attempt` (0 for the first): capped exponential backoff with
 * jitter, for every retry that waits, on the server (the LISTEN connection, restarting a worker) and in
 * the dashboard (the WebSocket, loading the first page, signing in, readiness). The protocol asks
 * clients to reconnect this way (CLOSE.RESTART): a fleet of dashboards that lost the same server must
 * not come back in one wave.
 *
 * The ceiling doubles from `minMs` with each attempt up to `maxMs`; the wait is the ceiling less a
 * random part of at most `jitter` of it. The default, 0.5 ("equal jitter"), keeps at least half the
 * ceiling, so a dead server is not hammered either; 0 waits exactly the ceiling.
 */
export interface Backoff {
  minMs: number;
  maxMs: number;
  /** The share of the ceiling that is random, from 0 to 1. */
  jitter?: number;
}

export function backoffDelay(attempt: number, { minMs, maxMs, jitter = 0.5 }: Backoff, random: () => number = Math.random): number {
  // Past 2^30 the ceiling is the cap anyway; the bound keeps 2 ** attempt finite.
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.round(ceiling * (1 - jitter + jitter * random()));
}
