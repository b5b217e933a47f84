-- Feed cursors are snapshots (src/feed/cursor.ts). The pruning mark becomes one: a cursor that does not
-- contain the mark may lack a pruned change, and is reset. An old mark (xid, seq) meant "everything at
-- or before this position is gone", which the snapshot `xid+1:xid+1:` covers.
ALTER TABLE order_changes_pruned ADD COLUMN mark text;
UPDATE order_changes_pruned SET mark = CASE WHEN xid = 0 THEN '1:1:' ELSE (xid + 1) || ':' || (xid + 1) || ':' END;
ALTER TABLE order_changes_pruned ALTER COLUMN mark SET NOT NULL, DROP COLUMN xid, DROP COLUMN seq;

-- Retention by count keeps the newest changes by seq (assigned in write order), found by this index.
CREATE INDEX order_changes_seq_idx ON order_changes (seq);

INSERT INTO schema_migrations (version, name) VALUES (9, 'snapshot_cursors');
