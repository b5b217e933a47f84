-- Summaries (0014), hardened; test/feed/summaries-attack.test.ts found why.
--
-- 1. They travel on a channel only the key's holders know. LISTEN needs no privilege: on the public
--    channel any role that can connect read the orders of every small transaction (names, notes), and
--    could record summaries to replay elsewhere. The channel's name is derived from the generation's key,
--    which only the schema owner's functions and the service's role can read; the public channel
--    `order_changes` keeps the empty doorbell (the service's own writes, transactions too large to
--    summarise). During a rolling upgrade an instance of an earlier release hears no doorbell for
--    summarised transactions and finds them by its safety-net read (FEED_POLL_MS, 1 s).
-- 2. A generation belongs to the cluster and database it was made in. CREATE DATABASE … TEMPLATE and a
--    pg_dump restore copy the unlogged generation row, key, tag and all: the copy would share the
--    origin's history tag (its cursors trusted across databases) and key (summaries replayed across).
--    feed_claim_generation(), which the feed runs before anything else, gives such a copy a generation of
--    its own; until then its triggers ring the plain doorbell.

ALTER TABLE feed_generation
  ADD COLUMN summary_database name,
  ADD COLUMN summary_system text,
  ADD COLUMN summary_channel text;

CREATE FUNCTION feed_summary_channel(key bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT 'order_summaries_' || left(encode(sha256(key || '\x01'::bytea), 'hex'), 32)
$$;

-- A new generation sends its summaries on a new channel: the public doorbell tells every listening
-- instance to read, which finds the new history and moves it to the new channel.
CREATE OR REPLACE FUNCTION feed_start_generation() RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  INSERT INTO feed_generation (generation, summary_key, summary_inner, summary_outer, summary_database, summary_system, summary_channel)
  SELECT md5(random()::text || clock_timestamp()::text), k, feed_hmac_pad(k, 54), feed_hmac_pad(k, 92),
         current_database(), (SELECT system_identifier::text FROM pg_control_system()), feed_summary_channel(k)
  FROM (SELECT feed_new_summary_key() AS k) s
  ON CONFLICT DO NOTHING;
  SELECT pg_notify('order_changes', '');
$$;

-- A generation made in another database or cluster (a copy) is replaced by one of this database's own.
CREATE FUNCTION feed_claim_generation() RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
  DELETE FROM feed_generation
  WHERE summary_database IS DISTINCT FROM current_database()
     OR summary_system IS DISTINCT FROM (SELECT system_identifier::text FROM pg_control_system());
  IF FOUND THEN
    PERFORM feed_start_generation();
  END IF;
END $$;

UPDATE feed_generation
SET summary_database = current_database(),
    summary_system = (SELECT system_identifier::text FROM pg_control_system()),
    summary_channel = feed_summary_channel(summary_key);

CREATE OR REPLACE FUNCTION orders_summarise() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  me bigint;
  n integer;
  body text;
  k feed_generation;
BEGIN
  IF coalesce(current_setting('orders.summary_due', true), '') <> 'on' THEN
    RETURN NULL;
  END IF;
  PERFORM set_config('orders.summary_due', 'off', true);
  me := txid_current();
  -- At most 33 rows are looked at: more never fit in 8000 bytes.
  SELECT count(*), string_agg(c.seq || ' ' || (extract(epoch FROM c.changed_at) * 1000)::float8 || ' ' || order_change_json(c), E'\n' ORDER BY c.seq)
  INTO n, body
  FROM (SELECT * FROM order_changes WHERE xid = me ORDER BY seq LIMIT 33) c;
  body := me || ' ' || txid_current_snapshot()::text || E'\n' || body;
  -- No generation (after a crash, until a reader starts one), or a copy's (until the feed claims one):
  -- the doorbell.
  SELECT * INTO k FROM feed_generation;
  IF n <= 32 AND octet_length(body) < 7900 AND k.summary_channel IS NOT NULL AND k.summary_database = current_database() THEN
    PERFORM pg_notify(k.summary_channel,
      '1 ' || encode(sha256(k.summary_outer || sha256(k.summary_inner || convert_to(body, 'UTF8'))), 'hex') || ' ' || body);
  ELSE
    PERFORM pg_notify('order_changes', '');
  END IF;
  RETURN NULL;
END $$;

INSERT INTO schema_migrations (version, name) VALUES (15, 'summary_channel');
