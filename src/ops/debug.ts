import type { FastifyPluginAsync } from 'fastify';
import type { Database } from '../db/database.js';
import type { ChangeFeed } from '../feed/feed.js';
import type { Hub } from '../realtime/hub.js';

export interface DebugOptions {
  db: Database;
  feed: ChangeFeed;
  hub: Hub;
}

interface TriggerRow {
  name: string;
  enabled: boolean;
}

const EXPECTED_TRIGGERS = ['orders_capture', 'orders_normalize'];
const PROBE_NAME = '[round-trip probe]';

/**
 * Admin-only tools for finding out why changes do not arrive (DEBUG_ENDPOINTS=false removes them):
 * are the triggers installed and enabled; how long does a real change take from commit to the hub;
 * who is connected and how far behind.
 */
export const debugRoutes: FastifyPluginAsync<DebugOptions> = async (app, { db, feed, hub }) => {
  app.get('/debug/triggers', { config: { auth: 'admin' } }, async () => {
    const { rows } = await db.query<TriggerRow>(
      `SELECT tgname AS name, tgenabled <> 'D' AS enabled FROM pg_trigger
       WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal ORDER BY tgname`,
    );
    const triggers = EXPECTED_TRIGGERS.map((name) => ({
      name,
      installed: rows.some((r) => r.name === name),
      enabled: rows.find((r) => r.name === name)?.enabled ?? false,
    }));
    return { ok: triggers.every((t) => t.installed && t.enabled), triggers };
  });

  app.post('/debug/roundtrip', { config: { auth: 'admin' } }, async (_request, reply) => {
    const started = performance.now();
    let orderId = 0;
    const arrived = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        feed.off('batch', onBatch);
        reject(new Error('timeout'));
      }, 10_000);
      const onBatch = (batch: { changes: { json: string }[] }) => {
        if (orderId && batch.changes.some((c) => (JSON.parse(c.json) as { order: { id: number } }).order.id === orderId)) {
          clearTimeout(timer);
          feed.off('batch', onBatch);
          resolve(performance.now());
        }
      };
      feed.on('batch', onBatch);
    });
    const { rows } = await db.query<{ id: number }>(
      `INSERT INTO orders (customer_name, product_name, notes) VALUES ($1, 'probe', 'written by POST /debug/roundtrip and deleted at once') RETURNING id`,
      [PROBE_NAME],
    );
    orderId = rows[0]?.id ?? 0;
    const committed = performance.now();
    try {
      const at = await arrived;
      return {
        ok: true,
        order_id: orderId,
        commit_ms: committed - started,
        commit_to_feed_ms: at - committed,
        total_ms: at - started,
        clients: hub.snapshot.clients,
      };
    } catch {
      return reply
        .code(504)
        .send({ ok: false, order_id: orderId, detail: 'the change did not reach the feed within 10 s: check /debug/triggers and /readyz' });
    } finally {
      await db.query('DELETE FROM orders WHERE id = $1', [orderId]).catch(() => undefined);
    }
  });

  app.get('/debug/clients', { config: { auth: 'admin' } }, async () => ({ head: feed.state.head, clients: hub.listClients() }));
};
