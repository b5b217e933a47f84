-- A crash of PostgreSQL can hand out transaction ids again. Crash recovery sets the counter past the
-- last id it finds in the WAL on disk, so an id whose records never reached the disk (a rolled-back
-- transaction inside the WAL writer's delay, say) is given to a new transaction, which may commit. A
-- cursor from before the crash says it "had" that id (test/feed/crash-restart.test.ts). Neither the
-- system identifier nor the timeline changes, so the history tag (0010) gains a generation that a crash
-- ends: a row of an UNLOGGED table, which PostgreSQL empties during crash recovery and keeps across a
-- clean restart. Cursors from before a crash are then reset instead of trusted.
--
-- On Neon, unlogged tables are emptied at every compute start, so every wake of a suspended compute
-- resets the clients once. A reset reloads a snapshot; it never loses or repeats a change.
CREATE UNLOGGED TABLE feed_generation (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  generation text NOT NULL
);

CREATE FUNCTION feed_start_generation() RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  INSERT INTO feed_generation (generation) VALUES (md5(random()::text || clock_timestamp()::text)) ON CONFLICT DO NOTHING
$$;

SELECT feed_start_generation();

-- NULL until a generation exists (after a crash, the first reader calls feed_start_generation()).
CREATE OR REPLACE FUNCTION feed_history() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT to_hex(hashtext(s.system_identifier::text || '/' || c.timeline_id::text || '/' || g.generation) & 2147483647)
  FROM pg_control_system() s, pg_control_checkpoint() c, feed_generation g
$$;

INSERT INTO schema_migrations (version, name) VALUES (11, 'feed_generation');
