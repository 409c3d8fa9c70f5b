-- Payload filters (hookd_core::filter): a JSON document per endpoint, matched at
-- fan-out; NULL is none.
ALTER TABLE endpoint ADD COLUMN filter JSONB;
