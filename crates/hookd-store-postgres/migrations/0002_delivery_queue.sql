-- Each endpoint's queue of pending deliveries, oldest due first. Claims walk the
-- endpoints with pending work in turn and take each one's first due rows from here, so
-- a long queue for one endpoint neither hides the others nor is read past on every
-- claim.
CREATE INDEX delivery_queue ON delivery(endpoint_id, next_attempt_at) WHERE status = 1;
