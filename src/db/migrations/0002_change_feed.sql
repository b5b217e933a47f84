-- The change log behind the live feed. Every committed row change to `orders`, by any writer, lands
-- here in the writer's own transaction, so a change exists exactly when its order change committed.
--
-- Feed order is (xid, seq): the writing transaction's id, then a sequence within it. A reader hands out
-- only changes whose xid is below the oldest transaction still running (the snapshot's xmin): those are
-- final, nothing can commit before them any more. Reading `seq > last` instead would lose a transaction
-- that took its seq early but committed late. txid_current() (bigint, epoch-extended) is used rather than
-- xid8 so the same schema runs on PostgreSQL 12.
CREATE TABLE order_changes (
  xid        bigint NOT NULL DEFAULT txid_current(),
  seq        bigint GENERATED ALWAYS AS IDENTITY,
  op         text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
  order_id   bigint NOT NULL,
  version    integer NOT NULL,
  row_data   json NOT NULL,
  old_data   json,
  changed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (xid, seq)
);

CREATE INDEX order_changes_changed_at_idx ON order_changes (changed_at);

-- Where pruning has reached: a cursor at or below it may have lost changes, so it gets `reset`.
CREATE TABLE order_changes_pruned (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  xid        bigint NOT NULL,
  seq        bigint NOT NULL,
  pruned_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO order_changes_pruned (xid, seq) VALUES (0, 0);

-- For a delete, the change carries the row as it was with version + 1: deletes are versioned like
-- updates, so a client holding an older version applies the delete and ignores anything older after it.
-- The NOTIFY is only a doorbell: a constant payload, which PostgreSQL folds to one per transaction.
-- A session that rings the doorbell itself after commit (the service does, once per burst) sets
-- orders.skip_notify = 'on' for its transaction and spares the commit NOTIFY's global lock.
CREATE FUNCTION orders_capture() RETURNS trigger LANGUAGE plpgsql AS $$
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
  IF coalesce(current_setting('orders.skip_notify', true), '') <> 'on' THEN
    PERFORM pg_notify('order_changes', '');
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER orders_capture AFTER INSERT OR UPDATE OR DELETE ON orders
  FOR EACH ROW EXECUTE FUNCTION orders_capture();

INSERT INTO schema_migrations (version, name) VALUES (2, 'change_feed');
