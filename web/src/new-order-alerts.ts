/**
 * Optional alerts for new orders while the tab is hidden: a short tone and/or a desktop notification.
 * Both are off until the operator turns them on (kept on this device); the browser's permission for
 * notifications is asked only then, never on load. The tone is synthesised (Web Audio), so the page
 * needs no media file and its CSP nothing more.
 */
export interface AlertSettings {
  sound: boolean;
  desktop: boolean;
}

const KEY = 'orders-dashboard.alerts.v1';

export function readAlertSettings(storage: Storage = localStorage): AlertSettings {
  try {
    const saved = JSON.parse(storage.getItem(KEY) ?? '{}') as Partial<AlertSettings>;
    return { sound: saved.sound === true, desktop: saved.desktop === true };
  } catch {
    return { sound: false, desktop: false };
  }
}

export function saveAlertSettings(settings: AlertSettings, storage: Storage = localStorage): void {
  storage.setItem(KEY, JSON.stringify(settings));
}

/** Asks for the permission (only from a click on "desktop notification"); resolves to whether it was given. */
export async function allowNotifications(): Promise<boolean> {
  if (!('Notification' in window)) return false;
  if (Notification.permission === 'granted') return true;
  if (Notification.permission === 'denied') return false;
  return (await Notification.requestPermission()) === 'granted';
}

let audio: AudioContext | null = null;

function tone(): void {
  try {
    audio ??= new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.35);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.35);
  } catch {
    // No audio output: the title still counts.
  }
}

/** `added` new orders arrived while the tab is hidden (`total` since it was hidden). */
export function alertNewOrders(added: number, total: number, settings: AlertSettings = readAlertSettings()): void {
  if (added <= 0) return;
  if (settings.sound) tone();
  if (settings.desktop && 'Notification' in window && Notification.permission === 'granted') {
    new Notification('Orders', { body: `${total} new ${total === 1 ? 'order' : 'orders'}`, tag: 'new-orders' });
  }
}
