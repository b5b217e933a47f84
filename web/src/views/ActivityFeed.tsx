import type { Dashboard } from '../dashboard.ts';
import { relativeTime } from '../format.ts';
import { useNow } from './hooks.ts';

/** The last 100 changes from the stream, newest first. */
export function ActivityFeed({ dashboard }: { dashboard: Dashboard }) {
  const now = useNow();
  const items = dashboard.store.activity;
  return (
    <section class="panel activity" aria-labelledby="activity-title">
      <h2 id="activity-title">Activity</h2>
      {items.length === 0 ? (
        <p class="muted">Changes appear here as they happen.</p>
      ) : (
        <ol class="activity-list" data-testid="activity">
          {items.map((a) => (
            <li key={a.key}>
              <span class="activity-what">
                #{a.id} {a.customer}: {a.text}
              </span>
              <span class="activity-when"> · {relativeTime(a.at, now)}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
