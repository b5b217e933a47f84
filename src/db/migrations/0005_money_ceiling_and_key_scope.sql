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

-- Idempotency keys belong to the credential that sent them and to the method and path they were sent
-- to: the same key from another token, or on another route, is another key. The old `scope` column was
-- always ''. Stored responses live for IDEMPOTENCY_TTL_HOURS only and cannot be attributed to a
-- credential after the fact, so they are dropped rather than guessed.
DELETE FROM idempotency_keys;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys DROP COLUMN scope;
ALTER TABLE idempotency_keys
  ADD COLUMN principal text NOT NULL CHECK (char_length(principal) BETWEEN 1 AND 200),
  ADD COLUMN method text NOT NULL CHECK (method IN ('POST', 'PUT', 'PATCH', 'DELETE')),
  ADD COLUMN path text NOT NULL CHECK (char_length(path) BETWEEN 1 AND 200);
ALTER TABLE idempotency_keys ADD PRIMARY KEY (principal, method, path, key);

COMMENT ON COLUMN idempotency_keys.principal IS 'The credential that sent the key (db:<id>, env:<n>, or local).';

INSERT INTO schema_migrations (version, name) VALUES (5, 'money_ceiling_and_key_scope');
