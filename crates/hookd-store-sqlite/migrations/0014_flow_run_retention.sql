-- Ended flow runs by when they ended, for the pruner (flow_run_retention).
CREATE INDEX flow_run_ended ON flow_run (updated_at) WHERE due_at IS NULL;
