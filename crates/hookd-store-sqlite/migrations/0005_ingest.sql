-- Ingest: sources (URLs that receive third-party webhooks) and the log of every
-- request they received, byte for byte.
--
-- Each source owns a hidden application (application.operational = 2) whose
-- endpoints are the source's destinations; an accepted request becomes a message of
-- that application. Such a message keeps payload '' (present: not expunged) and takes
-- its body from ingest_request(ingest_id) and its headers from forward_headers, so a
-- body is stored once however often it is forwarded or replayed.

CREATE TABLE source (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL,
    app_id            TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    uid               TEXT,
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL,
    config            TEXT NOT NULL,
    options           TEXT NOT NULL,
    metadata          TEXT NOT NULL,
    token             TEXT NOT NULL UNIQUE,
    old_token         TEXT UNIQUE,
    old_token_until   INTEGER,
    cron_last_fire    INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (org_id, uid)
);
CREATE INDEX source_org ON source(org_id, id);
CREATE INDEX source_cron ON source(kind) WHERE kind = 'cron';

-- status: 0 accepted, 1 rejected, 2 duplicate
CREATE TABLE ingest_request (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    source_id        TEXT NOT NULL REFERENCES source(id) ON DELETE CASCADE,
    status           INTEGER NOT NULL,
    reason           TEXT,
    method           TEXT NOT NULL,
    path             TEXT NOT NULL,
    query            TEXT NOT NULL,
    headers          TEXT NOT NULL,
    client_addr      TEXT,
    body             BLOB NOT NULL,
    response_status  INTEGER NOT NULL,
    dedup_key        TEXT,
    msg_id           TEXT,
    duplicate_of     TEXT,
    received_at      INTEGER NOT NULL
);
CREATE INDEX ingest_request_source ON ingest_request(org_id, source_id, id);
CREATE INDEX ingest_request_dedup ON ingest_request(source_id, dedup_key, received_at)
    WHERE dedup_key IS NOT NULL AND status = 0;
CREATE INDEX ingest_request_received ON ingest_request(received_at);

ALTER TABLE message ADD COLUMN ingest_id TEXT;
ALTER TABLE message ADD COLUMN forward_headers TEXT;
