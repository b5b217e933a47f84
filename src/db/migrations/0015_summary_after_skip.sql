-- A transaction that has sent a summary stays summarised to the end (issue 15, found by
-- test/feed/summaries-attack.test.ts). Under SET CONSTRAINTS … IMMEDIATE a transaction sends a summary per
-- statement, and the feed holds it open (a partial) until a later summary's snapshot shows it committed:
-- then it counts every change of it as had, trusting that each change was in one of its summaries. A
-- change made after a summary with orders.skip_notify = 'on' was in none, and was lost on every instance.
-- So once a transaction has sent a summary, skip_notify no longer silences its later changes: the next
-- statement's end (or the commit) summarises them too. The service's own writes set skip_notify from their
-- first statement and never send one, so they still send nothing.
--
-- And a key belongs to one database (found by the same file). CREATE DATABASE … TEMPLATE copies the
-- unlogged generation row, key and all, and transaction ids are the cluster's: a summary recorded in one
-- database (LISTEN needs no privilege) and replayed into its copy verified there and put the other
-- database's orders on the copy's dashboards. The key now names the database it was made in; a copy's
-- triggers ring the plain doorbell and its feed takes no summary (it reads, as before summaries) until
-- a new generation gives it a key of its own. A renamed database is treated the same way.

ALTER TABLE feed_generation ADD COLUMN summary_database name;
UPDATE feed_generation SET summary_database = current_database();

CREATE OR REPLACE FUNCTION feed_start_generation() RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  INSERT INTO feed_generation (generation, summary_key, summary_inner, summary_outer, summary_database)
  SELECT md5(random()::text || clock_timestamp()::text), k, feed_hmac_pad(k, 54), feed_hmac_pad(k, 92), current_database()
  FROM (SELECT feed_new_summary_key() AS k) s
  ON CONFLICT DO NOTHING
$$;

CREATE OR REPLACE FUNCTION orders_capture() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  deleted orders;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO order_changes (op, order_id, version, row_data, old_data)
    VALUES ('insert', NEW.id, NEW.version, order_json(NEW), NULL);
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO order_changes (op, order_id, version, row_data, old_data)
    VALUES ('update', NEW.id, NEW.version, order_json(NEW), order_json(OLD));
  ELSE
    deleted := OLD;
    deleted.version := OLD.version + 1;
    INSERT INTO order_changes (op, order_id, version, row_data, old_data)
    VALUES ('delete', OLD.id, deleted.version, order_json(deleted), order_json(OLD));
  END IF;
  -- Not a function SET clause's variable, so it outlives this call: it lasts until the transaction ends.
  IF coalesce(current_setting('orders.skip_notify', true), '') <> 'on'
     OR coalesce(current_setting('orders.summarised', true), '') = 'on' THEN
    PERFORM set_config('orders.summary_due', 'on', true);
  END IF;
  RETURN NULL;
END $$;

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
  -- No generation (after a crash, until a reader starts one), or another database's (a copy): the doorbell.
  SELECT * INTO k FROM feed_generation;
  IF n <= 32 AND octet_length(body) < 7900 AND k.summary_inner IS NOT NULL AND k.summary_database = current_database() THEN
    PERFORM pg_notify('order_changes',
      '1 ' || encode(sha256(k.summary_outer || sha256(k.summary_inner || convert_to(body, 'UTF8'))), 'hex') || ' ' || body);
    -- Like summary_due, undone with the subtransaction that sent it (whose notification is dropped too).
    PERFORM set_config('orders.summarised', 'on', true);
  ELSE
    PERFORM pg_notify('order_changes', '');
  END IF;
  RETURN NULL;
END $$;

INSERT INTO schema_migrations (version, name) VALUES (15, 'summary_after_skip');
