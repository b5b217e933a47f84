-- Which history of the database a cursor belongs to: a short tag of the cluster's system identifier and
-- timeline. A restore into a new cluster changes the first; a point-in-time recovery or a failover
-- starts a new timeline. A cursor carries the tag (`…@tag`), and one from another history is reset
-- instead of trusted, even once the new history's transaction ids have grown past it.
CREATE FUNCTION feed_history() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT to_hex(hashtext(s.system_identifier::text || '/' || c.timeline_id::text) & 2147483647)
  FROM pg_control_system() s, pg_control_checkpoint() c
$$;

-- GET /orders hands out its snapshot as a cursor of this history.
CREATE FUNCTION feed_snapshot_cursor() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT txid_current_snapshot()::text || '@' || feed_history()
$$;

INSERT INTO schema_migrations (version, name) VALUES (10, 'feed_history');
