-- Flows (hookd_store::FlowData): each flow's definition and the trigger it listens
-- to; the partial index finds an event's enabled flows in one read.
CREATE TABLE flow (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES org (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    document    TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    trigger_key TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX flow_trigger ON flow (org_id, trigger_key, id) WHERE enabled = 1;
