-- The data API: collections, leaderboards and modes (definitions), documents,
-- scores, API keys and usage per organisation and day. Keys and names sort bytewise
-- (COLLATE "C"), as on SQLite, so listings and prefixes agree on both backends.

CREATE TABLE data_definition (
    app_id      TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    org_id      TEXT NOT NULL,
    spec        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, kind, name)
);

CREATE TABLE document (
    app_id      TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    collection  TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    org_id      TEXT NOT NULL,
    body        JSONB NOT NULL,
    version     BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, collection, key)
);

-- rank_key sorts ascending best first (the negated score on higher-is-better boards),
-- so ranks, top lists and neighbours are index ranges.
CREATE TABLE score (
    app_id      TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    board       TEXT COLLATE "C" NOT NULL,
    period      TEXT COLLATE "C" NOT NULL,
    player      TEXT COLLATE "C" NOT NULL,
    org_id      TEXT NOT NULL,
    score       BIGINT NOT NULL,
    rank_key    BIGINT NOT NULL,
    achieved_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, board, period, player)
);
CREATE INDEX score_rank ON score (app_id, board, period, rank_key, achieved_at, player);

CREATE TABLE api_key (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT NOT NULL,
    app_id      TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    secret_hash BYTEA NOT NULL,
    spec        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_key_app ON api_key (org_id, app_id, id);

CREATE TABLE data_usage (
    org_id      TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
    day         DATE NOT NULL,
    reads       BIGINT NOT NULL,
    writes      BIGINT NOT NULL,
    credits     BIGINT NOT NULL,
    PRIMARY KEY (org_id, day)
);
