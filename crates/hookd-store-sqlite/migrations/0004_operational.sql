-- Operational webhooks: each organisation has one hidden application whose endpoints
-- receive hookd's own events (endpoint.disabled, message.attempt.exhausted, ...).
ALTER TABLE application ADD COLUMN operational INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX application_operational ON application(org_id) WHERE operational = 1;

-- Auto-disable: when an endpoint's deliveries started exhausting their retries with no
-- success since (NULL while it is healthy).
ALTER TABLE endpoint ADD COLUMN failing_since INTEGER;
