import { useEffect, useState } from 'preact/hooks';

/**
 * The order page's address: `#/orders/<id>`. A fragment, so a reload or a shared link opens the same
 * order without the server knowing the route, and the list's own state is left alone.
 */
export function orderHref(id: number): string {
  return `#/orders/${id}`;
}

export function orderFromHash(hash: string): number | null {
  const m = /^#\/orders\/(\d{1,15})$/.exec(hash);
  const id = m ? Number(m[1]) : Number.NaN;
  return Number.isSafeInteger(id) && id >= 1 ? id : null;
}

/** The order the address names, or null for the list; follows the back button. */
export function useOrderRoute(): number | null {
  const [id, setId] = useState(() => orderFromHash(location.hash));
  useEffect(() => {
    const on = () => setId(orderFromHash(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return id;
}
