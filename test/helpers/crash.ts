import { readFileSync } from 'node:fs';
import path from 'node:path';
import { waitFor } from './wait.js';

/**
 * A crash of PostgreSQL: SIGQUIT to the postmaster (an immediate stop, no shutdown checkpoint), then
 * wait until it is gone. The next start runs crash recovery. `dataDir` holds postmaster.pid.
 */
export async function crashPostgres(dataDir: string): Promise<void> {
  const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  process.kill(pid, 'SIGQUIT');
  await waitFor(
    () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    },
    { timeout: 20_000, message: 'postmaster gone after SIGQUIT' },
  );
}
