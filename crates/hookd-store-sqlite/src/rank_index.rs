//! The leaderboard rank index on SQLite (the structure is [`hookd_store::rank_index`]).
//! Every change runs on the single writer, in the transaction that changes the score;
//! a rank is read inside one read transaction, so nodes and scores agree.

use hookd_store::StoreResult;
use hookd_store::rank_index::{self, IndexKey, KEY_LEN, Node, SPLIT_ABOVE};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::sql::internal;

/// One period of one leaderboard: what every index row is keyed by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoardPeriod<'a> {
    pub org: &'a str,
    pub app: &'a str,
    pub board: &'a str,
    pub period: &'a str,
}

/// The node at `prefix` from a row of its count and split flag.
fn counted(prefix: &[u8]) -> impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<Node> + '_ {
    move |r| {
        Ok(Node {
            prefix: prefix.to_vec(),
            n: r.get(0)?,
            split: r.get(1)?,
        })
    }
}

fn node(c: &Connection, b: BoardPeriod<'_>, prefix: &[u8]) -> StoreResult<Option<Node>> {
    c.prepare_cached(
        "SELECT n, split FROM score_node
         WHERE org_id = ? AND app_id = ? AND board = ? AND period = ? AND depth = ? AND prefix = ?",
    )
    .and_then(|mut s| {
        s.query_row(
            params![b.org, b.app, b.board, b.period, prefix.len() as i64, prefix],
            counted(prefix),
        )
        .optional()
    })
    .map_err(internal)
}

fn children(
    c: &Connection,
    b: BoardPeriod<'_>,
    depth: usize,
    low: &[u8],
    high: &[u8],
) -> StoreResult<Vec<Node>> {
    c.prepare_cached(
        "SELECT prefix, n, split FROM score_node
         WHERE org_id = ? AND app_id = ? AND board = ? AND period = ? AND depth = ? AND prefix BETWEEN ? AND ?",
    )
    .and_then(|mut s| {
        s.query_map(
            params![b.org, b.app, b.board, b.period, depth as i64, low, high],
            |r| {
                Ok(Node {
                    prefix: r.get(0)?,
                    n: r.get(1)?,
                    split: r.get(2)?,
                })
            },
        )?
        .collect()
    })
    .map_err(internal)
}

/// The players ranked ahead of `player`, whose index key is `key`.
pub(crate) fn ahead(c: &Connection, b: BoardPeriod<'_>, key: &IndexKey, player: &str) -> StoreResult<u64> {
    let root = node(c, b, &[])?;
    let ahead = rank_index::count_ahead(key, root, |depth, low, high| children(c, b, depth + 1, low, high))?;
    let Some(rest) = ahead.rest else {
        return Ok(ahead.counted);
    };
    let (from_rank, from_at) = rank_index::floor(&rest);
    let (rank_key, at) = rank_index::floor(key.prefix(KEY_LEN));
    let rest: i64 = c
        .prepare_cached(
            "SELECT count(*) FROM score WHERE org_id = ? AND app_id = ? AND board = ? AND period = ?
             AND (rank_key, achieved_at) >= (?, ?) AND (rank_key, achieved_at, player) < (?, ?, ?)",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    b.org, b.app, b.board, b.period, from_rank, from_at, rank_key, at, player
                ],
                |r| r.get(0),
            )
        })
        .map_err(internal)?;
    Ok(ahead.counted + rest.unsigned_abs())
}

/// Adds `delta` to a node's count; `None` when the node has no row.
fn add(c: &Connection, b: BoardPeriod<'_>, prefix: &[u8], delta: i64) -> StoreResult<Option<Node>> {
    c.prepare_cached(
        "UPDATE score_node SET n = n + ?
         WHERE org_id = ? AND app_id = ? AND board = ? AND period = ? AND depth = ? AND prefix = ?
         RETURNING n, split",
    )
    .and_then(|mut s| {
        s.query_row(
            params![
                delta,
                b.org,
                b.app,
                b.board,
                b.period,
                prefix.len() as i64,
                prefix
            ],
            counted(prefix),
        )
        .optional()
    })
    .map_err(internal)
}

fn put(c: &Connection, b: BoardPeriod<'_>, node: &Node) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO score_node (app_id, board, period, depth, prefix, org_id, n, split)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (app_id, board, period, depth, prefix) DO UPDATE SET n = excluded.n, split = excluded.split",
    )
    .and_then(|mut s| {
        s.execute(params![
            b.app,
            b.board,
            b.period,
            node.depth() as i64,
            node.prefix,
            b.org,
            node.n,
            node.split
        ])
    })
    .map_err(internal)?;
    Ok(())
}

fn delete(c: &Connection, b: BoardPeriod<'_>, prefix: &[u8]) -> StoreResult<()> {
    c.prepare_cached(
        "DELETE FROM score_node
         WHERE org_id = ? AND app_id = ? AND board = ? AND period = ? AND depth = ? AND prefix = ?",
    )
    .and_then(|mut s| {
        s.execute(params![
            b.org,
            b.app,
            b.board,
            b.period,
            prefix.len() as i64,
            prefix
        ])
    })
    .map_err(internal)?;
    Ok(())
}

/// (Re)builds the subtree at `prefix` from the scores: the whole board when the prefix
/// is empty, or a node that has just grown past the bound.
fn build(c: &Connection, b: BoardPeriod<'_>, prefix: &[u8]) -> StoreResult<()> {
    let (low, high) = (rank_index::floor(prefix), rank_index::ceiling(prefix));
    let keys = c
        .prepare_cached(
            "SELECT rank_key, achieved_at FROM score WHERE org_id = ? AND app_id = ? AND board = ? AND period = ?
             AND (rank_key, achieved_at) >= (?, ?) AND (rank_key, achieved_at) <= (?, ?)
             ORDER BY rank_key, achieved_at",
        )
        .and_then(|mut s| {
            s.query_map(
                params![b.org, b.app, b.board, b.period, low.0, low.1, high.0, high.1],
                |r| Ok(IndexKey::new(r.get(0)?, r.get(1)?)),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(internal)?;
    for node in rank_index::build(prefix, &keys) {
        put(c, b, &node)?;
    }
    Ok(())
}

/// Moves a player's key from `old` (`None`: a new player) to `new` in the index, after
/// its score row was written in the same transaction.
pub(crate) fn move_key(
    c: &Connection,
    b: BoardPeriod<'_>,
    old: Option<IndexKey>,
    new: IndexKey,
) -> StoreResult<()> {
    let Some(start) = rank_index::first_changed_depth(old.as_ref(), &new) else {
        return Ok(());
    };
    if node(c, b, &[])?.is_none() {
        // The board's first score, or a board scored before the index: index it all.
        return build(c, b, &[]);
    }
    if let Some(old) = old {
        // Only nodes under a split parent have rows, so the walk ends at the first
        // node that is missing or not split.
        for depth in start..=KEY_LEN {
            let Some(node) = add(c, b, old.prefix(depth), -1)? else {
                break;
            };
            if node.n <= 0 {
                delete(c, b, old.prefix(depth))?;
            }
            if !node.split {
                break;
            }
        }
    }
    // The new path's nodes have rows only below a split node.
    if start > 0 && !node(c, b, new.prefix(start - 1))?.is_some_and(|n| n.split) {
        return Ok(());
    }
    for depth in start..=KEY_LEN {
        match add(c, b, new.prefix(depth), 1)? {
            None => {
                let node = Node {
                    prefix: new.prefix(depth).to_vec(),
                    n: 1,
                    split: false,
                };
                return put(c, b, &node);
            }
            Some(node) if node.split => {}
            Some(node) => {
                if node.n > SPLIT_ABOVE && depth < KEY_LEN {
                    build(c, b, &node.prefix)?;
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Forgets the index of every period of a board (its scores are being deleted).
pub(crate) fn forget(c: &Connection, org: &str, app: &str, board: &str) -> StoreResult<()> {
    c.prepare_cached("DELETE FROM score_node WHERE org_id = ? AND app_id = ? AND board = ?")
        .and_then(|mut s| s.execute(params![org, app, board]))
        .map_err(internal)?;
    Ok(())
}
