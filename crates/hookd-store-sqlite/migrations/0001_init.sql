-- hookd schema, version 1. Times are milliseconds since the Unix epoch (UTC).
-- Every tenant-owned table carries org_id and every query filters on it.

CREATE TABLE org (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_token (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_token_org ON api_token(org_id);

CREATE TABLE application (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
    uid            TEXT,
    name           TEXT NOT NULL,
    throttle_rate  INTEGER,
    metadata       TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (org_id, uid)
);
CREATE INDEX application_org_id ON application(org_id, id);

CREATE TABLE event_type (
    org_id         TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    archived       INTEGER NOT NULL,
    deprecated     INTEGER NOT NULL,
    schemas        TEXT,
    group_name     TEXT,
    feature_flags  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE endpoint (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
    app_id            TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    uid               TEXT,
    url               TEXT NOT NULL,
    description       TEXT NOT NULL,
    disabled          INTEGER NOT NULL,
    event_types       TEXT,
    channels          TEXT,
    throttle_rate     INTEGER,
    metadata          TEXT NOT NULL,
    headers           TEXT NOT NULL,
    secret            TEXT NOT NULL,
    previous_secrets  TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (app_id, uid)
);
CREATE INDEX endpoint_app_id ON endpoint(org_id, app_id, id);
