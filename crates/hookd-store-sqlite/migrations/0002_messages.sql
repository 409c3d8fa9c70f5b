-- Messages, the delivery queue and the attempt log.
--
-- A message's payload is stored once; each (message, endpoint) pair that should get it
-- has one delivery row, created in the same transaction as the message. The pending
-- delivery rows are the queue: a worker leases due rows (lease_until), sends, and
-- records an attempt while moving the row on.

CREATE TABLE message (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    app_id        TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    event_type    TEXT NOT NULL,
    event_id      TEXT,
    channels      TEXT,
    tags          TEXT NOT NULL,
    payload       TEXT,
    retain_until  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (app_id, event_id)
);
CREATE INDEX message_app_id ON message(org_id, app_id, id);
CREATE INDEX message_retention ON message(retain_until) WHERE payload IS NOT NULL;

-- status: 0 success, 1 pending, 2 fail (exhausted), 3 sending, 4 canceled
-- trigger: 0 scheduled, 1 manual (the next attempt's)
CREATE TABLE delivery (
    id               INTEGER PRIMARY KEY,
    org_id           TEXT NOT NULL,
    app_id           TEXT NOT NULL,
    msg_id           TEXT NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL REFERENCES endpoint(id) ON DELETE CASCADE,
    status           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_until      INTEGER,
    lease_owner      TEXT,
    trigger          INTEGER NOT NULL DEFAULT 0,
    last_attempt_at  INTEGER,
    created_at       INTEGER NOT NULL,
    UNIQUE (msg_id, endpoint_id)
);
CREATE INDEX delivery_due ON delivery(status, next_attempt_at);
CREATE INDEX delivery_endpoint ON delivery(endpoint_id, status);

CREATE TABLE attempt (
    id                    TEXT PRIMARY KEY,
    org_id                TEXT NOT NULL,
    app_id                TEXT NOT NULL,
    msg_id                TEXT NOT NULL,
    endpoint_id           TEXT NOT NULL,
    delivery_id           INTEGER NOT NULL,
    url                   TEXT NOT NULL,
    status                INTEGER NOT NULL,
    response_status_code  INTEGER NOT NULL,
    response              TEXT,
    duration_ms           INTEGER NOT NULL,
    trigger               INTEGER NOT NULL,
    created_at            INTEGER NOT NULL
);
CREATE INDEX attempt_msg ON attempt(org_id, app_id, msg_id, id);
CREATE INDEX attempt_endpoint ON attempt(org_id, app_id, endpoint_id, id);
