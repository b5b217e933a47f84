import type { Dashboard } from '../dashboard.ts';
import { formatCount } from '../format.ts';

interface Props {
  dashboard: Dashboard;
  /** Rows of this page the table shows (after the "new orders" hold). */
  shown: number;
  /** Rows in the DOM so far; fewer than `shown` offers "Show more rows". */
  visible: number;
  total: number;
  filtering: boolean;
  onShowMore: () => void;
}

/** Under the table: where this page is in the view ("1–100 of 730"), more rows, the export and the pager. */
export function OrdersFoot({ dashboard, shown, visible, total, filtering, onShowMore }: Props) {
  const page = dashboard.view.page;
  const matching = filtering ? 'matching ' : '';
  return (
    <div class="orders-foot">
      <span id="orders-count" class="muted" data-testid="orders-count">
        {dashboard.loading && shown === 0
          ? 'Loading orders…'
          : shown === 0
            ? `0 of ${formatCount(total)} ${matching}orders`
            : `${formatCount(page.offset + 1)}–${formatCount(page.offset + shown)} of ${formatCount(total)} ${matching}orders`}
      </span>
      <span class="foot-actions">
        {visible < shown && (
          <button type="button" onClick={onShowMore}>
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
  );
}
