-- The Idempotency-Key of each accepted upload, per caller: a repeat within the window is
-- answered with the job the first made. A key past `expires_at` may be used again.
CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
