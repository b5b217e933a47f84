-- API tokens, managed with `npm run token`. Only a SHA-256 of each token is stored: tokens are 256-bit
-- random strings, so a fast hash is enough to make a stolen table useless, and lookups stay indexed.
CREATE TABLE api_tokens (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
  role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  token_hash  text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);

INSERT INTO schema_migrations (version, name) VALUES (4, 'api_tokens');
