import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { foldCase } from '../../../src/contract/fold.ts';
import type { Order } from '../../../src/contract/protocol.ts';
import type { Dashboard, Query } from '../dashboard.ts';
import { type Density, readDensity, saveDensity } from '../density.ts';
import { BulkBar } from './BulkBar.tsx';
import { DensityToggle } from './DensityToggle.tsx';
import { OrderRow } from './OrderRow.tsx';
import { OrdersFoot } from './OrdersFoot.tsx';
import { OrdersHead } from './OrdersHead.tsx';
import { COLUMNS } from './order-columns.ts';
import { ResultAnnouncer } from './ResultAnnouncer.tsx';
import { SavedViews } from './SavedViews.tsx';
import { SkeletonRows } from './Skeleton.tsx';
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
 *
 * The header (OrdersHead.tsx), a row or phone card (OrderRow.tsx) and the footer with the pager
 * (OrdersFoot.tsx) are their own files; this one holds the table's state.
 */
const WINDOW = 100;

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
        <OrdersHead dashboard={dashboard} actions={onEdit !== undefined || onDelete !== undefined} />
        <tbody>
          {dashboard.loading && visible.length === 0 && <SkeletonRows columns={COLUMNS.length + 1 + (onEdit || onDelete ? 1 : 0)} />}
          {visible.map((o) => (
            <OrderRow
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
      <OrdersFoot
        dashboard={dashboard}
        shown={shown.length}
        visible={visible.length}
        total={total}
        filtering={filtering}
        onShowMore={() => setWindowSize((n) => n + WINDOW * 5)}
      />
    </section>
  );
}
