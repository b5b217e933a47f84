import type { Logger } from 'pino';
import type { Database } from '../db/database.js';
import { CHANNEL } from './listener.js';

/**
 * The service's own writes skip the trigger's NOTIFY (their transactions set orders.skip_notify = on):
 * a NOTIFY in a writing transaction takes a database-wide lock from its commit until the end of the WAL
 * flush, so every notifying commit waits for every other one. Instead, after its writes commit, the
 * service rings the doorbell itself, outside any write transaction and once per burst, so a hundred
 * concurrent creates cost one NOTIFY. Other instances hear it as usual; this instance reads at once.
 *
 * If the process dies between a commit and the ring, other instances still find the change on their
 * next safety-net read: only latency is at stake, never a change.
 */
export class Doorbell {
  private ringing = false;
  private again = false;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  ring(): void {
    if (this.ringing) {
      this.again = true;
      return;
    }
    this.ringing = true;
    void this.send();
  }

  private async send(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.db.query(`SELECT pg_notify('${CHANNEL}', '')`);
      } catch (err) {
        this.log.debug({ event: 'doorbell.failed', reason: (err as Error).message }, 'doorbell NOTIFY failed; peers will poll');
      }
    } while (this.again);
    this.ringing = false;
  }
}
