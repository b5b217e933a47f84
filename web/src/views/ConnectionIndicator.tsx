import type { Dashboard } from '../dashboard.ts';
import { formatDuration, relativeTime } from '../format.ts';
import { useNow } from './hooks.ts';

/** Live / reconnecting (with a countdown) / offline, and how fresh the data is. */
export function ConnectionIndicator({ dashboard }: { dashboard: Dashboard }) {
  const now = useNow();
  const state = dashboard.connection;
  const last = dashboard.store.lastChange;
  let label: string;
  let detail = '';
  switch (state.kind) {
    case 'live':
      label = 'Live';
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
  return (
    <div class="connection" data-state={state.kind}>
      <span class="connection-dot" aria-hidden="true" />
      <span class="connection-label" data-testid="connection-state">
        {label}
      </span>
      {detail && <span class="connection-detail">{detail}</span>}
      {/* Announce the state, not the countdown: a screen reader should not read out every second. */}
      <span class="visually-hidden" role="status">
        {state.kind === 'reconnecting' ? 'Connection lost, reconnecting' : `Connection ${label}`}
      </span>
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
