-- Tokens may expire (`npm run token -- create … --expires 30d`). An expired token is refused like a
-- revoked one; it still counts as "a credential has existed", so authentication stays on.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;

INSERT INTO schema_migrations (version, name) VALUES (6, 'token_expiry');
