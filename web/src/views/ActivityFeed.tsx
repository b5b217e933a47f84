import type { Dashboard } from '../dashboard.ts';
import { relativeTime } from '../format.ts';
import { exactTimes } from '../history-format.ts';
import { orderHref } from '../history-route.ts';
import { useNow } from './hooks.ts';

/**
 * The last 100 changes from the stream, newest first, each naming who made it (once the history has
 * it: history-activity.ts) and opening the order's page.
 */
export function ActivityFeed({ dashboard, names }: { dashboard: Dashboard; names: ReadonlyMap<string, string> }) {
  const now = useNow();
  const items = dashboard.store.activity;
  return (
    <section class="panel activity" aria-labelledby="activity-title">
      <h2 id="activity-title">Activity</h2>
      {items.length === 0 ? (
        <p class="muted">Changes appear here as they happen.</p>
      ) : (
        <ol class="activity-list" data-testid="activity">
          {items.map((a) => {
            const by = names.get(a.key);
            // Entries refilled from the history after a reload know the customer only from the rows.
            const customer = a.customer || dashboard.store.orders.get(a.id)?.customer_name;
            const iso = new Date(a.at).toISOString();
            const t = exactTimes(iso);
            return (
              <li key={a.key}>
                <a class="activity-what" href={orderHref(a.id)}>
                  #{a.id}
                  {customer ? ` ${customer}` : ''}: {a.text}
                </a>
                <span class="activity-when">
                  {' · '}
                  <time dateTime={iso} title={`${t.local} (${t.utc})`}>
                    {relativeTime(a.at, now)}
                  </time>
                  {by && <span class="activity-by"> · {by}</span>}
                </span>
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}
