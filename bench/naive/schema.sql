-- The design this service replaces, for the benchmark only (never shipped): a trigger that sends the
-- whole row as JSON with pg_notify, on a table of its own (bench/naive/relay.ts listens).
CREATE TABLE IF NOT EXISTS naive_orders (
  id bigserial PRIMARY KEY,
  customer_name text NOT NULL,
  product_name text NOT NULL,
  quantity integer NOT NULL DEFAULT 1,
  total_cents bigint NOT NULL DEFAULT 0,
  status text NOT NULL DEFAULT 'pending',
  notes text NOT NULL DEFAULT '',
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION naive_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('naive_orders', json_build_object(
    'op', lower(TG_OP),
    'order', row_to_json(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END)
  )::text);
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS naive_notify ON naive_orders;
CREATE TRIGGER naive_notify AFTER INSERT OR UPDATE OR DELETE ON naive_orders
  FOR EACH ROW EXECUTE FUNCTION naive_notify();
