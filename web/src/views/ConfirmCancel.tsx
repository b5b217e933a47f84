import { useEffect, useRef, useState } from 'preact/hooks';
import type { Order } from '../../../src/contract/protocol.ts';
import type { Dashboard } from '../dashboard.ts';
import { focusInRow } from './StatusMenu.tsx';

/**
 * "Cancelled" is final: the page asks first, with an optional reason. Until orders have a timeline of
 * their own, the reason goes into the order's notes ("Cancelled: …") in the same request as the status,
 * so it is one change, visible to everyone and kept with the order.
 *
 * Any row asks through `askToCancel`; the one dialog (rendered once by the App) answers.
 */
let asked: ((order: Order) => void) | null = null;

export function askToCancel(order: Order): void {
  asked?.(order);
}

const MAX_NOTES = 10_000;

function cancelPatch(order: Order, reason: string): { status: 'cancelled'; notes?: string } {
  const why = reason.trim();
  if (!why) return { status: 'cancelled' };
  const line = `Cancelled: ${why}`;
  const notes = order.notes ? `${order.notes}\n${line}` : line;
  return { status: 'cancelled', notes: notes.slice(-MAX_NOTES) };
}

export function ConfirmCancel({ dashboard }: { dashboard: Dashboard }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [order, setOrder] = useState<Order | null>(null);
  const [reason, setReason] = useState('');

  useEffect(() => {
    asked = (o) => {
      setReason('');
      setOrder(o);
    };
    return () => {
      asked = null;
    };
  }, []);

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (order && !dialog.open) dialog.showModal();
    if (!order && dialog.open) dialog.close();
  }, [order]);

  const close = () => {
    const id = order?.id;
    setOrder(null);
    if (id !== undefined) setTimeout(() => focusInRow(document.querySelector(`tr[data-id="${id}"]`)), 50);
  };

  return (
    <dialog ref={ref} class="dialog" aria-labelledby="cancel-title" onClose={close} onCancel={close}>
      {order && (
        <form
          method="dialog"
          onSubmit={(e) => {
            e.preventDefault();
            const current = dashboard.displayed(order.id) ?? order;
            void dashboard.update(current, cancelPatch(current, reason));
            close();
          }}
        >
          <h2 id="cancel-title">Cancel order #{order.id}?</h2>
          <p>
            {order.customer_name} · {order.product_name}. A cancelled order cannot be undone: it can no longer move to any other status.
          </p>
          <div class="field">
            <label for="cancel-reason">Reason (optional)</label>
            <textarea id="cancel-reason" rows={2} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
          </div>
          <div class="actions">
            <button type="button" onClick={close}>
              Keep order
            </button>
            <button type="submit" class="primary danger">
              Cancel order
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}
