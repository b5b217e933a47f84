-- Every order's history, for its timeline (GET /orders/:id/history): who changed it, when, what and why,
-- kept HISTORY_RETENTION_DAYS (90 by default), far longer than the feed's resume window. It is its own
-- table, written by its own trigger in the writer's transaction, so an order's history exists exactly
-- when its change committed, whoever wrote it, and pruned by its own job (orders/history-retention.ts):
-- the change log (order_changes) keeps only what resumes need and its retention stays as fast as before.
--
-- Who: `db_user` (session_user: the role that logged in, since this trigger runs as the schema's owner)
-- and `application_name` are recorded for every writer; they cannot be left out. The service adds the
-- credential behind the request (its token's id, name and role) with
-- set_config('app.actor', '<json>', true) in the write's transaction; `reason` (app.reason) is the
-- operator's optional reason, e.g. for a cancel. Any session can set those settings, so a claimed actor
-- is trusted only on rows whose db_user is the service's own database role (the API compares it with its
-- own session_user): another program is shown as its database user and application, never as a token.
-- A bad setting never fails the writer's statement: both are stored as text, cut to a bound.
--
-- What: `changes` holds each field that changed as [old, new]; an insert's holds every field as
-- [null, value], a delete's is empty. version, updated_at and id are not listed (they follow from it).
CREATE TABLE order_history (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id         bigint NOT NULL,
  op               text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
  version          integer NOT NULL,
  changed_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  changes          jsonb NOT NULL,
  db_user          text NOT NULL,
  application_name text NOT NULL,
  actor            text,
  reason           text
);

-- An order's timeline, newest first, keyset-paged on id; pruning by age.
CREATE INDEX order_history_order_idx ON order_history (order_id, id);
CREATE INDEX order_history_changed_at_idx ON order_history (changed_at);

CREATE FUNCTION orders_history() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  before jsonb := CASE WHEN TG_OP = 'INSERT' THEN '{}'::jsonb ELSE to_jsonb(OLD) END;
  after jsonb := CASE WHEN TG_OP = 'DELETE' THEN '{}'::jsonb ELSE to_jsonb(NEW) END;
  diff jsonb;
BEGIN
  SELECT coalesce(jsonb_object_agg(a.key, jsonb_build_array(before -> a.key, a.value)), '{}'::jsonb)
  INTO diff
  FROM jsonb_each(after) a
  WHERE a.key NOT IN ('id', 'version', 'created_at', 'updated_at') AND (before -> a.key) IS DISTINCT FROM a.value;
  INSERT INTO order_history (order_id, op, version, changes, db_user, application_name, actor, reason)
  VALUES (
    CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
    lower(TG_OP),
    CASE WHEN TG_OP = 'DELETE' THEN OLD.version + 1 ELSE NEW.version END,
    diff,
    session_user,
    left(coalesce(current_setting('application_name', true), ''), 200),
    left(nullif(current_setting('app.actor', true), ''), 1000),
    left(nullif(current_setting('app.reason', true), ''), 500)
  );
  RETURN NULL;
END $$;

CREATE TRIGGER orders_history AFTER INSERT OR UPDATE OR DELETE ON orders
  FOR EACH ROW EXECUTE FUNCTION orders_history();
-- Like the capture (0008): also for replication and bulk-load sessions.
ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_history;

-- A TRUNCATE orders (refused unless a session opts in, 0008) starts over, usually with RESTART IDENTITY:
-- the ids' old histories would then be told as the new orders'. They go with the orders.
CREATE FUNCTION orders_forget_history() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
  TRUNCATE order_history;
  RETURN NULL;
END $$;

CREATE TRIGGER orders_forget_history AFTER TRUNCATE ON orders
  FOR EACH STATEMENT EXECUTE FUNCTION orders_forget_history();
ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_forget_history;

-- Orders that exist already get their creation as the first entry, as they are now (their earlier
-- changes were never recorded), attributed to this migration.
INSERT INTO order_history (order_id, op, version, changed_at, changes, db_user, application_name, actor, reason)
SELECT o.id, 'insert', o.version, o.created_at,
       (SELECT jsonb_object_agg(f.key, jsonb_build_array(NULL, f.value)) FROM jsonb_each(to_jsonb(o)) f
        WHERE f.key NOT IN ('id', 'version', 'created_at', 'updated_at')),
       session_user, 'migration 0013', NULL, 'the order as it was when history began'
FROM orders o;

INSERT INTO schema_migrations (version, name) VALUES (13, 'order_history');
