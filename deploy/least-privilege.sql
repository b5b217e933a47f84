-- Least privilege for the service's database role.
--
-- The schema belongs to an owner role that runs the migrations (`npm run db:migrate` with the owner's
-- DATABASE_URL). The service itself connects as `orders_app`, which can read and write orders, read
-- and prune the change log, keep idempotency keys and read tokens: no DDL, no superuser, no writing
-- the change log or the tokens. Create the role once, then run this file as the owner after every
-- migration:
--
--   CREATE ROLE orders_app LOGIN PASSWORD '…';
--   psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/least-privilege.sql
--
-- Other programs that write orders need only the first grant below (on `orders`): the capture trigger
-- writes the change log as the owner. `npm run token` needs INSERT, UPDATE on api_tokens: run it as
-- the owner.
GRANT USAGE ON SCHEMA public TO orders_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO orders_app;
GRANT SELECT, DELETE ON order_changes TO orders_app;              -- read the feed; retention prunes it
GRANT SELECT, UPDATE ON order_changes_pruned TO orders_app;       -- retention's pruning mark
GRANT SELECT ON feed_generation TO orders_app;                    -- the history tag, the summaries' key (0011, 0014)
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO orders_app;
GRANT SELECT ON api_tokens, schema_migrations TO orders_app;
GRANT SELECT, DELETE ON order_history TO orders_app;              -- order timelines; their retention prunes them
