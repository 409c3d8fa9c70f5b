-- A message's `deliverAt`: its deliveries were made due then, not at creation.
ALTER TABLE message ADD COLUMN deliver_at TIMESTAMPTZ;
