-- Web UI sessions, consumer portal access and one-time sign-in links (hks_ credentials).
CREATE TABLE ui_session (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
    -- 'link', 'operator' or 'portal'
    kind         TEXT NOT NULL,
    app_id       TEXT REFERENCES application(id) ON DELETE CASCADE,
    secret_hash  BYTEA NOT NULL,
    -- capabilities, feature flags and the caller's session id
    grants       JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX ui_session_app ON ui_session (org_id, app_id);
CREATE INDEX ui_session_expires ON ui_session (expires_at);
