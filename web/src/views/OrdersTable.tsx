import { memo } from 'preact/compat';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { foldCase } from '../../../src/contract/fold.ts';
import type { Order } from '../../../src/contract/protocol.ts';
import { firstDirection } from '../../../src/contract/sort-order.ts';
import { NEXT_STATUSES, type OrderStatus } from '../../../src/contract/statuses.ts';
import type { Dashboard, Query, SortKey } from '../dashboard.ts';
import { type Density, readDensity, saveDensity } from '../density.ts';
import { formatCents, formatCount, relativeTime, STATUS_LABEL } from '../format.ts';
import { orderHref } from '../history-route.ts';
import { BulkBar } from './BulkBar.tsx';
import { askToCancel } from './ConfirmCancel.tsx';
import { DensityToggle } from './DensityToggle.tsx';
import { useNow } from './hooks.ts';
import { ResultAnnouncer } from './ResultAnnouncer.tsx';
import { SavedViews } from './SavedViews.tsx';
import { SkeletonRows } from './Skeleton.tsx';
import { StatusMenu } from './StatusMenu.tsx';
import { Filters, PhoneSort } from './TableControls.tsx';

/**
 * The orders: filter by status, search, sort by any column, page through, and per-row actions. Sorting,
 * filtering and paging are the server's (page-window.ts): the table shows one page of the view, in the
 * server's order, and says where it is ("1–100 of 730"). Only a window of the page's rows is in the DOM
 * (grown as the user scrolls), so a 1,000-row page costs what 100 rows do.
 *
 * Live changes land where the sort puts them: a row whose change keeps it on this page moves to its
 * place; one that now sorts onto another page leaves. New orders do not push the table down under a
 * reader: while the page is scrolled or a filter is on, those belonging on this page are counted in a
 * "N new orders" button (announced politely), with the new orders that belong on other pages; "show"
 * reveals them (going to the first page when some are elsewhere).
 */
const WINDOW = 100;
const FLASH_MS = 2000;

export const COLUMNS: { key: SortKey; label: string; numeric?: boolean }[] = [
  { key: 'id', label: 'Order', numeric: true },
  { key: 'customer_name', label: 'Customer' },
  { key: 'product_name', label: 'Product' },
  { key: 'quantity', label: 'Qty', numeric: true },
  { key: 'total_cents', label: 'Total', numeric: true },
  { key: 'status', label: 'Status' },
  { key: 'updated_at', label: 'Updated' },
];

/**
 * The server streams only the view, but the page's own rows (an optimistic edit, an order it created)
 * are checked here too, by the server's rule (src/contract/fold.ts: ASCII letters fold, nothing else).
 */
function matches(query: Query): (o: Order) => boolean {
  const q = foldCase(query.q);
  const statuses = query.statuses.length ? new Set(query.statuses) : null;
  return (o) =>
    (!statuses || statuses.has(o.status)) && (!q || foldCase(o.customer_name).includes(q) || foldCase(o.product_name).includes(q));
}

interface Props {
  dashboard: Dashboard;
  /** Absent when the role may not edit (no status or edit controls are rendered). */
  onEdit?: ((order: Order) => void) | undefined;
  /** Absent when the role may not delete. */
  onDelete?: ((order: Order) => void) | undefined;
}

export function OrdersTable({ dashboard, onEdit, onDelete }: Props) {
  const { query, store } = dashboard;
  const revision = store.revision;
  const filtering = query.statuses.length > 0 || query.q.trim() !== '';
  const [windowSize, setWindowSize] = useState(WINDOW);
  const [atTop, setAtTop] = useState(true);
  /** Orders above this id that are not ours wait behind the "new orders" button. */
  const [revealedTo, setRevealedTo] = useState(Number.POSITIVE_INFINITY);
  const sentinel = useRef<HTMLDivElement>(null);
  const [density, setDensity] = useState<Density>(readDensity);
  const chooseDensity = (d: Density) => {
    setDensity(d);
    saveDensity(d);
  };

  const page = dashboard.view.page;
  // The store holds this page only (order-store.ts), so this walks at most a page and its arrivals.
  const rows = useMemo(() => {
    const keep = matches(query);
    const out: Order[] = [];
    for (const id of store.orders.keys()) {
      const o = dashboard.displayed(id);
      if (o && keep(o)) out.push(o);
    }
    return out.sort(page.compare);
  }, [revision, query]);

  const maxId = rows.reduce((m, o) => Math.max(m, o.id), 0);
  const live = atTop && !filtering;
  useEffect(() => {
    if (live) setRevealedTo(Number.POSITIVE_INFINITY);
    else if (revealedTo === Number.POSITIVE_INFINITY) setRevealedTo(maxId);
  }, [live, maxId, revealedTo]);

  // A new view's first page is what the reader asked for, not news: only later arrivals wait.
  useEffect(() => {
    setRevealedTo(live ? Number.POSITIVE_INFINITY : maxId);
  }, [dashboard.viewLoads]);

  const held = rows.filter((o) => o.id > revealedTo && !dashboard.ownIds.has(o.id));
  const shown = held.length ? rows.filter((o) => o.id <= revealedTo || dashboard.ownIds.has(o.id)) : rows;
  const newCount = held.length + store.elsewhere;

  useEffect(() => {
    const onScroll = () => {
      const top = window.scrollY < 240;
      setAtTop(top);
      // Back at the top, drop the rows grown while scrolling down: a long table costs layout on every change.
      if (top) setWindowSize(WINDOW);
    };
    window.addEventListener('scroll', onScroll, { passive: true });
    return () => window.removeEventListener('scroll', onScroll);
  }, []);

  useEffect(() => {
    const el = sentinel.current;
    if (!el) return;
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) setWindowSize((n) => n + WINDOW);
    });
    io.observe(el);
    return () => io.disconnect();
  }, []);

  const reveal = () => {
    setRevealedTo(maxId);
    if (store.elsewhere > 0) void dashboard.firstPage();
    document.getElementById('orders-title')?.scrollIntoView({ behavior: 'smooth', block: 'start' });
  };

  // The first click on a column sorts it the natural way (names A→Z, numbers largest first); the next reverses.
  const setSort = (key: SortKey) =>
    void dashboard.setQuery({ sort: key, dir: query.sort === key ? (query.dir === 'asc' ? 'desc' : 'asc') : firstDirection(key) });
  const total = store.viewTotal ?? shown.length;

  const visible = shown.slice(0, windowSize);
  // Bulk selection (operators and up): of the rows shown; a row that leaves the view leaves the selection.
  const [picked, setPicked] = useState<ReadonlySet<number>>(new Set());
  const onSelect = useCallback(
    (id: number, on: boolean) =>
      setPicked((had) => {
        const next = new Set(had);
        if (on) next.add(id);
        else next.delete(id);
        return next;
      }),
    [],
  );
  const selectable = onEdit !== undefined;
  const selected = selectable ? visible.filter((o) => picked.has(o.id)) : [];
  const allPicked = selected.length > 0 && selected.length === visible.length;
  return (
    <section class="panel orders" aria-labelledby="orders-title">
      <div class="orders-head">
        <h2 id="orders-title">Orders</h2>
        <Filters key={dashboard.view.applied} dashboard={dashboard} />
        <PhoneSort dashboard={dashboard} />
        <SavedViews dashboard={dashboard} />
        <DensityToggle density={density} onChange={chooseDensity} />
      </div>
      <div aria-live="polite" class="new-orders-region">
        {newCount > 0 && (
          <button type="button" class="new-orders" onClick={reveal} data-testid="new-orders">
            {newCount} new {newCount === 1 ? 'order' : 'orders'} · show
          </button>
        )}
      </div>
      <ResultAnnouncer
        queryKey={`${query.statuses.join()}|${query.q.trim()}`}
        filtering={filtering}
        loading={dashboard.loading}
        count={store.viewTotal ?? shown.length}
      />
      {selectable && visible.length > 0 && (
        // Above the table, not in its header: on a phone the header is hidden (rows become cards).
        <label class="select-all">
          <input
            type="checkbox"
            class="select-row"
            checked={allPicked}
            indeterminate={selected.length > 0 && !allPicked}
            onChange={(e) => setPicked(e.currentTarget.checked ? new Set(visible.map((o) => o.id)) : new Set())}
          />
          Select all orders shown
        </label>
      )}
      {selectable && <BulkBar dashboard={dashboard} selected={selected} onClear={() => setPicked(new Set())} />}
      <table class={`orders-table ${density}`} aria-busy={dashboard.loading || dashboard.view.paging} aria-describedby="orders-count">
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
            {(onEdit || onDelete) && (
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {dashboard.loading && visible.length === 0 && <SkeletonRows columns={COLUMNS.length + 1 + (onEdit || onDelete ? 1 : 0)} />}
          {visible.map((o) => (
            <Row
              key={o.id}
              order={o}
              pending={dashboard.isPending(o.id)}
              changedAt={store.changedAt.get(o.id) ?? 0}
              rolledBackAt={dashboard.rolledBack.get(o.id) ?? 0}
              dashboard={dashboard}
              onEdit={onEdit}
              onDelete={onDelete}
              selected={picked.has(o.id)}
              onSelect={selectable ? onSelect : undefined}
            />
          ))}
        </tbody>
      </table>
      {!dashboard.loading && shown.length === 0 && (
        <p class="empty">{total > 0 ? 'No orders on this page.' : filtering ? 'No orders match.' : 'No orders yet.'}</p>
      )}
      <div ref={sentinel} class="sentinel" />
      <div class="orders-foot">
        <span id="orders-count" class="muted" data-testid="orders-count">
          {dashboard.loading && shown.length === 0
            ? 'Loading orders…'
            : shown.length === 0
              ? `0 of ${formatCount(total)} ${filtering ? 'matching ' : ''}orders`
              : `${formatCount(page.offset + 1)}–${formatCount(page.offset + shown.length)} of ${formatCount(total)} ${filtering ? 'matching ' : ''}orders`}
        </span>
        <span class="foot-actions">
          {visible.length < shown.length && (
            <button type="button" onClick={() => setWindowSize((n) => n + WINDOW * 5)}>
              Show more rows
            </button>
          )}
          <button type="button" onClick={() => void dashboard.exportCsv()} data-testid="export-csv">
            Export CSV
          </button>
          <nav class="pager" aria-label="Pages">
            <button type="button" onClick={() => void dashboard.previousPage()} disabled={!page.hasPrevious || dashboard.view.paging}>
              Previous
            </button>
            <button type="button" onClick={() => void dashboard.nextPage()} disabled={page.next === null || dashboard.view.paging}>
              Next
            </button>
          </nav>
        </span>
      </div>
    </section>
  );
}

interface RowProps {
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

const Row = memo(function Row({ order, pending, changedAt, rolledBackAt, dashboard, onEdit, onDelete, selected, onSelect }: RowProps) {
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
      <td data-label="Status">
        <span class={`badge badge-${order.status}`} data-testid="status">
          {STATUS_LABEL[order.status]}
        </span>
      </td>
      <td data-label="Updated" class="muted">
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

/** Re-rendered by the shared one-second tick, but only touches the DOM when its text changes. */
function RelTime({ iso }: { iso: string }) {
  const now = useNow();
  const t = Date.parse(iso);
  return <time dateTime={iso}>{relativeTime(t, now)}</time>;
}
