-- Flows on a cron schedule: the last firing made, claimed in the transaction that
-- inserts its run (compare-and-set), so with several nodes each firing runs once.
ALTER TABLE flow ADD COLUMN cron_last_fire TIMESTAMPTZ;
CREATE INDEX flow_cron ON flow (trigger_key) WHERE trigger_key = 'cron' AND enabled;
-- A flow's concurrency: how many of its runs may be carried out at once (NULL: no
-- limit). A run counts while a runner holds its lease; the index counts them.
ALTER TABLE flow ADD COLUMN concurrency INTEGER;
CREATE INDEX flow_run_leased ON flow_run (flow_id, lease_until) WHERE lease_owner IS NOT NULL;
-- A flow's throttleRate shared by every node: a GCRA "theoretical arrival time" per
-- flow, as endpoint_throttle.
CREATE TABLE flow_throttle (
    flow_id  TEXT COLLATE "C" PRIMARY KEY REFERENCES flow (id) ON DELETE CASCADE,
    tat      TIMESTAMPTZ NOT NULL
);
