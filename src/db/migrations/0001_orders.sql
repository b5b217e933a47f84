-- Orders, with the invariants every writer gets (the API, psql, any other program):
-- names trimmed, version 1 on insert and +1 on every update, updated_at maintained.
-- Each migration records itself, so `psql -1 -f` of every file gives exactly what the runner gives.
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_name text NOT NULL CHECK (char_length(customer_name) BETWEEN 1 AND 200),
  product_name  text NOT NULL CHECK (char_length(product_name) BETWEEN 1 AND 200),
  quantity      integer NOT NULL DEFAULT 1 CHECK (quantity BETWEEN 1 AND 100000),
  total_cents   bigint NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
  notes         text NOT NULL DEFAULT '' CHECK (char_length(notes) <= 10000),
  status        text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'processing', 'shipped', 'delivered', 'cancelled')),
  version       integer NOT NULL DEFAULT 1,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Newest first, optionally by status; keyset pagination on id.
CREATE INDEX orders_status_id_idx ON orders (status, id DESC);
CREATE INDEX orders_created_at_idx ON orders (created_at);
-- Substring search on names (q=): trigram indexes would need an extension we cannot assume on every
-- PostgreSQL 12+ host, so search scans by id order and stops at the page limit.

CREATE FUNCTION orders_normalize() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.customer_name := btrim(NEW.customer_name, E' \t\r\n');
  NEW.product_name := btrim(NEW.product_name, E' \t\r\n');
  IF TG_OP = 'INSERT' THEN
    NEW.version := 1;
    NEW.updated_at := NEW.created_at;
  ELSE
    NEW.id := OLD.id;
    NEW.created_at := OLD.created_at;
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER orders_normalize BEFORE INSERT OR UPDATE ON orders
  FOR EACH ROW EXECUTE FUNCTION orders_normalize();

-- The one JSON shape of an order, used by the API and the change feed alike: timestamps in UTC with
-- microseconds whatever the writer's TimeZone, so the same row always renders as the same text.
-- row_to_json renders compactly and in column order.
CREATE FUNCTION order_json(o orders) RETURNS json LANGUAGE sql STABLE AS $$
  SELECT row_to_json(r) FROM (
    SELECT o.id, o.customer_name, o.product_name, o.quantity, o.total_cents, o.notes, o.status, o.version,
           to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
           to_char(o.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS updated_at
  ) r
$$;

INSERT INTO schema_migrations (version, name) VALUES (1, 'orders');
