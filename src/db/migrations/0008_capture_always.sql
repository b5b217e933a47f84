-- No writer slips past the capture (issue 11).
--
-- Ordinary triggers do not fire in a session with session_replication_role = replica, which is how
-- logical replication applies changes and how many bulk loaders and ETL tools write. Such an UPDATE
-- changed a row without a version bump and without a change, so clients kept the old row forever (a
-- reload could not replace it either: equal versions are ignored). The normalising and capture triggers
-- fire ALWAYS, whatever the role: every writer that changes rows gets versions and the change log.
-- (Only ALTER TABLE orders DISABLE TRIGGER, by the table's owner or a superuser, still turns them off;
-- ALTER TABLE orders ENABLE TRIGGER ALL turns them back on as ordinary triggers: run this file's
-- ENABLE ALWAYS statements again after it, e.g. after a data-only pg_restore --disable-triggers.)
ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_normalize;
ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_capture;

-- TRUNCATE removes rows without row triggers, so it would remove every order and tell nobody. It is
-- refused; DELETE FROM orders is captured and reaches every client as deletes. A deliberate reset of a
-- database no client is watching (tests, a fresh environment) opts in for its own transaction with
-- SET LOCAL orders.allow_truncate = 'on'; clients that were watching must then reload their snapshot.
-- (Delivering TRUNCATE as an event would need a protocol message; refusing it needs none.)
CREATE FUNCTION orders_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('orders.allow_truncate', true), '') = 'on' THEN
    RETURN NULL;
  END IF;
  RAISE EXCEPTION USING
    ERRCODE = 'feature_not_supported',
    MESSAGE = 'TRUNCATE orders is refused: it removes orders without recording any change, so the live feed '
      'would never tell connected clients; use DELETE FROM orders instead (every deleted row is captured and '
      'delivered)',
    HINT = 'To empty a database no client is watching (tests, a fresh environment), opt in for one transaction: '
      'BEGIN; SET LOCAL orders.allow_truncate = ''on''; TRUNCATE orders, order_changes; COMMIT; '
      'clients that were watching must then reload their snapshot.';
END $$;

CREATE TRIGGER orders_refuse_truncate BEFORE TRUNCATE ON orders
  FOR EACH STATEMENT EXECUTE FUNCTION orders_refuse_truncate();
ALTER TABLE orders ENABLE ALWAYS TRIGGER orders_refuse_truncate;

INSERT INTO schema_migrations (version, name) VALUES (8, 'capture_always');
