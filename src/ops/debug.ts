import type { FastifyPluginAsync } from 'fastify';
import type { Database } from '../db/database.js';
import type { Batch } from '../feed/batches.js';
import { readOrderTriggers } from '../feed/change-log.js';
import type { ChangeFeed } from '../feed/feed.js';
import { deleteProbeOrder, insertProbeOrder } from '../orders/repository.js';
import type { Hub } from '../realtime/hub.js';

export interface DebugOptions {
  db: Database;
  feed: ChangeFeed;
  hub: Hub;
}

/** They must fire ALWAYS, replication and bulk-load sessions included (migrations/0008). */
// The capture and its summaries (the feed), versions, the refusal of TRUNCATE, and each order's timeline.
const EXPECTED_TRIGGERS = ['orders_capture', 'orders_history', 'orders_normalize', 'orders_refuse_truncate', 'orders_summarise'];
const PROBE_NAME = '[round-trip probe]';

/**
 * Admin-only tools for finding out why changes do not arrive (DEBUG_ENDPOINTS=false removes them):
 * are the triggers installed and enabled; how long does a real change take from commit to the hub;
 * who is connected and how far behind.
 */
export const debugRoutes: FastifyPluginAsync<DebugOptions> = async (app, { db, feed, hub }) => {
  app.get('/debug/triggers', { config: { auth: 'admin' } }, async () => {
    const rows = await readOrderTriggers(db);
    const triggers = EXPECTED_TRIGGERS.map((name) => {
      const mode = rows.find((r) => r.name === name)?.mode;
      return { name, installed: mode !== undefined, enabled: mode !== undefined && mode !== 'D', always: mode === 'A' };
    });
    return { ok: triggers.every((t) => t.always), triggers };
  });

  app.post('/debug/roundtrip', { config: { auth: 'admin' } }, async (_request, reply) => {
    const started = performance.now();
    // The feed may hand the change out before the INSERT's own answer arrives (they travel on different
    // connections), so every order id seen from the start is remembered, not only those after.
    const seen = new Map<number, number>();
    let orderId = 0;
    let resolveArrival: (at: number) => void = () => undefined;
    const arrived = new Promise<number>((resolve, reject) => {
      resolveArrival = resolve;
      setTimeout(() => reject(new Error('timeout')), 10_000).unref();
    });
    const onBatch = (batch: Batch) => {
      const at = performance.now();
      for (const c of batch.txns.flatMap((t) => t.changes)) {
        const id = (JSON.parse(c.json) as { order: { id: number } }).order.id;
        if (!seen.has(id)) seen.set(id, at);
        if (id === orderId) resolveArrival(at);
      }
    };
    feed.on('batch', onBatch);
    orderId = await insertProbeOrder(db, PROBE_NAME);
    const early = seen.get(orderId);
    if (early !== undefined) resolveArrival(early);
    const committed = performance.now();
    try {
      const at = await arrived;
      return {
        ok: true,
        order_id: orderId,
        commit_ms: committed - started,
        // The feed can be told before the writer hears back: then this is 0.
        commit_to_feed_ms: Math.max(0, at - committed),
        total_ms: at - started,
        clients: hub.stats.clients,
      };
    } catch {
      return reply
        .code(504)
        .send({ ok: false, order_id: orderId, detail: 'the change did not reach the feed within 10 s: check /debug/triggers and /readyz' });
    } finally {
      feed.off('batch', onBatch);
      await deleteProbeOrder(db, orderId).catch(() => undefined);
    }
  });

  app.get('/debug/clients', { config: { auth: 'admin' } }, async () => ({ head: feed.state.head, clients: hub.listClients() }));
};
