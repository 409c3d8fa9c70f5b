-- Secrets at rest (hookd_store::sealing): one value sealed under the key the
-- database's secrets are sealed with, so opening it with another key is refused at
-- start instead of failing every delivery. The sealed columns themselves (endpoint
-- secret, previous_secrets, headers; source config, options) keep their names: a
-- value still in clear is sealed when the store opens.
CREATE TABLE key_check (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    sealed  TEXT NOT NULL
);
