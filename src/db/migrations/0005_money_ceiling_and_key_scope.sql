-- Money gets a realistic ceiling: total_cents ≤ 10^12 ($10 billion), the same limit the API's schemas
-- enforce on create, PATCH and PUT, so raw-SQL writers are bound by it too. Sums of it (/orders/stats)
-- are computed as numeric and cannot overflow.
--
-- Existing rows: the constraint is validated when every row is within the ceiling (the normal case).
-- A row above it (written before this migration, when PATCH accepted up to 2^53 − 1) must not stop the
-- service from starting, and changing someone's money in a migration is not ours to do; then the
-- constraint stays NOT VALID (new rows and every update are still checked), a warning names the count,
-- and `ALTER TABLE orders VALIDATE CONSTRAINT orders_total_cents_ceiling` succeeds once they are fixed.
ALTER TABLE orders ADD CONSTRAINT orders_total_cents_ceiling CHECK (total_cents <= 1000000000000) NOT VALID;

DO $$
DECLARE
  over bigint;
BEGIN
  SELECT count(*) INTO over FROM orders WHERE total_cents > 1000000000000;
  IF over = 0 THEN
    ALTER TABLE orders VALIDATE CONSTRAINT orders_total_cents_ceiling;
  ELSE
    RAISE WARNING '% orders have total_cents above 10^12; orders_total_cents_ceiling is left NOT VALID until they are corrected', over;
  END IF;
END $$;

INSERT INTO schema_migrations (version, name) VALUES (5, 'money_ceiling_and_key_scope');
