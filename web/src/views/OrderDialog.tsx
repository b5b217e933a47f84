import { useEffect, useRef, useState } from 'preact/hooks';
import type { Order } from '../../../src/contract/protocol.ts';
import { ORDER_STATUSES, type OrderStatus } from '../../../src/contract/statuses.ts';
import type { FieldError, OrderCreate, OrderPatch } from '../api.ts';
import type { Dashboard } from '../dashboard.ts';
import { currencyCode, STATUS_LABEL } from '../format.ts';
import { formatMoneyInput, parseMoneyInput } from '../money-input.ts';

/**
 * Create and edit in one modal <dialog> (focus is trapped and restored by the browser). Messages come
 * from the server's problem+json `errors`, shown under the field they name; the form does no
 * validation of its own beyond turning text into numbers, so the API stays the one source of rules.
 * Amounts are read and shown the way the page's locale writes them (money-input.ts).
 */
type Fields = { customer_name: string; product_name: string; quantity: string; total: string; notes: string; status: OrderStatus };

const LABELS: Record<string, string> = {
  customer_name: 'Customer',
  product_name: 'Product',
  quantity: 'Quantity',
  total_cents: 'Total',
  notes: 'Notes',
  status: 'Status',
};

function fieldsOf(order: Order | null): Fields {
  return {
    customer_name: order?.customer_name ?? '',
    product_name: order?.product_name ?? '',
    quantity: String(order?.quantity ?? 1),
    total: order ? formatMoneyInput(order.total_cents) : '',
    notes: order?.notes ?? '',
    status: order?.status ?? 'pending',
  };
}

function toBody(f: Fields): { body: OrderCreate; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const body: Record<string, unknown> = {};
  if (f.customer_name.trim()) body.customer_name = f.customer_name.trim();
  if (f.product_name.trim()) body.product_name = f.product_name.trim();
  if (f.quantity.trim()) {
    const n = Number(f.quantity);
    if (Number.isInteger(n)) body.quantity = n;
    else errors.push({ field: 'quantity', message: 'must be a whole number' });
  }
  if (f.total.trim()) {
    const total = parseMoneyInput(f.total);
    if (total.ok) body.total_cents = total.cents;
    else errors.push({ field: 'total_cents', message: total.message });
  }
  if (f.notes) body.notes = f.notes;
  body.status = f.status;
  return { body: body as unknown as OrderCreate, errors };
}

interface Props {
  dashboard: Dashboard;
  /** null: closed; 'new': create; an order: edit it. */
  target: Order | 'new' | null;
  onClose: () => void;
}

export function OrderDialog({ dashboard, target, onClose }: Props) {
  const ref = useRef<HTMLDialogElement>(null);
  const editing = target !== null && target !== 'new' ? target : null;
  const [fields, setFields] = useState<Fields>(fieldsOf(null));
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [detail, setDetail] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (target !== null) {
      setFields(fieldsOf(editing));
      setErrors([]);
      setDetail('');
      if (!dialog.open) dialog.showModal();
    } else if (dialog.open) dialog.close();
  }, [target, editing]);

  const set = (k: keyof Fields) => (e: Event) => setFields({ ...fields, [k]: (e.currentTarget as HTMLInputElement).value });
  const errorFor = (field: string) => errors.find((e) => e.field === field || e.field === `body.${field}`);

  const submit = async (e: Event) => {
    e.preventDefault();
    const { body, errors: local } = toBody(fields);
    if (local.length) {
      setErrors(local);
      return;
    }
    setBusy(true);
    try {
      if (editing) {
        const patch: OrderPatch = {};
        for (const [k, v] of Object.entries(body) as [keyof OrderCreate, never][]) {
          if (k !== 'status' && editing[k] !== v) patch[k] = v;
        }
        if (!body.customer_name) patch.customer_name = '';
        if (!body.product_name) patch.product_name = '';
        if (Object.keys(patch).length) void dashboard.update(editing, patch);
        onClose();
        return;
      }
      const result = await dashboard.create(body);
      if (result.errors.length || result.detail) {
        setErrors(result.errors);
        setDetail(result.errors.length ? '' : (result.detail ?? ''));
        const first = result.errors[0]?.field.replace(/^body\./, '');
        if (first) document.getElementById(`f-${first === 'total_cents' ? 'total' : first}`)?.focus();
        return;
      }
      onClose();
    } finally {
      setBusy(false);
    }
  };

  const field = (key: keyof Fields, apiField: string, input: preact.JSX.Element) => {
    const err = errorFor(apiField);
    return (
      <div class={`field ${err ? 'invalid' : ''}`}>
        <label for={`f-${key}`}>{apiField === 'total_cents' ? `${LABELS[apiField]} (${currencyCode()})` : LABELS[apiField]}</label>
        {input}
        {err && (
          <p class="field-error" id={`f-${key}-error`} data-testid={`error-${apiField}`}>
            {LABELS[apiField]} {err.message}
          </p>
        )}
      </div>
    );
  };
  const aria = (key: string, apiField: string) => ({
    id: `f-${key}`,
    'aria-invalid': errorFor(apiField) ? true : undefined,
    'aria-describedby': errorFor(apiField) ? `f-${key}-error` : undefined,
  });

  return (
    <dialog ref={ref} class="dialog" aria-labelledby="order-dialog-title" onClose={onClose} onCancel={onClose}>
      <form onSubmit={submit} noValidate>
        <h2 id="order-dialog-title">{editing ? `Edit order #${editing.id}` : 'New order'}</h2>
        {!dashboard.online && !editing && (
          <p class="notice notice-info">You are offline: the order will be queued and sent when the connection is back.</p>
        )}
        {field(
          'customer_name',
          'customer_name',
          <input
            {...aria('customer_name', 'customer_name')}
            value={fields.customer_name}
            onInput={set('customer_name')}
            autoComplete="off"
            aria-required="true"
          />,
        )}
        {field(
          'product_name',
          'product_name',
          <input
            {...aria('product_name', 'product_name')}
            value={fields.product_name}
            onInput={set('product_name')}
            autoComplete="off"
            aria-required="true"
          />,
        )}
        <div class="field-row">
          {field(
            'quantity',
            'quantity',
            <input {...aria('quantity', 'quantity')} inputMode="numeric" value={fields.quantity} onInput={set('quantity')} />,
          )}
          {field(
            'total',
            'total_cents',
            <input
              {...aria('total', 'total_cents')}
              inputMode="decimal"
              placeholder={formatMoneyInput(0)}
              value={fields.total}
              onInput={set('total')}
            />,
          )}
        </div>
        {!editing &&
          field(
            'status',
            'status',
            <select {...aria('status', 'status')} value={fields.status} onChange={set('status')}>
              {ORDER_STATUSES.map((s) => (
                <option key={s} value={s}>
                  {STATUS_LABEL[s]}
                </option>
              ))}
            </select>,
          )}
        {field('notes', 'notes', <textarea {...aria('notes', 'notes')} rows={3} value={fields.notes} onInput={set('notes')} />)}
        {detail && (
          <p class="field-error" role="alert">
            {detail}
          </p>
        )}
        <div class="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            {editing ? 'Save changes' : dashboard.online ? 'Create order' : 'Queue order'}
          </button>
        </div>
      </form>
    </dialog>
  );
}

export function ConfirmDelete({ order, onConfirm, onClose }: { order: Order | null; onConfirm: (o: Order) => void; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (order && !dialog.open) dialog.showModal();
    if (!order && dialog.open) dialog.close();
  }, [order]);
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="delete-title" onClose={onClose} onCancel={onClose}>
      {order && (
        <div>
          <h2 id="delete-title">Delete order #{order.id}?</h2>
          <p>
            {order.customer_name} · {order.product_name}. This cannot be undone.
          </p>
          <div class="actions">
            <button type="button" onClick={onClose}>
              Cancel
            </button>
            <button
              type="button"
              class="primary danger"
              onClick={() => {
                onConfirm(order);
                onClose();
              }}
            >
              Delete order
            </button>
          </div>
        </div>
      )}
    </dialog>
  );
}
