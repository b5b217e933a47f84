import { canMove } from '../../../src/contract/statuses.ts';
import type { Dashboard } from '../dashboard.ts';
import { STATUS_LABEL } from '../format.ts';

/** Refusals, rollbacks, queue news and 412 conflicts, announced politely to screen readers. */
export function Notices({ dashboard }: { dashboard: Dashboard }) {
  const held = dashboard.queue.held;
  return (
    <div class="notices">
      {held > 0 && (
        <div class="notice notice-info" data-testid="held-queue">
          <span>
            {held} {held === 1 ? 'action' : 'actions'} queued on this device under another sign-in {held === 1 ? 'is' : 'are'} held: only
            that sign-in sends {held === 1 ? 'it' : 'them'}.
          </span>
          <button type="button" onClick={() => dashboard.queue.discardHeld()}>
            Discard
          </button>
        </div>
      )}
      <div aria-live="polite" aria-relevant="additions" data-testid="notices">
        {dashboard.notices.map((n) => (
          <div key={n.id} class={`notice notice-${n.tone}`} role={n.tone === 'error' ? 'alert' : undefined}>
            <span>{n.text}</span>
            <button type="button" class="ghost" onClick={() => dashboard.dismissNotice(n.id)} aria-label="Dismiss message">
              ×
            </button>
          </div>
        ))}
      </div>
      {dashboard.conflicts.map((c) => {
        // A move the order's status no longer allows is not offered again (it would only be refused).
        const now = dashboard.store.orders.get(c.id) ?? c.newer;
        const blocked = Boolean(c.patch?.status && now && !canMove(now.status, c.patch.status));
        return (
          <section key={`${c.id}-${c.newer?.version}`} class="notice notice-conflict" role="alert" data-testid="conflict">
            <h2>Order #{c.id} was changed by someone else</h2>
            <p>
              Your {c.patch ? 'change' : 'deletion'} was not applied.{' '}
              {c.newer
                ? `It is now at version ${c.newer.version}: ${c.newer.customer_name} · ${c.newer.product_name} · ${STATUS_LABEL[c.newer.status]}.`
                : 'It no longer exists.'}
            </p>
            {c.patch && (
              <p class="muted">
                Your change:{' '}
                {Object.entries(c.patch)
                  .map(([k, v]) => `${k} → ${String(v)}`)
                  .join(', ')}
              </p>
            )}
            {blocked && now && c.patch?.status && (
              <p data-testid="conflict-blocked">
                It is now {STATUS_LABEL[now.status]}: moving it to {STATUS_LABEL[c.patch.status]} is no longer possible.
              </p>
            )}
            <div class="actions">
              {c.newer && !blocked && (
                <button type="button" class="primary" onClick={() => void dashboard.reapply(c)}>
                  Reapply my {c.patch ? 'change' : 'deletion'}
                </button>
              )}
              <button type="button" onClick={() => dashboard.dismissConflict(c)}>
                {blocked ? 'Dismiss' : 'Keep theirs'}
              </button>
            </div>
          </section>
        );
      })}
    </div>
  );
}
