/**
 * A grey placeholder where a value will be: while the first load is on its way, the page shows that it
 * is loading, not "0 orders" and "$0.00", which read as facts. Hidden from screen readers; the region
 * around it carries aria-busy and says "Loading".
 */
export function Skeleton({ class: extra = '', width }: { class?: string; width?: string }) {
  return <span class={`skeleton ${extra}`} data-testid="skeleton" aria-hidden="true" style={width ? { width } : undefined} />;
}

/** Placeholder rows for the orders table while its first page loads. */
export function SkeletonRows({ columns, rows = 6 }: { columns: number; rows?: number }) {
  return (
    <>
      {Array.from({ length: rows }, (_, r) => (
        <tr key={r} class="skeleton-row">
          {Array.from({ length: columns }, (_, c) => (
            <td key={c}>
              <Skeleton width={`${50 + ((r * 7 + c * 13) % 40)}%`} />
            </td>
          ))}
        </tr>
      ))}
    </>
  );
}
