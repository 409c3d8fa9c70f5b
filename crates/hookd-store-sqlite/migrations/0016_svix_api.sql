-- Scheduled messages (deliverAt) and the background-task list.
-- A message's `deliverAt`: its deliveries were made due then, not at creation.
ALTER TABLE message ADD COLUMN deliver_at INTEGER;
-- The background-task API lists an organisation's jobs by id.
CREATE INDEX job_org ON job (org_id, id);
