-- Which node a `hookd listen` session is connected to (hookd_dispatch::relay): the
-- node renews its hold while the session stays connected, and the other nodes'
-- engines claim none of the session's deliveries while the hold lasts, so they are
-- relayed by the node that can, instead of failing elsewhere.
CREATE TABLE listen_hold (
    endpoint_id  TEXT PRIMARY KEY REFERENCES endpoint(id) ON DELETE CASCADE,
    owner        TEXT NOT NULL,
    until        TIMESTAMPTZ NOT NULL
);
