//! The leaderboard rank index on PostgreSQL (the structure is
//! [`hookd_store::rank_index`]). Its writes run under a per-board-period advisory lock
//! taken by the submission (one writer per board at a time, as SQLite's single writer
//! gives), so each change sees the index as the last one left it; a rank reads the nodes
//! of every depth in one statement and the rest of its last node in a second, in the
//! caller's snapshot. Times enter the key as microseconds.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use hookd_store::StoreResult;
use hookd_store::rank_index::{self, IndexKey, KEY_LEN, Node, SPLIT_ABOVE};
use tokio_postgres::Row;

use crate::db::{self, get};

/// One period of one leaderboard: what every index row is keyed by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoardPeriod<'a> {
    pub org: &'a str,
    pub app: &'a str,
    pub board: &'a str,
    pub period: &'a str,
}

pub(crate) fn key(rank_key: i64, achieved: DateTime<Utc>) -> IndexKey {
    IndexKey::new(rank_key, achieved.timestamp_micros())
}

/// A bound of a node's span as a time PostgreSQL stores. Every stored time lies well
/// inside chrono's and PostgreSQL's ranges, so clamping the padded bounds of short
/// prefixes changes no comparison.
fn time(micros: i64) -> DateTime<Utc> {
    const FIRST: i64 = -62_135_596_800_000_000; // 0001-01-01
    const LAST: i64 = 253_402_300_799_000_000; // 9999-12-31T23:59:59
    DateTime::from_timestamp_micros(micros.clamp(FIRST, LAST)).unwrap_or_default()
}

fn node_from_row(row: &Row) -> StoreResult<Node> {
    Ok(Node {
        prefix: get(row, 0)?,
        n: get(row, 1)?,
        split: get(row, 2)?,
    })
}

async fn node<C: GenericClient>(c: &C, b: BoardPeriod<'_>, prefix: &[u8]) -> StoreResult<Option<Node>> {
    db::query_opt(
        c,
        "SELECT prefix, n, split FROM score_node
         WHERE org_id = $1 AND app_id = $2 AND board = $3 AND period = $4 AND depth = $5 AND prefix = $6",
        &[
            &b.org,
            &b.app,
            &b.board,
            &b.period,
            &(prefix.len() as i16),
            &prefix,
        ],
    )
    .await?
    .as_ref()
    .map(node_from_row)
    .transpose()
}

/// The players ranked ahead of `player`, whose index key is `key` and rank key and time
/// `rank_key` and `achieved`.
pub(crate) async fn ahead<C: GenericClient>(
    c: &C,
    b: BoardPeriod<'_>,
    key: &IndexKey,
    player: &str,
    rank_key: i64,
    achieved: DateTime<Utc>,
) -> StoreResult<u64> {
    // The root and, at every depth, the span a walk down this key's path reads.
    let mut depths = vec![0i16];
    let mut lows = vec![Vec::new()];
    let mut highs = vec![Vec::new()];
    for depth in 0..KEY_LEN {
        let (low, high) = rank_index::children_span(key, depth);
        depths.push(depth as i16 + 1);
        lows.push(low);
        highs.push(high.to_vec());
    }
    let rows = db::query(
        c,
        "SELECT s.prefix, s.n, s.split
         FROM unnest($5::int2[], $6::bytea[], $7::bytea[]) AS r(depth, low, high)
         JOIN score_node s ON s.app_id = $2 AND s.board = $3 AND s.period = $4
             AND s.depth = r.depth AND s.prefix BETWEEN r.low AND r.high
         WHERE s.org_id = $1",
        &[&b.org, &b.app, &b.board, &b.period, &depths, &lows, &highs],
    )
    .await?;
    let nodes = rows.iter().map(node_from_row).collect::<StoreResult<Vec<_>>>()?;
    let root = nodes.iter().find(|n| n.depth() == 0).cloned();
    let ahead = rank_index::count_ahead::<std::convert::Infallible>(key, root, |depth, low, high| {
        Ok(nodes
            .iter()
            .filter(|n| n.depth() == depth + 1 && n.prefix.as_slice() >= low && n.prefix.as_slice() <= high)
            .cloned()
            .collect())
    })
    .unwrap_or_else(|never| match never {});
    let Some(rest) = ahead.rest else {
        return Ok(ahead.counted);
    };
    let (from_rank, from_at) = rank_index::floor(&rest);
    let row = db::query_opt(
        c,
        "SELECT count(*) FROM score WHERE org_id = $1 AND app_id = $2 AND board = $3 AND period = $4
         AND (rank_key, achieved_at) >= ($5, $6) AND (rank_key, achieved_at, player) < ($7, $8, $9)",
        &[
            &b.org,
            &b.app,
            &b.board,
            &b.period,
            &from_rank,
            &time(from_at),
            &rank_key,
            &achieved,
            &player,
        ],
    )
    .await?;
    let rest: i64 = match row {
        Some(row) => get(&row, 0)?,
        None => 0,
    };
    Ok(ahead.counted + rest.unsigned_abs())
}

/// Adds `delta` to the counts of the nodes on `key`'s path from `start` down that have
/// rows; returns them.
async fn add_on_path<C: GenericClient>(
    c: &C,
    b: BoardPeriod<'_>,
    key: &IndexKey,
    start: usize,
    delta: i64,
) -> StoreResult<Vec<Node>> {
    let depths: Vec<i16> = (start..=KEY_LEN).map(|d| d as i16).collect();
    let prefixes: Vec<&[u8]> = (start..=KEY_LEN).map(|d| key.prefix(d)).collect();
    let rows = db::query(
        c,
        "UPDATE score_node s SET n = s.n + $7
         FROM unnest($5::int2[], $6::bytea[]) AS p(depth, prefix)
         WHERE s.org_id = $1 AND s.app_id = $2 AND s.board = $3 AND s.period = $4
             AND s.depth = p.depth AND s.prefix = p.prefix
         RETURNING s.prefix, s.n, s.split",
        &[&b.org, &b.app, &b.board, &b.period, &depths, &prefixes, &delta],
    )
    .await?;
    let mut nodes = rows.iter().map(node_from_row).collect::<StoreResult<Vec<_>>>()?;
    nodes.sort_by_key(Node::depth);
    Ok(nodes)
}

async fn put<C: GenericClient>(c: &C, b: BoardPeriod<'_>, nodes: &[Node]) -> StoreResult<()> {
    let depths: Vec<i16> = nodes.iter().map(|n| n.depth() as i16).collect();
    let prefixes: Vec<&[u8]> = nodes.iter().map(|n| n.prefix.as_slice()).collect();
    let counts: Vec<i64> = nodes.iter().map(|n| n.n).collect();
    let splits: Vec<bool> = nodes.iter().map(|n| n.split).collect();
    db::execute(
        c,
        "INSERT INTO score_node (app_id, board, period, depth, prefix, org_id, n, split)
         SELECT $2, $3, $4, depth, prefix, $1, n, split
         FROM unnest($5::int2[], $6::bytea[], $7::int8[], $8::bool[]) AS v(depth, prefix, n, split)
         ON CONFLICT (app_id, board, period, depth, prefix) DO UPDATE SET n = excluded.n, split = excluded.split",
        &[&b.org, &b.app, &b.board, &b.period, &depths, &prefixes, &counts, &splits],
    )
    .await?;
    Ok(())
}

/// (Re)builds the subtree at `prefix` from the scores: the whole board when the prefix
/// is empty, or a node that has just grown past the bound.
async fn build<C: GenericClient>(c: &C, b: BoardPeriod<'_>, prefix: &[u8]) -> StoreResult<()> {
    let (low, high) = (rank_index::floor(prefix), rank_index::ceiling(prefix));
    let rows = db::query(
        c,
        "SELECT rank_key, achieved_at FROM score WHERE org_id = $1 AND app_id = $2 AND board = $3 AND period = $4
         AND (rank_key, achieved_at) >= ($5, $6) AND (rank_key, achieved_at) <= ($7, $8)
         ORDER BY rank_key, achieved_at",
        &[&b.org, &b.app, &b.board, &b.period, &low.0, &time(low.1), &high.0, &time(high.1)],
    )
    .await?;
    let keys = rows
        .iter()
        .map(|row| Ok(key(get(row, 0)?, get(row, 1)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    for chunk in rank_index::build(prefix, &keys).chunks(1000) {
        put(c, b, chunk).await?;
    }
    Ok(())
}

/// Moves a player's key from `old` (`None`: a new player) to `new` in the index, after
/// its score row was written in the same transaction, which holds the board's lock.
pub(crate) async fn move_key<C: GenericClient>(
    c: &C,
    b: BoardPeriod<'_>,
    old: Option<IndexKey>,
    new: IndexKey,
) -> StoreResult<()> {
    let Some(start) = rank_index::first_changed_depth(old.as_ref(), &new) else {
        return Ok(());
    };
    // Only nodes under a split parent have rows, so the rows found on a path are a
    // chain from `start` down to its first node that is not split.
    if let Some(old) = old {
        let changed = add_on_path(c, b, &old, start, -1).await?;
        if changed.iter().any(|n| n.n <= 0) {
            let emptied: Vec<&[u8]> = changed
                .iter()
                .filter(|n| n.n <= 0)
                .map(|n| n.prefix.as_slice())
                .collect();
            let depths: Vec<i16> = emptied.iter().map(|p| p.len() as i16).collect();
            db::execute(
                c,
                "DELETE FROM score_node s USING unnest($5::int2[], $6::bytea[]) AS p(depth, prefix)
                 WHERE s.org_id = $1 AND s.app_id = $2 AND s.board = $3 AND s.period = $4
                     AND s.depth = p.depth AND s.prefix = p.prefix",
                &[&b.org, &b.app, &b.board, &b.period, &depths, &emptied],
            )
            .await?;
        }
    }
    let changed = add_on_path(c, b, &new, start, 1).await?;
    let deepest = match changed.last() {
        Some(node) => node.clone(),
        None if start == 0 => return build(c, b, &[]).await,
        None => match node(c, b, new.prefix(start - 1)).await? {
            Some(parent) if parent.split => parent,
            Some(_) => return Ok(()),
            // Above the shared node: a board scored before the index has no root.
            None if node(c, b, &[]).await?.is_none() => return build(c, b, &[]).await,
            None => return Ok(()),
        },
    };
    let depth = deepest.depth();
    if deepest.split && depth < KEY_LEN {
        // A split node whose child on the path has no row yet: the key is its first.
        let child = Node {
            prefix: new.prefix(depth + 1).to_vec(),
            n: 1,
            split: false,
        };
        return put(c, b, &[child]).await;
    }
    if !deepest.split && deepest.n > SPLIT_ABOVE && depth < KEY_LEN {
        build(c, b, &deepest.prefix).await?;
    }
    Ok(())
}

/// Forgets the index of every period of a board (its scores are being deleted).
pub(crate) async fn forget<C: GenericClient>(c: &C, org: &str, app: &str, board: &str) -> StoreResult<()> {
    db::execute(
        c,
        "DELETE FROM score_node WHERE org_id = $1 AND app_id = $2 AND board = $3",
        &[&org, &app, &board],
    )
    .await?;
    Ok(())
}
