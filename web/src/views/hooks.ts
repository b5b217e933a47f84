import { useEffect, useReducer, useState } from 'preact/hooks';
import type { Dashboard } from '../dashboard.ts';

/** Re-renders the component when the dashboard changes (at most once per animation frame). */
export function useDashboard(dashboard: Dashboard): number {
  const [, force] = useReducer((n: number, _: undefined) => n + 1, 0);
  useEffect(() => {
    const unsubscribe = dashboard.onChange(() => force(undefined));
    // Effects run after the first paint: a change (the connection going live, say) may have come in
    // between, before anyone listened.
    force(undefined);
    return unsubscribe;
  }, [dashboard]);
  return dashboard.store.revision;
}

const tickListeners = new Set<(now: number) => void>();
let tickTimer: ReturnType<typeof setInterval> | undefined;

/** The current time, updated every second while some component uses it. */
export function useNow(): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    tickListeners.add(setNow);
    tickTimer ??= setInterval(() => {
      const t = Date.now();
      for (const l of tickListeners) l(t);
    }, 1000);
    return () => {
      tickListeners.delete(setNow);
      if (tickListeners.size === 0) {
        clearInterval(tickTimer);
        tickTimer = undefined;
      }
    };
  }, []);
  return now;
}

/** Whether the OS asks for a dark scheme (for the chart, which draws on a canvas). */
export function useDarkMode(): boolean {
  const [dark, setDark] = useState(() => matchMedia('(prefers-color-scheme: dark)').matches);
  useEffect(() => {
    const mq = matchMedia('(prefers-color-scheme: dark)');
    const on = () => setDark(mq.matches);
    mq.addEventListener('change', on);
    return () => mq.removeEventListener('change', on);
  }, []);
  return dark;
}
