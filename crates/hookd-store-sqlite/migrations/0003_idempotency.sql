-- Idempotency keys: the first answer to a POST with an Idempotency-Key, replayed to
-- later requests with the same key from the same token (for 12 hours).
CREATE TABLE idempotency (
    org_id        TEXT NOT NULL,
    token_id      TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    status        INTEGER,
    content_type  TEXT,
    body          BLOB,
    started_at    INTEGER NOT NULL,
    completed_at  INTEGER,
    PRIMARY KEY (token_id, key)
);
CREATE INDEX idempotency_started ON idempotency(started_at);
