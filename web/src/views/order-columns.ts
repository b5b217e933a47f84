import type { SortKey } from '../../../src/contract/sort-order.ts';

/**
 * The orders table's sortable columns, in the order they are shown: the desktop header (OrdersHead.tsx)
 * and the phone's "Sort by" (TableControls.tsx) offer the same choices. Each is a sort key of the
 * server's (src/contract/sort-order.ts), which also says which way a first click sorts.
 */
export const COLUMNS: { key: SortKey; label: string; numeric?: boolean }[] = [
  { key: 'id', label: 'Order', numeric: true },
  { key: 'customer_name', label: 'Customer' },
  { key: 'product_name', label: 'Product' },
  { key: 'quantity', label: 'Qty', numeric: true },
  { key: 'total_cents', label: 'Total', numeric: true },
  { key: 'status', label: 'Status' },
  { key: 'created_at', label: 'Created' },
  { key: 'updated_at', label: 'Updated' },
];
