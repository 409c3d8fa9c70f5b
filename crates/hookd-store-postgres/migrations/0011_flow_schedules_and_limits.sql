-- Flows on a cron schedule: the last firing made, claimed in the transaction that
-- inserts its run (compare-and-set), so with several nodes each firing runs once.
ALTER TABLE flow ADD COLUMN cron_last_fire TIMESTAMPTZ;
CREATE INDEX flow_cron ON flow (trigger_key) WHERE trigger_key = 'cron' AND enabled;
