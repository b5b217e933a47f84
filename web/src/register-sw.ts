/**
 * Registers the service worker (sw/sw.ts, served at /sw.js) once the page has loaded, so that a reload
 * without a network still opens the dashboard. Where service workers are unavailable (plain http on
 * another host than localhost, some private modes) the page works as before, only not after an offline
 * reload.
 */
export function registerServiceWorker(): void {
  if (!('serviceWorker' in navigator)) return;
  const register = () => {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((err: unknown) => {
      console.warn('service worker not registered:', (err as Error).message);
    });
  };
  if (document.readyState === 'complete') register();
  else window.addEventListener('load', register, { once: true });
}
