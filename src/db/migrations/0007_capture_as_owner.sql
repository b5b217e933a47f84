-- The capture trigger writes the change log as the schema's owner, whoever fired it. Other programs
-- that write orders then need privileges on `orders` only: they cannot write, alter or delete change
-- log rows themselves, and the service's own role needs no INSERT on order_changes
-- (deploy/least-privilege.sql). The search path is pinned to the one the schema was created in.
ALTER FUNCTION orders_capture() SECURITY DEFINER SET search_path FROM CURRENT;

INSERT INTO schema_migrations (version, name) VALUES (7, 'capture_as_owner');
