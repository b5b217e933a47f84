import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { ORDER_STATUSES } from '../../../src/contract/statuses.ts';
import 'uplot/dist/uPlot.min.css';
import type { Dashboard } from '../dashboard.ts';
import { formatCents, formatCount, STATUS_LABEL } from '../format.ts';
import { useDarkMode, useNow } from './hooks.ts';
import { Skeleton } from './Skeleton.tsx';

const MINUTE = 60_000;

/** Cards per status with revenue, the status mix, and orders per minute over the last hour. */
export function Summary({ dashboard }: { dashboard: Dashboard }) {
  const { summary, summaryLoaded } = dashboard.store;
  const total = ORDER_STATUSES.reduce((n, s) => n + summary.count[s], 0);
  // Revenue counts what is not cancelled.
  const revenue = ORDER_STATUSES.filter((s) => s !== 'cancelled').reduce((n, s) => n + summary.cents[s], 0n);
  return (
    <section class="summary" aria-label="Summary" aria-busy={!summaryLoaded}>
      <div class="cards">
        <div class="card card-total">
          <span class="card-label">Orders</span>
          {summaryLoaded ? (
            <span class="card-value" data-testid="total-orders">
              {formatCount(total)}
            </span>
          ) : (
            <Skeleton class="card-value" />
          )}
          <span class="card-sub">{summaryLoaded ? `Revenue ${formatCents(revenue)}` : <Skeleton width="70%" />}</span>
        </div>
        {ORDER_STATUSES.map((s) => (
          <div key={s} class={`card card-${s}`}>
            <span class="card-label">
              <span class={`dot dot-${s}`} aria-hidden="true" />
              {STATUS_LABEL[s]}
            </span>
            {summaryLoaded ? (
              <span class="card-value" data-testid={`count-${s}`}>
                {formatCount(summary.count[s])}
              </span>
            ) : (
              <Skeleton class="card-value" />
            )}
            <span class="card-sub">{summaryLoaded ? formatCents(summary.cents[s]) : <Skeleton width="60%" />}</span>
          </div>
        ))}
      </div>
      <div class="charts">
        <div class="panel chart-panel">
          <h2 id="per-minute-title">Orders per minute, last hour</h2>
          <PerMinuteChart dashboard={dashboard} />
        </div>
        <div class="panel">
          <h2 id="mix-title">Status mix</h2>
          {summaryLoaded ? <StatusMix counts={summary.count} total={total} /> : <Skeleton class="mix-skeleton" />}
        </div>
      </div>
    </section>
  );
}

function StatusMix({ counts, total }: { counts: Record<string, number>; total: number }) {
  return (
    <div>
      <div class="mix-bar" role="img" aria-label={ORDER_STATUSES.map((s) => `${STATUS_LABEL[s]} ${counts[s]}`).join(', ')}>
        {ORDER_STATUSES.map((s) =>
          counts[s] ? (
            <span key={s} class={`mix-seg dot-${s}`} style={{ width: `${((counts[s] ?? 0) / Math.max(1, total)) * 100}%` }} />
          ) : null,
        )}
      </div>
      <ul class="mix-legend">
        {ORDER_STATUSES.map((s) => (
          <li key={s}>
            <span class={`dot dot-${s}`} aria-hidden="true" />
            {STATUS_LABEL[s]} <strong>{total ? Math.round(((counts[s] ?? 0) / total) * 100) : 0}%</strong>
          </li>
        ))}
      </ul>
    </div>
  );
}

function seriesData(perMinute: Map<number, number>, now: number): uPlot.AlignedData {
  const last = Math.floor(now / MINUTE) * MINUTE;
  const xs: number[] = [];
  const ys: number[] = [];
  for (let m = last - 59 * MINUTE; m <= last; m += MINUTE) {
    xs.push(m / 1000);
    ys.push(perMinute.get(m) ?? 0);
  }
  return [xs, ys];
}

function PerMinuteChart({ dashboard }: { dashboard: Dashboard }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const dark = useDarkMode();
  const now = useNow();
  const minute = Math.floor(now / MINUTE);
  const perMinute = dashboard.store.summary.perMinute;

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const css = getComputedStyle(document.documentElement);
    const ink = css.getPropertyValue('--muted').trim() || (dark ? '#aaa' : '#555');
    const grid = css.getPropertyValue('--line').trim() || (dark ? '#333' : '#eee');
    const accent = css.getPropertyValue('--accent').trim() || '#4f6bed';
    const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const u = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: 160,
        legend: { show: false },
        cursor: { show: true, points: { show: false } },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.2))] } },
        axes: [axis, { ...axis, size: 36 }],
        series: [
          {},
          {
            label: 'Orders',
            stroke: accent,
            fill: `${accent}33`,
            width: 2,
            paths: uPlot.paths.bars?.({ size: [0.7, 24] }),
            points: { show: false },
          },
        ],
      },
      seriesData(dashboard.store.summary.perMinute, Date.now()),
      el,
    );
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: 160 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [dark, dashboard]);

  // revision changes at most once a frame; the minute rolls the window forward.
  const revision = dashboard.store.revision;
  useEffect(() => {
    plot.current?.setData(seriesData(perMinute, Date.now()));
  }, [revision, minute, perMinute]);

  const counts = seriesData(perMinute, now)[1] as number[];
  const lastHour = counts.reduce((a, b) => a + b, 0);
  return (
    <div>
      <div
        ref={host}
        class="chart"
        role="img"
        aria-label={`${lastHour} orders created in the last hour; ${counts.at(-1) ?? 0} this minute`}
      />
    </div>
  );
}
