import { useEffect, useRef, useState } from 'preact/hooks';
import { NEXT_STATUSES } from '../../../src/orders/transitions.ts';
import type { Order, OrderStatus } from '../../../src/protocol.ts';
import { ApiProblem } from '../api.ts';
import type { Dashboard } from '../dashboard.ts';
import { formatCents, formatCount, STATUS_LABEL } from '../format.ts';
import { fetchOrder, fetchOrderHistory, type HistoryEntry } from '../history-api.ts';
import { actorLabel, changedFields, exactTimes, fieldLabel, fieldValue } from '../history-format.ts';
import { askToCancel } from './ConfirmCancel.tsx';
import { StatusMenu } from './StatusMenu.tsx';

/**
 * One order and its timeline (`#/orders/<id>`): every change since it was created, newest first, with
 * who made it, when (exact local time; UTC on hover) and what changed (field: old → new), and a
 * cancel's reason. The order itself is the page's live copy when the table holds it, so the header
 * follows the stream; the timeline is read again whenever that copy's version moves.
 */
export function OrderPage({ dashboard, id, onEdit }: { dashboard: Dashboard; id: number; onEdit?: ((o: Order) => void) | undefined }) {
  const live = dashboard.displayed(id);
  const [fetched, setFetched] = useState<Order | null | undefined>(undefined);
  const [entries, setEntries] = useState<HistoryEntry[]>([]);
  const [older, setOlder] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [attempt, setAttempt] = useState(0);
  const title = useRef<HTMLHeadingElement>(null);
  /** The order whose first page is in: a refresh keeps the older pages already shown. */
  const loadedFor = useRef<number | null>(null);
  const order = live ?? fetched ?? null;
  const version = live?.version;

  useEffect(() => {
    title.current?.focus();
  }, [id]);

  useEffect(() => {
    if (live) return;
    let current = true;
    fetchOrder(id).then(
      (o) => current && setFetched(o),
      (err) => current && setFetched(err instanceof ApiProblem && err.status === 404 ? null : undefined),
    );
    return () => {
      current = false;
    };
  }, [id, live === undefined]);

  // The first page, again whenever the order changes: new entries on top, the older pages kept.
  useEffect(() => {
    let current = true;
    setLoading(true);
    fetchOrderHistory(id).then(
      (page) => {
        if (!current) return;
        const refresh = loadedFor.current === id;
        loadedFor.current = id;
        const lowest = page.entries[page.entries.length - 1]?.id ?? 0;
        setEntries((had) => (refresh ? [...page.entries, ...had.filter((e) => e.id < lowest)] : page.entries));
        if (!refresh) setOlder(page.nextBefore);
        setError(null);
        setLoading(false);
      },
      (err) => {
        if (!current) return;
        setError(err instanceof ApiProblem && err.status === 404 ? 'No history is kept for this order.' : (err as Error).message);
        setLoading(false);
      },
    );
    return () => {
      current = false;
    };
  }, [id, version, attempt]);

  const loadOlder = async () => {
    if (older === null) return;
    try {
      const page = await fetchOrderHistory(id, older);
      setEntries((had) => [...had, ...page.entries.filter((e) => !had.some((h) => h.id === e.id))]);
      setOlder(page.nextBefore);
    } catch (err) {
      setError((err as Error).message);
    }
  };

  const next: readonly OrderStatus[] = order && live ? NEXT_STATUSES[order.status] : [];
  const canEdit = dashboard.can('operator');
  return (
    <section class="panel order-page" aria-labelledby="order-title" data-testid="order-page">
      <p class="order-back">
        <a class="order-back-link" href="#/">
          ← All orders
        </a>
      </p>
      <h2 id="order-title" ref={title} tabIndex={-1}>
        Order #{id}
      </h2>
      {order ? (
        <div class="order-facts">
          <dl>
            <div>
              <dt>Customer</dt>
              <dd>{order.customer_name}</dd>
            </div>
            <div>
              <dt>Product</dt>
              <dd>{order.product_name}</dd>
            </div>
            <div>
              <dt>Qty</dt>
              <dd>{formatCount(order.quantity)}</dd>
            </div>
            <div>
              <dt>Total</dt>
              <dd>{formatCents(order.total_cents)}</dd>
            </div>
            <div>
              <dt>Status</dt>
              <dd>
                <span class={`badge badge-${order.status}`} data-testid="order-status">
                  {STATUS_LABEL[order.status]}
                </span>
              </dd>
            </div>
            <div>
              <dt>Created</dt>
              <dd>
                <ExactTime iso={order.created_at} />
              </dd>
            </div>
            {order.notes && (
              <div class="order-notes">
                <dt>Notes</dt>
                <dd>{order.notes}</dd>
              </div>
            )}
          </dl>
          {canEdit && live && (
            <div class="order-actions">
              {next.length > 0 && (
                <StatusMenu
                  id={order.id}
                  next={next}
                  busy={dashboard.isPending(order.id)}
                  onChoose={(to) => (to === 'cancelled' ? askToCancel(order) : void dashboard.update(order, { status: to }))}
                />
              )}
              {onEdit && (
                <button type="button" onClick={() => onEdit(order)}>
                  Edit
                </button>
              )}
            </div>
          )}
        </div>
      ) : (
        fetched === null && <p class="muted">This order no longer exists; its history is kept below.</p>
      )}

      <h3 id="timeline-title">Timeline</h3>
      {error && (
        <p class="error" role="alert">
          Could not load the timeline: {error}{' '}
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Retry
          </button>
        </p>
      )}
      {loading && entries.length === 0 && !error && <p class="muted">Loading the timeline…</p>}
      <ol class="timeline" aria-labelledby="timeline-title" data-testid="timeline">
        {entries.map((e) => (
          <TimelineEntry key={e.id} entry={e} />
        ))}
      </ol>
      {older !== null && (
        <button type="button" onClick={() => void loadOlder()}>
          Show older changes
        </button>
      )}
    </section>
  );
}

function ExactTime({ iso }: { iso: string }) {
  const t = exactTimes(iso);
  return (
    <time dateTime={iso} title={t.utc}>
      {t.local}
    </time>
  );
}

const VERB: Record<HistoryEntry['op'], string> = { insert: 'Created', update: 'Changed', delete: 'Deleted' };

function TimelineEntry({ entry }: { entry: HistoryEntry }) {
  const fields = changedFields(entry);
  return (
    <li class={`timeline-entry op-${entry.op}`} data-testid="timeline-entry" data-version={entry.version}>
      <p class="timeline-head">
        <strong>{VERB[entry.op]}</strong> by <span class={`actor actor-${entry.actor.kind}`}>{actorLabel(entry.actor)}</span>
        {' · '}
        <ExactTime iso={entry.at} />
        <span class="muted"> · version {entry.version}</span>
      </p>
      {entry.op === 'insert' && fields.length > 0 && (
        <p class="timeline-created">
          {fields.map(([field, , after], i) => (
            <span key={field}>
              {i > 0 && ' · '}
              <span class="change-field">{fieldLabel(field)}:</span> {fieldValue(field, after)}
            </span>
          ))}
        </p>
      )}
      {entry.op === 'update' && fields.length > 0 && (
        <ul class="timeline-changes">
          {fields.map(([field, before, after]) => (
            <li key={field}>
              <span class="change-field">{fieldLabel(field)}:</span> <del>{fieldValue(field, before)}</del> →{' '}
              <ins>{fieldValue(field, after)}</ins>
            </li>
          ))}
        </ul>
      )}
      {entry.reason && <p class="timeline-reason">Reason: {entry.reason}</p>}
    </li>
  );
}
