import { expect, it } from 'vitest';
import { pruneChanges } from '../../src/feed/retention.js';
import { openClient, type TestFeedClient } from '../helpers/feed-client.js';
import { usePrivateCluster } from '../helpers/fixtures.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { insertOrders } from '../helpers/writes.js';

/**
 * Resuming across a prune (guarantee 5), on a PostgreSQL cluster of its own. On the suite's shared
 * cluster another file's transaction in another database, open when `ahead` took its cursor and ended
 * before the prune, made the pruning mark (the prune's snapshot, cut at the newest pruned transaction)
 * count that transaction as had while the cursor still listed it as running: the cursor no longer
 * contained the mark, and `ahead` was reset (`cursor-expired`) although it lacked nothing that was
 * pruned. Safe (a reset loses nothing), but needless; with the default retention (changes older than a
 * day) it needs a transaction open for a day. This test is about the exact resume, so it runs where no
 * other file's transactions are.
 */
const { db, svc } = usePrivateCluster({
  // No memory: resumes are served from the log, where pruning happens. No retention of its own.
  FEED_MEMORY_CHANGES: '0',
  FEED_RETENTION_HOURS: '0',
  FEED_RETENTION_MAX_ROWS: '0',
  FEED_POLL_MS: '100',
  WS_HEARTBEAT_MS: '100',
});
const clients: TestFeedClient[] = [];

it('a resumed cursor that lacks a pruned change is reset; one that has everything pruned gets exactly what it lacks', async () => {
  try {
    const behind = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'behind' });
    const ahead = await openClient({ http: svc.url, ws: svc.wsUrl, name: 'ahead' });
    clients.push(behind, ahead);
    await behind.disconnect();
    const ids = await insertOrders(db.sql, 3, 'pruned later');
    // W1: what `ahead` has and `behind` lacks; pruned below.
    for (const id of ids) await db.sql.query("UPDATE orders SET notes = 'w1' WHERE id = $1", [id]);
    await waitFor(() => ids.every((id) => ahead.view.get(id)?.order.notes === 'w1'), { message: 'ahead has W1' });
    // W1 went out from its summaries, still open in the cursor (`:xid-seq`) until a read closes them; a
    // heartbeat after that read gives the client the closed cursor. (One still holding a pruned
    // transaction open would be reset: the mark cannot say that transaction had nothing more.)
    await waitFor(() => (ahead.cursor ?? '').split('@')[0]?.split(':').length === 3, { message: 'ahead has a closed cursor' });
    await ahead.disconnect();
    const receivedBefore = ahead.received.length;
    // W2: three transactions of one change each, the newest three changes; the count pass keeps only them.
    for (const id of ids) await db.sql.query("UPDATE orders SET notes = 'w2' WHERE id = $1", [id]);
    const { rows: w2 } = await db.sql.query<{ key: string }>(
      "SELECT order_id || ':' || version AS key FROM order_changes ORDER BY seq DESC LIMIT 3",
    );
    expect(await pruneChanges(svc.service.db, { maxAgeHours: 0, maxRows: 3 })).toBeGreaterThan(0);

    await ahead.connect();
    await waitFor(() => ids.every((id) => ahead.view.get(id)?.order.notes === 'w2'), { message: 'ahead received W2' });
    await sleep(300);
    expect(ahead.resets).toEqual([]);
    expect(
      ahead.received
        .slice(receivedBefore)
        .map((r) => r.key)
        .sort(),
    ).toEqual(w2.map((r) => r.key).sort());

    await behind.connect();
    await waitFor(() => behind.resets.length > 0, { message: 'behind was reset' });
    expect(behind.resets.map((r) => r.reason)).toEqual(['cursor-expired']);
    expect(behind.received.some((r) => r.key.startsWith(`${ids[0]}:`))).toBe(false);
  } finally {
    await Promise.all(clients.splice(0).map((x) => x.close()));
  }
});
