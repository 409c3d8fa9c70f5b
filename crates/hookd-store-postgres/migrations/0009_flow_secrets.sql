-- Flows' secrets (hookd_store::FlowSecret): each organisation's named secrets, sealed
-- by the server (hookd_core::sealed) before they reach the database.
CREATE TABLE flow_secret (
    org_id     TEXT NOT NULL REFERENCES org (id) ON DELETE CASCADE,
    name       TEXT COLLATE "C" NOT NULL,
    sealed     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, name)
);
