//! The rank index of a leaderboard: exact ranks in time logarithmic in the board's size.
//!
//! A player's place on a board is its *index key*: the rank key, then the time the score
//! was reached, as 16 big-endian bytes with the sign bits flipped, so byte order is the
//! board's order (ties on both are broken by the player id, as everywhere). The index
//! is a trie over those bytes whose nodes count the players below them, kept in the
//! `score_node` table beside the scores (one row per node: the prefix, the count, and
//! whether the node is split):
//!
//! - the root (the empty prefix) holds the whole board of one period;
//! - a node holding more than [`SPLIT_ABOVE`] players is *split*: each of its children
//!   (the prefix one byte longer) that holds a player has a row; a node that is not split
//!   has no children, and its players are counted in the scores themselves (at most
//!   [`SPLIT_ABOVE`] of them);
//! - a split node stays split (a board that shrinks keeps its rows, which stay exact).
//!
//! A rank is then the counts of the siblings before the key's path at each depth (at most
//! 255 per depth, 16 depths at most) plus the players of the last, unsplit node that sort
//! before the key. A submission moves one key: it changes the counts on the part of the two
//! paths the old and the new key do not share, and splits a node that grows past the bound.
//! Its writes need one writer per board at a time, which SQLite's single writer gives, and
//! a rank reads it in the same snapshot as the scores.
//!
//! A board whose root row is missing (scores written before the index existed) is counted
//! in its scores, as before, until its next submission builds its index in one go.
//!
//! PostgreSQL does not keep the index yet and counts the players ahead. Serialising a
//! board's submissions there with an exclusive lock (what this structure needs as it is)
//! cost more than counting: measured with 64 clients on one board, 262 submissions/s at
//! 1,000 players and the connection pool starved. A concurrent form is the next step:
//! submissions under a shared per-board lock changing counts only (commutative), the
//! splits and first builds deferred to a transaction of their own under the exclusive
//! lock, and a rank read in one statement.

/// The length of an index key in bytes, which is also the deepest a node can be.
pub const KEY_LEN: usize = 16;

/// A node holding more players than this is split into its children.
pub const SPLIT_ABOVE: i64 = 256;

/// A player's place on a board, in the board's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexKey([u8; KEY_LEN]);

const SIGN: u64 = 1 << 63;

impl IndexKey {
    /// `achieved` is the backend's integer form of the time the score was reached
    /// (milliseconds on SQLite, microseconds on PostgreSQL); only its order matters.
    pub fn new(rank_key: i64, achieved: i64) -> Self {
        let mut bytes = [0; KEY_LEN];
        bytes[..8].copy_from_slice(&((rank_key as u64) ^ SIGN).to_be_bytes());
        bytes[8..].copy_from_slice(&((achieved as u64) ^ SIGN).to_be_bytes());
        Self(bytes)
    }

    /// The prefix naming this key's node at `depth` (0 is the root).
    pub fn prefix(&self, depth: usize) -> &[u8] {
        &self.0[..depth.min(KEY_LEN)]
    }

    /// The depth of the deepest node holding both keys.
    pub fn shared_depth(&self, other: &Self) -> usize {
        self.0.iter().zip(other.0).take_while(|(a, b)| **a == *b).count()
    }

    fn decode(bytes: [u8; KEY_LEN]) -> (i64, i64) {
        let half = |b: &[u8]| {
            let mut eight = [0; 8];
            eight.copy_from_slice(b);
            (u64::from_be_bytes(eight) ^ SIGN) as i64
        };
        (half(&bytes[..8]), half(&bytes[8..]))
    }
}

/// The first `(rank_key, achieved)` a node's prefix covers: the prefix padded with zeros.
/// Every key below the node sorts at or after it.
pub fn floor(prefix: &[u8]) -> (i64, i64) {
    let mut bytes = [0; KEY_LEN];
    let len = prefix.len().min(KEY_LEN);
    bytes[..len].copy_from_slice(&prefix[..len]);
    IndexKey::decode(bytes)
}

/// The last `(rank_key, achieved)` a node's prefix covers: the prefix padded with 0xff.
pub fn ceiling(prefix: &[u8]) -> (i64, i64) {
    let mut bytes = [0xff; KEY_LEN];
    let len = prefix.len().min(KEY_LEN);
    bytes[..len].copy_from_slice(&prefix[..len]);
    IndexKey::decode(bytes)
}

/// One row of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub prefix: Vec<u8>,
    /// The players whose key starts with the prefix.
    pub n: i64,
    pub split: bool,
}

impl Node {
    pub fn depth(&self) -> usize {
        self.prefix.len()
    }
}

/// The rows of the subtree at `prefix` holding `keys` (sorted, all starting with the
/// prefix): the node itself first, then, when it is split, its children, recursively.
pub fn build(prefix: &[u8], keys: &[IndexKey]) -> Vec<Node> {
    let mut nodes = Vec::new();
    build_into(prefix.len(), prefix, keys, &mut nodes);
    nodes
}

fn build_into(depth: usize, prefix: &[u8], keys: &[IndexKey], nodes: &mut Vec<Node>) {
    let split = keys.len() as i64 > SPLIT_ABOVE && depth < KEY_LEN;
    nodes.push(Node {
        prefix: prefix.to_vec(),
        n: keys.len() as i64,
        split,
    });
    if split {
        for group in keys.chunk_by(|a, b| a.0[depth] == b.0[depth]) {
            build_into(depth + 1, group[0].prefix(depth + 1), group, nodes);
        }
    }
}

/// The children of the node at `depth` on `key`'s path that a rank reads: those whose
/// prefix lies in `[low, high]`, the siblings before the path and the path's own child.
pub fn children_span(key: &IndexKey, depth: usize) -> (Vec<u8>, &[u8]) {
    let mut low = key.prefix(depth).to_vec();
    low.push(0);
    (low, key.prefix(depth + 1))
}

/// The players ahead of a key, as far as the index counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ahead {
    /// Players in the nodes before the key's path.
    pub counted: u64,
    /// The prefix of the unsplit node on the path whose players before the key are still
    /// to be counted in the scores (from [`floor`] of it up to the key); `None` when the
    /// path leaves the index (no player below it). The empty prefix, with a zero count,
    /// is a board without an index: count all of it.
    pub rest: Option<Vec<u8>>,
}

/// Walks `key`'s path from the root. `children(depth, low, high)` returns the rows at
/// `depth + 1` whose prefix lies in `[low, high]` (see [`children_span`]).
pub fn count_ahead<E>(
    key: &IndexKey,
    root: Option<Node>,
    mut children: impl FnMut(usize, &[u8], &[u8]) -> Result<Vec<Node>, E>,
) -> Result<Ahead, E> {
    let Some(mut node) = root else {
        return Ok(Ahead {
            counted: 0,
            rest: Some(Vec::new()),
        });
    };
    let mut counted = 0u64;
    loop {
        if !node.split {
            return Ok(Ahead {
                counted,
                rest: Some(node.prefix),
            });
        }
        let depth = node.depth();
        let (low, high) = children_span(key, depth);
        let mut next = None;
        for child in children(depth, &low, high)? {
            if child.prefix.as_slice() < high {
                counted += child.n.max(0) as u64;
            } else if child.prefix.as_slice() == high {
                next = Some(child);
            }
        }
        match next {
            Some(child) => node = child,
            None => return Ok(Ahead { counted, rest: None }),
        }
    }
}

/// Where the index changes when a player's key moves from `old` (`None`: a new player)
/// to `new`: the nodes from `start` down on each path; those above hold both keys.
pub fn first_changed_depth(old: Option<&IndexKey>, new: &IndexKey) -> Option<usize> {
    match old {
        None => Some(0),
        Some(old) if old == new => None,
        Some(old) => Some(old.shared_depth(new) + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rank of every key of a board through the index, against counting them.
    fn ranks_through_index(keys: &[IndexKey]) -> Vec<u64> {
        let mut sorted = keys.to_vec();
        sorted.sort();
        let nodes = build(&[], &sorted);
        keys.iter()
            .map(|key| {
                let ahead = count_ahead::<()>(key, Some(nodes[0].clone()), |depth, low, high| {
                    Ok(nodes
                        .iter()
                        .filter(|n| {
                            n.depth() == depth + 1
                                && n.prefix.as_slice() >= low
                                && n.prefix.as_slice() <= high
                        })
                        .cloned()
                        .collect())
                })
                .unwrap();
                let rest = ahead.rest.expect("every key is below the index");
                let lo = floor(&rest);
                let in_rest = sorted
                    .iter()
                    .filter(|k| IndexKey::decode(k.0) >= lo && *k < key)
                    .count() as u64;
                ahead.counted + in_rest + 1
            })
            .collect()
    }

    #[test]
    fn keys_sort_as_the_board_does() {
        let pairs = [
            (i64::MIN, 0),
            (-5, 9),
            (-5, 10),
            (-1, i64::MAX),
            (0, i64::MIN),
            (3, -2),
            (i64::MAX, 0),
        ];
        let keys: Vec<IndexKey> = pairs.iter().map(|&(r, a)| IndexKey::new(r, a)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (key, pair) in keys.iter().zip(pairs) {
            assert_eq!(IndexKey::decode(key.0), pair);
            assert_eq!(floor(key.prefix(KEY_LEN)), pair);
            assert_eq!(ceiling(key.prefix(KEY_LEN)), pair);
        }
        assert_eq!(floor(&[]), (i64::MIN, i64::MIN));
        assert_eq!(ceiling(&[]), (i64::MAX, i64::MAX));
    }

    #[test]
    fn ranks_through_the_index_equal_counting_for_many_shapes_of_board() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let boards: Vec<Vec<IndexKey>> = vec![
            (0..10).map(|i| IndexKey::new(i, 0)).collect(),
            (0..5000)
                .map(|_| IndexKey::new((next() % 1_000_000) as i64, 1_700_000_000_000))
                .collect(),
            // Everyone on the same score: the times rank them.
            (0..3000)
                .map(|i| IndexKey::new(0, 1_700_000_000_000 + i))
                .collect(),
            // Negative and huge keys, as higher-is-better boards store them.
            (0..3000)
                .map(|_| IndexKey::new(-((next() >> 1) as i64), next() as i64))
                .collect(),
        ];
        for keys in boards {
            let mut expected: Vec<IndexKey> = keys.clone();
            expected.sort();
            let ranks = ranks_through_index(&keys);
            for (key, rank) in keys.iter().zip(ranks) {
                let want = expected.partition_point(|k| k < key) as u64 + 1;
                assert_eq!(rank, want);
            }
        }
    }

    #[test]
    fn only_nodes_past_the_bound_are_split() {
        let keys: Vec<IndexKey> = (0..1000).map(|i| IndexKey::new(i, 0)).collect();
        let nodes = build(&[], &keys);
        assert_eq!(nodes[0].n, 1000);
        assert!(nodes[0].split);
        assert!(nodes.iter().all(|n| n.split == (n.n > SPLIT_ABOVE)));
        // Every split node's children hold exactly its players.
        for parent in nodes.iter().filter(|n| n.split) {
            let below: i64 = nodes
                .iter()
                .filter(|c| c.depth() == parent.depth() + 1 && c.prefix.starts_with(&parent.prefix))
                .map(|c| c.n)
                .sum();
            assert_eq!(below, parent.n);
        }
        let small = build(&[], &keys[..SPLIT_ABOVE as usize]);
        assert_eq!(small.len(), 1);
        assert!(!small[0].split);
    }

    #[test]
    fn a_move_changes_the_paths_below_the_shared_node() {
        let a = IndexKey::new(5, 100);
        let b = IndexKey::new(5, 300);
        assert_eq!(first_changed_depth(None, &a), Some(0));
        assert_eq!(first_changed_depth(Some(&a), &a), None);
        assert_eq!(first_changed_depth(Some(&a), &b), Some(a.shared_depth(&b) + 1));
        assert_eq!(a.shared_depth(&b), 14);
    }
}
