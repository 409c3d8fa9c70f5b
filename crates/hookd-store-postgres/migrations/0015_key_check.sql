-- Secrets at rest (hookd_store::sealing): one value sealed under the key the
-- database's secrets are sealed with, so a node started with another key is refused at
-- start instead of failing every delivery. Sealed JSON columns (endpoint
-- previous_secrets and headers, source config and options) hold a JSON string; a
-- value still in clear is sealed when the first node opens the database.
CREATE TABLE key_check (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    sealed  TEXT NOT NULL
);
