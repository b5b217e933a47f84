-- Stored outcomes of POST /orders requests that carried an Idempotency-Key. The row is written in the
-- same transaction as the order it describes, so a crash leaves neither (and the key free to retry).
CREATE TABLE idempotency_keys (
  scope        text NOT NULL DEFAULT '',
  key          text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
  request_hash text NOT NULL,
  status_code  integer NOT NULL,
  headers      json NOT NULL,
  body         json NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

INSERT INTO schema_migrations (version, name) VALUES (3, 'idempotency');
