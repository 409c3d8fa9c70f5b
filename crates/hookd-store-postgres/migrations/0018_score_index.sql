-- The rank index of each leaderboard period (hookd_store::rank_index): a trie over the
-- scores' order whose nodes count the players below them, so a rank costs a few index
-- ranges instead of counting every player ahead. depth is length(prefix). Boards
-- scored before this migration have no rows and are indexed by their next submission.
CREATE TABLE score_node (
    app_id  TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    board   TEXT COLLATE "C" NOT NULL,
    period  TEXT COLLATE "C" NOT NULL,
    depth   SMALLINT NOT NULL,
    prefix  BYTEA NOT NULL,
    org_id  TEXT NOT NULL,
    n       BIGINT NOT NULL,
    split   BOOLEAN NOT NULL,
    PRIMARY KEY (app_id, board, period, depth, prefix)
);
