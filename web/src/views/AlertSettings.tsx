import { useState } from 'preact/hooks';
import { allowNotifications, readAlertSettings, type AlertSettings as Settings, saveAlertSettings } from '../new-order-alerts.ts';

/**
 * The header's "Alerts" menu: a sound and/or a desktop notification for new orders while the tab is
 * hidden (the tab title always counts them). Off by default; the browser asks for the notification
 * permission only when that box is checked.
 */
export function AlertSettings() {
  const [open, setOpen] = useState(false);
  const [settings, setSettings] = useState<Settings>(readAlertSettings);
  const [note, setNote] = useState('');
  const change = (next: Settings) => {
    setSettings(next);
    saveAlertSettings(next);
  };
  return (
    <details class="alert-settings" open={open} onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary>Alerts</summary>
      <div class="alert-settings-body">
        <p class="muted">While this tab is hidden, its title counts new orders. Also:</p>
        <div class="check">
          <input
            id="alert-sound"
            type="checkbox"
            checked={settings.sound}
            onChange={(e) => change({ ...settings, sound: e.currentTarget.checked })}
          />
          <label for="alert-sound">Play a sound</label>
        </div>
        <div class="check">
          <input
            id="alert-desktop"
            type="checkbox"
            checked={settings.desktop}
            onChange={async (e) => {
              const on = e.currentTarget.checked;
              if (!on) {
                change({ ...settings, desktop: false });
                return;
              }
              const allowed = await allowNotifications();
              change({ ...settings, desktop: allowed });
              setNote(allowed ? '' : 'The browser blocks notifications for this page: allow them in its site settings.');
            }}
          />
          <label for="alert-desktop">Show a desktop notification</label>
        </div>
        {note && (
          <p class="field-error" role="alert">
            {note}
          </p>
        )}
      </div>
    </details>
  );
}
