import { memo } from 'preact/compat';
import type { Order } from '../../../src/contract/protocol.ts';
import { NEXT_STATUSES, type OrderStatus } from '../../../src/contract/statuses.ts';
import type { Dashboard } from '../dashboard.ts';
import { formatCents, formatCount, STATUS_LABEL } from '../format.ts';
import { orderHref } from '../history-route.ts';
import { askToCancel } from './ConfirmCancel.tsx';
import { RelTime } from './RelTime.tsx';
import { StatusMenu } from './StatusMenu.tsx';

/**
 * One order of the table: a row on a desktop, a card on a phone (styles.css lays the same cells out as
 * a grid, each labelled by its `data-label`), with its selection box and actions. Memoised: a change
 * to one order re-renders its row only.
 */
const FLASH_MS = 2000;

interface Props {
  order: Order;
  pending: boolean;
  changedAt: number;
  rolledBackAt: number;
  dashboard: Dashboard;
  onEdit?: ((order: Order) => void) | undefined;
  onDelete?: ((order: Order) => void) | undefined;
  selected: boolean;
  onSelect?: ((id: number, on: boolean) => void) | undefined;
}

export const OrderRow = memo(function OrderRow({
  order,
  pending,
  changedAt,
  rolledBackAt,
  dashboard,
  onEdit,
  onDelete,
  selected,
  onSelect,
}: Props) {
  const now = Date.now();
  // Alternating animation names restart the flash on every new version without touching layout.
  let flash = '';
  if (rolledBackAt && now - rolledBackAt < FLASH_MS) flash = rolledBackAt % 2 ? 'rollback-a' : 'rollback-b';
  else if (changedAt && now - changedAt < FLASH_MS) flash = order.version % 2 ? 'flash-a' : 'flash-b';
  const next = NEXT_STATUSES[order.status];
  const name = `order #${order.id}`;
  return (
    <tr
      class={`row ${flash} ${pending ? 'pending' : ''} ${selected ? 'selected' : ''}`}
      data-id={order.id}
      data-testid="order-row"
      aria-busy={pending}
    >
      <td data-label="Order" class="num id">
        {onSelect && (
          <input
            type="checkbox"
            class="select-row"
            aria-label={`Select order #${order.id}`}
            checked={selected}
            onChange={(e) => onSelect(order.id, e.currentTarget.checked)}
          />
        )}
        <a href={orderHref(order.id)} aria-label={`Open order #${order.id} and its timeline`}>
          #{order.id}
        </a>
      </td>
      <td data-label="Customer" class="customer">
        {order.customer_name}
      </td>
      <td data-label="Product">{order.product_name}</td>
      <td data-label="Qty" class="num">
        {formatCount(order.quantity)}
      </td>
      <td data-label="Total" class="num">
        {formatCents(order.total_cents)}
      </td>
      <td data-label="Status" class="status-cell">
        <span class={`badge badge-${order.status}`} data-testid="status">
          {STATUS_LABEL[order.status]}
        </span>
      </td>
      <td data-label="Created" class="muted when">
        <RelTime iso={order.created_at} />
      </td>
      <td data-label="Updated" class="muted when">
        <RelTime iso={order.updated_at} />
      </td>
      {/* One line, cut with an ellipsis; the whole text on hover (title) and on the order's page. */}
      <td data-label="Notes" class={`notes ${order.notes ? '' : 'no-notes'}`} title={order.notes || undefined}>
        {order.notes && <span class="notes-text">{order.notes}</span>}
      </td>
      {(onEdit || onDelete) && (
        <td class="row-actions">
          {onEdit && next.length > 0 && (
            <StatusMenu
              id={order.id}
              next={next}
              busy={pending}
              onChoose={(to: OrderStatus) => (to === 'cancelled' ? askToCancel(order) : void dashboard.update(order, { status: to }))}
            />
          )}
          {onEdit && (
            <button type="button" class="ghost" aria-label={`Edit ${name}`} onClick={() => onEdit(order)} disabled={pending}>
              Edit
            </button>
          )}
          {onDelete && (
            <button type="button" class="ghost danger" aria-label={`Delete ${name}`} onClick={() => onDelete(order)} disabled={pending}>
              Delete
            </button>
          )}
        </td>
      )}
    </tr>
  );
});
