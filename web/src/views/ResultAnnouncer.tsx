import { useEffect, useRef, useState } from 'preact/hooks';

/**
 * What a screen reader hears about the table: the result of the reader's own search or filter, once it
 * has loaded and settled (a pause of 800 ms, so typing does not announce every letter), and nothing
 * when rows merely come and go on the stream. Announcing every row count ("103 orders shown", "104
 * orders shown"…) read out a number every second on a busy day; new orders have their own button.
 */
const SETTLE_MS = 800;

export function ResultAnnouncer({
  queryKey,
  filtering,
  loading,
  count,
}: {
  queryKey: string;
  filtering: boolean;
  loading: boolean;
  count: number;
}) {
  const [text, setText] = useState('');
  const latest = useRef(count);
  latest.current = count;
  const first = useRef(true);
  useEffect(() => {
    if (loading) return;
    if (first.current) {
      // The first load is not something the reader asked for: the page's heading says where they are.
      first.current = false;
      return;
    }
    const t = setTimeout(() => {
      const n = latest.current;
      setText(filtering ? `${n} ${n === 1 ? 'order matches' : 'orders match'}` : 'Showing all orders');
    }, SETTLE_MS);
    return () => clearTimeout(t);
  }, [queryKey, loading]);
  return (
    <p class="visually-hidden" aria-live="polite" data-testid="result-announcer">
      {text}
    </p>
  );
}
