import { useEffect, useRef, useState } from 'preact/hooks';
import type { Order } from '../../../src/protocol.ts';
import type { Dashboard } from '../dashboard.ts';
import { focusInRow } from './StatusMenu.tsx';

/**
 * "Cancelled" is final: the page asks first, with an optional reason. The reason goes with the status in
 * one PATCH (`reason`), and the server keeps it in the order's history, where its timeline shows it
 * beside who cancelled and when; the order's notes stay the customer's.
 *
 * Any row asks through `askToCancel`; the one dialog (rendered once by the App) answers.
 */
let asked: ((order: Order) => void) | null = null;

export function askToCancel(order: Order): void {
  asked?.(order);
}

/** The server takes a reason of up to 500 characters. */
export const MAX_REASON = 500;

export function cancelPatch(reason: string): { status: 'cancelled'; reason?: string } {
  const why = reason.trim();
  return why ? { status: 'cancelled', reason: why.slice(0, MAX_REASON) } : { status: 'cancelled' };
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
    if (id !== undefined)
      setTimeout(() => focusInRow(document.querySelector(`tr[data-id="${id}"]`) ?? document.querySelector('.order-actions')), 50);
  };

  return (
    <dialog ref={ref} class="dialog" aria-labelledby="cancel-title" onClose={close} onCancel={close}>
      {order && (
        <form
          method="dialog"
          onSubmit={(e) => {
            e.preventDefault();
            const current = dashboard.displayed(order.id) ?? order;
            void dashboard.update(current, cancelPatch(reason));
            close();
          }}
        >
          <h2 id="cancel-title">Cancel order #{order.id}?</h2>
          <p>
            {order.customer_name} · {order.product_name}. A cancelled order cannot be undone: it can no longer move to any other status.
          </p>
          <div class="field">
            <label for="cancel-reason">Reason (optional)</label>
            <textarea id="cancel-reason" rows={2} maxLength={MAX_REASON} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
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
