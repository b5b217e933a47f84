import { useEffect, useState } from 'preact/hooks';
import { firstDirection } from '../../../src/contract/sort-order.ts';
import { ORDER_STATUSES, type OrderStatus } from '../../../src/contract/statuses.ts';
import type { Dashboard, SortKey } from '../dashboard.ts';
import { STATUS_LABEL } from '../format.ts';
import { COLUMNS } from './order-columns.ts';

/** The table's view controls: search, status chips, and (on a phone, where the header is hidden) the sort. */
/** On a phone the table's header is hidden (rows are cards), so the sort has its own control there. */
export function PhoneSort({ dashboard }: { dashboard: Dashboard }) {
  const { query } = dashboard;
  return (
    <div class="phone-sort">
      <label>
        Sort by{' '}
        <select
          value={query.sort}
          onChange={(e) => {
            const sort = e.currentTarget.value as SortKey;
            void dashboard.setQuery({ sort, dir: firstDirection(sort) });
          }}
        >
          {COLUMNS.map((c) => (
            <option key={c.key} value={c.key}>
              {c.label}
            </option>
          ))}
        </select>
      </label>
      <button type="button" onClick={() => void dashboard.setQuery({ dir: query.dir === 'asc' ? 'desc' : 'asc' })}>
        {query.dir === 'asc' ? 'Ascending' : 'Descending'}
        <span class="visually-hidden"> (reverse the order)</span>
      </button>
    </div>
  );
}

export function Filters({ dashboard }: { dashboard: Dashboard }) {
  const { query } = dashboard;
  const [text, setText] = useState(query.q);
  useEffect(() => {
    const t = setTimeout(() => void dashboard.setQuery({ q: text }), 200);
    return () => clearTimeout(t);
  }, [text, dashboard]);
  const toggle = (s: OrderStatus) => {
    const on = query.statuses.includes(s);
    void dashboard.setQuery({
      statuses: on ? query.statuses.filter((x) => x !== s) : ORDER_STATUSES.filter((x) => x === s || query.statuses.includes(x)),
    });
  };
  return (
    <div class="filters">
      <label class="search">
        <span class="visually-hidden">Search customer or product</span>
        <input type="search" placeholder="Search customer or product" value={text} onInput={(e) => setText(e.currentTarget.value)} />
      </label>
      <fieldset class="status-filter">
        <legend class="visually-hidden">Show statuses</legend>
        {ORDER_STATUSES.map((s) => (
          <label key={s} class={`chip ${query.statuses.includes(s) ? 'on' : ''}`}>
            <input type="checkbox" checked={query.statuses.includes(s)} onChange={() => toggle(s)} />
            <span class={`dot dot-${s}`} aria-hidden="true" />
            {STATUS_LABEL[s]}
          </label>
        ))}
      </fieldset>
    </div>
  );
}
