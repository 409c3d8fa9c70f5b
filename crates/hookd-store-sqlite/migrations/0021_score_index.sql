-- The rank index of each leaderboard period (hookd_store::rank_index): a trie over the
-- scores' order whose nodes count the players below them, so a rank costs a few index
-- ranges instead of counting every player ahead. depth is length(prefix). Boards
-- scored before this migration have no rows and are indexed by their next submission.
CREATE TABLE score_node (
    app_id  TEXT NOT NULL REFERENCES application(id) ON DELETE CASCADE,
    board   TEXT NOT NULL,
    period  TEXT NOT NULL,
    depth   INTEGER NOT NULL,
    prefix  BLOB NOT NULL,
    org_id  TEXT NOT NULL,
    n       INTEGER NOT NULL,
    split   INTEGER NOT NULL,
    PRIMARY KEY (app_id, board, period, depth, prefix)
) WITHOUT ROWID;
