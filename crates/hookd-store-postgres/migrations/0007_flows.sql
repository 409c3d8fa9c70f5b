-- Flows (hookd_store::FlowData): each flow's definition and the trigger it listens
-- to; the partial index finds an event's enabled flows in one read.
CREATE TABLE flow (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES org (id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    document    JSONB NOT NULL,
    enabled     BOOLEAN NOT NULL,
    trigger_key TEXT COLLATE "C" NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX flow_trigger ON flow (org_id, trigger_key, id) WHERE enabled;
