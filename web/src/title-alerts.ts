import { alertNewOrders } from './new-order-alerts.ts';
import type { OrderStore } from './order-store.ts';

/**
 * While the tab is hidden, its title counts the orders created since it was hidden ("(3) Orders · live
 * dashboard"), so an operator working in another tab sees new work arrive; back on the tab, the title
 * is plain again. New means an id above the highest the page held when it was hidden (ids only grow),
 * and still there (an order created and deleted meanwhile is not work). When the count grows, the
 * optional sound and desktop notification follow (new-order-alerts.ts; off unless turned on).
 */
export function watchTitle(store: OrderStore): () => void {
  const plain = document.title;
  let since: number | null = null;
  let counted = 0;
  const highest = () => {
    let max = 0;
    for (const id of store.orders.keys()) if (id > max) max = id;
    return max;
  };
  const update = () => {
    if (since === null) return;
    let n = 0;
    for (const id of store.orders.keys()) if (id > since) n++;
    document.title = n ? `(${n}) ${plain}` : plain;
    if (n > counted) alertNewOrders(n - counted, n);
    counted = n;
  };
  const onVisibility = () => {
    if (document.visibilityState === 'hidden') {
      since = highest();
      counted = 0;
    } else {
      since = null;
      document.title = plain;
    }
  };
  const unsubscribe = store.subscribe(update);
  document.addEventListener('visibilitychange', onVisibility);
  return () => {
    unsubscribe();
    document.removeEventListener('visibilitychange', onVisibility);
    document.title = plain;
  };
}
