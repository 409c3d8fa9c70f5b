-- Flows' runs (hookd_store::FlowRun): each run's state, committed after every step,
-- and when its next step is due (NULL once it has ended). Runners lease a due run as
-- they lease jobs; deleting a flow deletes its runs.
CREATE TABLE flow_run (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES org (id) ON DELETE CASCADE,
    flow_id     TEXT NOT NULL REFERENCES flow (id) ON DELETE CASCADE,
    status      TEXT NOT NULL,
    state       JSONB NOT NULL,
    due_at      TIMESTAMPTZ,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX flow_run_due ON flow_run (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX flow_run_by_org ON flow_run (org_id, id);
CREATE INDEX flow_run_by_flow ON flow_run (org_id, flow_id, id);
