/**
 * How tightly the orders table is set: 'comfortable' (the default) or 'compact', for operators who want
 * more rows on screen. A preference of this device, like the alert settings, so it is kept in localStorage.
 */
export type Density = 'comfortable' | 'compact';

const KEY = 'orders-dashboard.density.v1';

export function readDensity(storage: Storage = localStorage): Density {
  try {
    return storage.getItem(KEY) === 'compact' ? 'compact' : 'comfortable';
  } catch {
    return 'comfortable';
  }
}

export function saveDensity(density: Density, storage: Storage = localStorage): void {
  try {
    storage.setItem(KEY, density);
  } catch {
    // Storage full or refused (private mode): the choice holds for this page only.
  }
}
