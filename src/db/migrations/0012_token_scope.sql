-- A token may be scoped (`npm run token -- create --role viewer --scope status=processing`): the orders
-- it may see, and leave orders in, as the query of GET /orders writes a filter (`status=a,b&q=term`).
-- NULL: every order. The service parses it with the same rules as a request's filter (src/filter/).
ALTER TABLE api_tokens ADD COLUMN scope text CHECK (scope IS NULL OR char_length(scope) <= 1000);

INSERT INTO schema_migrations (version, name) VALUES (12, 'token_scope');
