-- The data API: collections, leaderboards and modes (definitions), documents,
-- scores, API keys and usage per organisation and day.

CREATE TABLE data_definition (
    app_id      TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, kind, name)
);

CREATE TABLE document (
    app_id      TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    collection  TEXT NOT NULL,
    key         TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    body        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, collection, key)
);

-- rank_key sorts ascending best first (the negated score on higher-is-better boards),
-- so ranks, top lists and neighbours are index ranges.
CREATE TABLE score (
    app_id      TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    board       TEXT NOT NULL,
    period      TEXT NOT NULL,
    player      TEXT NOT NULL,
    org_id      TEXT NOT NULL,
    score       INTEGER NOT NULL,
    rank_key    INTEGER NOT NULL,
    achieved_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, board, period, player)
);
CREATE INDEX score_rank ON score (app_id, board, period, rank_key, achieved_at, player);

CREATE TABLE api_key (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    app_id      TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    secret_hash BLOB NOT NULL,
    spec        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_key_app ON api_key (org_id, app_id, id);

CREATE TABLE data_usage (
    org_id      TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
    day         TEXT NOT NULL,
    reads       INTEGER NOT NULL,
    writes      INTEGER NOT NULL,
    credits     INTEGER NOT NULL,
    PRIMARY KEY (org_id, day)
);
