import type { Dashboard } from '../dashboard.ts';
import { formatDuration, relativeTime } from '../format.ts';
import { useNow } from './hooks.ts';

/**
 * Live / reconnecting (with a countdown) / offline, and how fresh the data is. "Live" needs both an open
 * socket and a database that answers (/readyz, see api-health.ts): an open socket to a service whose
 * database is down is not live. While anything waits, "Retry now" ends the wait.
 */
export function ConnectionIndicator({ dashboard }: { dashboard: Dashboard }) {
  const now = useNow();
  const state = dashboard.connection;
  const last = dashboard.store.lastChange;
  const health = dashboard.health;
  let label: string;
  let detail = '';
  let shownState: string = state.kind;
  switch (state.kind) {
    case 'live':
      label = 'Live';
      if (health.kind === 'database-down') {
        label = 'Database unavailable';
        detail = 'changes are not coming in; your actions are queued';
        shownState = 'degraded';
      } else if (health.kind === 'feed-delayed') {
        label = 'Updates delayed';
        detail = 'the server is reconnecting to the database';
        shownState = 'degraded';
      }
      break;
    case 'connecting':
      label = state.attempt ? 'Reconnecting…' : 'Connecting…';
      break;
    case 'reconnecting':
      label = 'Reconnecting';
      detail = `next try in ${Math.max(0, Math.ceil((state.nextAttemptAt - now) / 1000))} s · ${state.reason}`;
      break;
    case 'offline':
      label = 'Offline';
      detail = 'waiting for the network';
      break;
  }
  const queued = dashboard.queue.size;
  const waiting = state.kind === 'reconnecting' || shownState === 'degraded' || (queued > 0 && state.kind !== 'offline');
  return (
    <div class="connection" data-state={shownState}>
      <span class="connection-dot" aria-hidden="true" />
      <span class="connection-label" data-testid="connection-state">
        {label}
      </span>
      {detail && <span class="connection-detail">{detail}</span>}
      {/* Announce the state, not the countdown: a screen reader should not read out every second. */}
      <span class="visually-hidden" role="status">
        {state.kind === 'reconnecting' ? 'Connection lost, reconnecting' : shownState === 'degraded' ? label : `Connection ${label}`}
      </span>
      {waiting && (
        <button type="button" class="retry-now" onClick={() => dashboard.retryNow()}>
          Retry now
        </button>
      )}
      {dashboard.stale && (
        <span class="stale" data-testid="stale">
          Showing data from {new Date(dashboard.stale.savedAt).toLocaleTimeString()}: not current
        </span>
      )}
      <span class="connection-freshness" data-testid="freshness">
        {last
          ? `Last change ${relativeTime(last.receivedAt, now)} · lag ${formatDuration(last.lagMs)}`
          : 'No changes since the page loaded'}
      </span>
      {queued > 0 && (
        <span class="queue-count" data-testid="queue-count" role="status">
          {queued} queued
        </span>
      )}
    </div>
  );
}
