import { firstDirection } from '../../../src/contract/sort-order.ts';
import type { Dashboard, SortKey } from '../dashboard.ts';
import { COLUMNS } from './order-columns.ts';

/**
 * The table's header: a sort button per column. The first click on a column sorts it the natural way
 * (names A→Z, numbers largest first, times newest first: contract/sort-order.ts); the next reverses.
 * Hidden on a phone, where rows are cards and TableControls.tsx offers the same sort as a select.
 */
export function OrdersHead({ dashboard, actions }: { dashboard: Dashboard; actions: boolean }) {
  const { query } = dashboard;
  const setSort = (key: SortKey) =>
    void dashboard.setQuery({ sort: key, dir: query.sort === key ? (query.dir === 'asc' ? 'desc' : 'asc') : firstDirection(key) });
  return (
    <thead>
      <tr>
        {COLUMNS.map((c) => (
          <th
            key={c.key}
            scope="col"
            class={c.numeric ? 'num' : undefined}
            aria-sort={query.sort === c.key ? (query.dir === 'asc' ? 'ascending' : 'descending') : undefined}
          >
            <button type="button" class="sort" onClick={() => setSort(c.key)}>
              {c.label}
              <span aria-hidden="true" class="sort-mark">
                {query.sort === c.key ? (query.dir === 'asc' ? '▲' : '▼') : ''}
              </span>
            </button>
          </th>
        ))}
        {/* Not sortable, so not in COLUMNS: the server sorts by no free text but names. */}
        <th scope="col" class="notes">
          Notes
        </th>
        {actions && (
          <th scope="col">
            <span class="visually-hidden">Actions</span>
          </th>
        )}
      </tr>
    </thead>
  );
}
