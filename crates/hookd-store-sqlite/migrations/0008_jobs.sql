-- Durable background jobs (endpoint recovery, ...): leased by one node at a time,
-- their progress committed with each step.
CREATE TABLE job (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES org (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    status      INTEGER NOT NULL,
    error       TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX job_running ON job (created_at) WHERE status = 0;
