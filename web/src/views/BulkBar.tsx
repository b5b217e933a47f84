import { useEffect, useRef, useState } from 'preact/hooks';
import { canMove } from '../../../src/orders/transitions.ts';
import type { Order, OrderStatus } from '../../../src/protocol.ts';
import { type BulkOutcome, bulkTargets, moveAll } from '../bulk-status.ts';
import type { Dashboard } from '../dashboard.ts';
import { STATUS_LABEL } from '../format.ts';
import { STATUSES } from '../order-store.ts';
import { MAX_REASON } from './ConfirmCancel.tsx';

/**
 * What to do with the selected rows: a status move, asked once (with an optional reason for a cancel),
 * then one line per order saying what the server did with it (bulk-status.ts). Rendered only for roles
 * that may change orders; the server refuses the others anyway.
 */
export function BulkBar({ dashboard, selected, onClear }: { dashboard: Dashboard; selected: Order[]; onClear: () => void }) {
  const targets = bulkTargets(selected, STATUSES);
  const [to, setTo] = useState<OrderStatus | ''>('');
  const [asking, setAsking] = useState<{ orders: Order[]; to: OrderStatus } | null>(null);
  const choice = to && targets.includes(to) ? to : '';
  if (selected.length === 0 && !asking) return null;
  return (
    <section class="bulk-bar" aria-label="Selected orders" data-testid="bulk-bar">
      <span class="bulk-count" aria-live="polite">
        {selected.length} selected
      </span>
      <label class="bulk-target">
        <span>Move selected to</span>
        <select value={choice} onChange={(e) => setTo(e.currentTarget.value as OrderStatus | '')}>
          <option value="">Choose a status…</option>
          {targets.map((s) => (
            <option key={s} value={s}>
              {STATUS_LABEL[s]}
            </option>
          ))}
        </select>
      </label>
      <button
        type="button"
        class="primary"
        disabled={!choice || !dashboard.online}
        onClick={() => choice && setAsking({ orders: selected, to: choice })}
      >
        Move…
      </button>
      <button type="button" onClick={onClear}>
        Clear selection
      </button>
      {!dashboard.online && <span class="muted">Bulk moves need the server's answer for each order: wait until Live.</span>}
      <BulkDialog
        dashboard={dashboard}
        asking={asking}
        onClose={(done) => {
          setAsking(null);
          if (done) {
            setTo('');
            onClear();
          }
        }}
      />
    </section>
  );
}

function BulkDialog({
  dashboard,
  asking,
  onClose,
}: {
  dashboard: Dashboard;
  asking: { orders: Order[]; to: OrderStatus } | null;
  onClose: (done: boolean) => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState('');
  const [outcomes, setOutcomes] = useState<BulkOutcome[] | null>(null);
  const [running, setRunning] = useState(false);

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (asking && !dialog.open) {
      setReason('');
      setOutcomes(null);
      dialog.showModal();
    }
    if (!asking && dialog.open) dialog.close();
  }, [asking]);

  const close = () => {
    if (running) return;
    onClose(outcomes !== null);
  };

  const run = async () => {
    if (!asking) return;
    setRunning(true);
    setOutcomes([]);
    const all = await moveAll(asking.orders, asking.to, asking.to === 'cancelled' ? reason : '', (o) => {
      // Shown at once; the stream brings the same versions, applied only once (by version).
      if (o.kind === 'moved') dashboard.store.put(o.order);
      else if (o.kind === 'refused' && o.current) dashboard.store.put(o.current);
      setOutcomes((had) => [...(had ?? []), o]);
    });
    setOutcomes(all);
    setRunning(false);
  };

  const label = asking ? STATUS_LABEL[asking.to] : '';
  const blocked = asking ? asking.orders.filter((o) => !canMove(o.status, asking.to) || o.status === asking.to) : [];
  const moved = outcomes?.filter((o) => o.kind === 'moved').length ?? 0;
  const n = asking?.orders.length ?? 0;
  const byId = new Map(asking?.orders.map((o) => [o.id, o]) ?? []);
  return (
    <dialog
      ref={ref}
      class="dialog bulk-dialog"
      aria-labelledby="bulk-title"
      onClose={close}
      onCancel={(e) => (running ? e.preventDefault() : close())}
    >
      {asking &&
        (outcomes === null ? (
          <form
            method="dialog"
            onSubmit={(e) => {
              e.preventDefault();
              void run();
            }}
          >
            <h2 id="bulk-title">
              Move {n} {n === 1 ? 'order' : 'orders'} to {label}?
            </h2>
            <p>
              Each order is moved on its own, from the version you see.
              {blocked.length > 0 &&
                ` ${blocked.length} of them cannot move to ${label} from their status (${blocked.map((o) => `#${o.id}`).join(', ')}): the server will refuse them, and the others still move.`}
              {asking.to === 'cancelled' && ' A cancelled order cannot be undone.'}
            </p>
            {asking.to === 'cancelled' && (
              <div class="field">
                <label for="bulk-reason">Reason (optional)</label>
                <textarea
                  id="bulk-reason"
                  rows={2}
                  maxLength={MAX_REASON}
                  value={reason}
                  onInput={(e) => setReason(e.currentTarget.value)}
                />
              </div>
            )}
            <div class="actions">
              <button type="button" onClick={close}>
                Keep them
              </button>
              <button type="submit" class={`primary ${asking.to === 'cancelled' ? 'danger' : ''}`}>
                Move {n} {n === 1 ? 'order' : 'orders'}
              </button>
            </div>
          </form>
        ) : (
          <div>
            <h2 id="bulk-title">
              {running ? `Moving ${n} ${n === 1 ? 'order' : 'orders'} to ${label}…` : `Moved ${moved} of ${n} to ${label}`}
            </h2>
            <p role="status" data-testid="bulk-summary">
              {running ? `${outcomes.length} of ${n} answered` : `${moved} moved, ${n - moved} not moved.`}
            </p>
            <ul class="bulk-results" data-testid="bulk-results">
              {outcomes.map((o) => (
                <li key={o.id} class={`bulk-${o.kind}`} data-id={o.id}>
                  <strong>
                    #{o.id} {byId.get(o.id)?.customer_name}
                  </strong>
                  {': '}
                  {o.kind === 'moved' ? `moved to ${label}` : o.kind === 'refused' ? `refused: ${o.detail}` : o.detail}
                </li>
              ))}
            </ul>
            <div class="actions">
              <button type="button" class="primary" onClick={close} disabled={running}>
                Close
              </button>
            </div>
          </div>
        ))}
    </dialog>
  );
}
