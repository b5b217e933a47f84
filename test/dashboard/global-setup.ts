import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CHROMIUM_PATH, ensureDashboardBuilt } from '../helpers/browser.js';

/**
 * Before any test file: web/dist current, and on a fresh machine run as root, Chromium installed from
 * apt (its headless shell). Without root the dashboard tests stop in their beforeAll with a one-line instruction instead.
 */
export default function setup() {
  ensureDashboardBuilt();
  if (!existsSync(CHROMIUM_PATH) && process.getuid?.() === 0 && !process.env.CHROMIUM_PATH) {
    console.log('Chromium is missing: installing it with apt-get (root)…');
    execSync('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell', { stdio: 'inherit' });
  }
}
