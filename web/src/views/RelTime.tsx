import { useMemo } from 'preact/hooks';
import { relativeTime } from '../format.ts';
import { exactTimes } from '../history-format.ts';
import { useNow } from './hooks.ts';

/**
 * A time as "5 min ago", with the exact local time and UTC on hover (the order page shows the same).
 * Re-rendered by the shared one-second tick, but only touches the DOM when its text changes; the
 * exact form is formatted once per time, not on every tick of every row.
 */
export function RelTime({ iso }: { iso: string }) {
  const now = useNow();
  const title = useMemo(() => {
    const t = exactTimes(iso);
    return `${t.local} (${t.utc})`;
  }, [iso]);
  return (
    <time dateTime={iso} title={title}>
      {relativeTime(Date.parse(iso), now)}
    </time>
  );
}
