-- Small transactions tell the feed what they changed (issue 15). Until now a notification was only a
-- doorbell: every listening instance answered it with a read of the change log, one round trip between a
-- commit and its clients. Now, when a transaction commits, one notification carries its changes as the
-- feed hands them out (a "summary", below), so an instance can hand them out straight away; the read
-- stays for everything else (a transaction too large for a notification, the service's own writes, any
-- doubt: src/feed/summary.ts says when the feed may trust a summary).
--
-- How: the capture trigger no longer rings; it marks the transaction as having changes to summarise.
-- A deferred constraint trigger fires when the transaction commits (after its last change), reads the
-- transaction's own changes and sends them, with the snapshot it sees, in one NOTIFY; a transaction too
-- large for one (a NOTIFY payload is at most 8000 bytes) rings the plain doorbell instead. Sessions that
-- set orders.skip_notify (the service's own writes, which ring after commit themselves) send nothing.
--
-- Summary format (text, lines separated by \n; a change's JSON never contains a raw newline):
--   1 <mac> <xid> <snapshot>       version 1; an HMAC-SHA-256 (hex) of everything after `<mac> `;
--                                  the transaction; txid_current_snapshot() at commit
--   <seq> <at_ms> <change JSON>    each change, in seq order, exactly as the log's reads render it
-- An empty payload is the doorbell. Anything else a listener does not understand, it treats as one.
--
-- Any role that can connect may NOTIFY on any channel, and a listener cannot tell who sent what: a
-- forged summary would put invented orders on every dashboard and move the feed past real changes. So
-- summaries are signed with a key only the schema's owner (these functions) and the service's role
-- (deploy/least-privilege.sql) can read, and the feed takes none it cannot verify. The key belongs to
-- the feed's generation (0011, an unlogged table): a crash, a restore or a failover starts a new
-- generation and with it a new key, so a summary recorded from another history never verifies.

-- A change as the protocol's JSON (`Change` in contract/protocol.ts): the reads of the log (feed/
-- change-log.ts) and the summaries render it here, so both hand out the same bytes. A single SELECT
-- without FROM, so the planner inlines it into the reads.
CREATE TYPE order_change_wire AS (op text, "order" json, old json, at text);

CREATE FUNCTION order_change_json(c order_changes) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT row_to_json(ROW(c.op, c.row_data, c.old_data,
    to_char(c.changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::order_change_wire)::text
$$;

ALTER TABLE feed_generation
  ADD COLUMN summary_key bytea,
  -- HMAC's inner and outer keys (the key, zero-padded to SHA-256's 64-byte block, XOR 0x36 and 0x5c),
  -- kept so that a commit pays for two hashes and nothing else.
  ADD COLUMN summary_inner bytea,
  ADD COLUMN summary_outer bytea;

-- 32 bytes from PostgreSQL's strong random source (gen_random_uuid, PostgreSQL 13+, 122 random bits
-- each); on 12 without pgcrypto only from random(), which is weaker: run 13 or later.
CREATE FUNCTION feed_new_summary_key() RETURNS bytea LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  key bytea;
BEGIN
  IF to_regprocedure('gen_random_uuid()') IS NOT NULL THEN
    EXECUTE $q$SELECT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')$q$ INTO key;
  ELSE
    key := decode(md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text)
               || md5(random()::text || txid_current()::text || clock_timestamp()::text), 'hex');
  END IF;
  RETURN key;
END $$;

CREATE FUNCTION feed_hmac_pad(key bytea, pad integer) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  padded bytea := decode(repeat(lpad(to_hex(pad), 2, '0'), 64), 'hex');
BEGIN
  FOR i IN 0 .. length(key) - 1 LOOP
    padded := set_byte(padded, i, get_byte(key, i) # pad);
  END LOOP;
  RETURN padded;
END $$;

CREATE OR REPLACE FUNCTION feed_start_generation() RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  INSERT INTO feed_generation (generation, summary_key, summary_inner, summary_outer)
  SELECT md5(random()::text || clock_timestamp()::text), k, feed_hmac_pad(k, 54), feed_hmac_pad(k, 92)
  FROM (SELECT feed_new_summary_key() AS k) s
  ON CONFLICT DO NOTHING
$$;

UPDATE feed_generation SET summary_key = k, summary_inner = feed_hmac_pad(k, 54), summary_outer = feed_hmac_pad(k, 92)
FROM (SELECT feed_new_summary_key() AS k) s;

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
  IF coalesce(current_setting('orders.skip_notify', true), '') <> 'on' THEN
    PERFORM set_config('orders.summary_due', 'on', true);
  END IF;
  RETURN NULL;
END $$;

-- Fires once per changed row, all at commit (in order, after the last change); the first firing after
-- a change sends, the others find nothing due. SET CONSTRAINTS … IMMEDIATE makes it fire at the end of
-- each statement instead: a transaction that changes orders after that sends several summaries, each
-- with every change so far; the feed keeps a summarised transaction open to more changes (a partial,
-- feed/cursor.ts) until it knows the transaction has committed, so none of them is lost.
CREATE FUNCTION orders_summarise() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
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
  -- No generation (after a crash, until a reader starts one): nothing to sign with, so the doorbell.
  SELECT * INTO k FROM feed_generation;
  IF n <= 32 AND octet_length(body) < 7900 AND k.summary_inner IS NOT NULL THEN
    PERFORM pg_notify('order_changes',
      '1 ' || encode(sha256(k.summary_outer || sha256(k.summary_inner || convert_to(body, 'UTF8'))), 'hex') || ' ' || body);
  ELSE
    PERFORM pg_notify('order_changes', '');
  END IF;
  RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER orders_summarise AFTER INSERT OR UPDATE OR DELETE ON orders
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION orders_summarise();
-- Like the capture (0008): also for replication and bulk-load sessions.
ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_summarise;

INSERT INTO schema_migrations (version, name) VALUES (14, 'feed_summaries');
