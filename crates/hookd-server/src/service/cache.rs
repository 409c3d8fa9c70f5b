//! Lookups the API repeats on nearly every request — a token's stored record, an
//! application's id by its uid — remembered for [`TRUST`] so that a busy sender does
//! not pay two database reads (and two thread hand-offs) per message.
//!
//! What a stale entry can do, and why it is safe:
//! - a token revoked by the CLI or on another node keeps working for at most [`TRUST`]
//!   on this node (the presented secret is still checked against the stored hash on
//!   every request, in constant time);
//! - an application deleted meanwhile: the message insert finds it gone and answers
//!   404 (the store checks the row it writes against); this node's own changes to
//!   applications clear the entries at once;
//! - the flows a trigger starts: a flow created or enabled on another node starts
//!   being run within [`TRUST`]; a run of a flow deleted or disabled meanwhile is not
//!   inserted (the store checks the flow row in the same transaction); this node's
//!   own changes to flows clear the entries at once;
//! - a flow's definition as the runner uses it: a change made on another node reaches
//!   runs in progress within [`TRUST`]; this node's own changes at once;
//! - a source by its URL token (the receive path): a source deleted, changed or
//!   given a new token on another node takes effect within [`TRUST`] on this node;
//!   this node's own changes to sources and applications clear the entries at once.
//!   Only a source's current token is remembered: an old one (within its grace after
//!   a rotation) is looked up each time, so its grace ends on time, and a stranger
//!   trying tokens fills nothing.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use hookd_core::id::{ApiKeyId, ApplicationId, FlowId, OrgId, TokenId};
use hookd_store::{ApiKeyRecord, ModeData, Source, TokenRecord};

/// How long a remembered lookup is used.
pub const TRUST: Duration = Duration::from_secs(1);
/// Entries kept at most; past it, expired ones are dropped (and, if none had
/// expired, all of them).
const MAX_ENTRIES: usize = 10_000;

/// A map of recent lookups, each used for [`TRUST`] after it was made.
#[derive(Debug)]
pub struct Recent<K, V> {
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    /// The value remembered for `key` (any borrowed form of it, as `HashMap::get`
    /// takes: a token is looked up as a `&str`, with no copy per request).
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(at, _)| at.elapsed() < TRUST)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: K, value: V) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (at, _)| at.elapsed() < TRUST);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (Instant::now(), value));
    }

    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The lookups the API remembers.
#[derive(Debug, Default)]
pub struct Lookups {
    /// A token's stored record, by the token's id.
    pub tokens: Recent<TokenId, TokenRecord>,
    /// An application's id, by organisation and the id or uid a request named.
    pub apps: Recent<(OrgId, String), ApplicationId>,
    /// A data API key's stored record, by the key's id.
    pub api_keys: Recent<ApiKeyId, ApiKeyRecord>,
    /// An organisation's id, by the id or name a portal URL named.
    pub orgs: Recent<String, OrgId>,
    /// A portal mode (`None`: there is none), by application and stored mode name.
    pub modes: Recent<(ApplicationId, String), Option<ModeData>>,
    /// A flow's definition as the runner uses it, by organisation and id.
    pub flow_definitions: Recent<(OrgId, FlowId), Arc<crate::service::flow::KnownFlow>>,
    /// The enabled flows listening to a trigger, by organisation and trigger key.
    pub flows: Recent<(OrgId, String), Arc<Vec<crate::service::flow::triggers::Listener>>>,
    /// A source and its organisation, by a URL token that names it.
    pub sources: Recent<String, Arc<(OrgId, Source)>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_used_for_a_while_then_forgotten() {
        let recent: Recent<u32, &str> = Recent::default();
        recent.put(1, "one");
        assert_eq!(recent.get(&1), Some("one"));
        assert_eq!(recent.get(&2), None);
        recent.clear();
        assert_eq!(recent.get(&1), None);
        let map = Recent::<u32, u32>::default();
        map.map.lock().unwrap().insert(7, (Instant::now() - TRUST, 7));
        assert_eq!(map.get(&7), None, "older than TRUST");
    }

    #[test]
    fn it_stays_bounded() {
        let recent: Recent<usize, usize> = Recent::default();
        for i in 0..(MAX_ENTRIES * 2 + 5) {
            recent.put(i, i);
        }
        assert!(recent.map.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
