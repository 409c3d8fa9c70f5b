//! What the data API keeps: the definitions of an application's collections,
//! leaderboards and portal modes, its documents and scores, its API keys, and the
//! usage of each organisation per day.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use hookd_core::api_token::TokenHash;
use hookd_core::data::{ModeOperation, PeriodKey, ResetPeriod, ScoreOrder, ScorePolicy};
use hookd_core::id::{ApiKeyId, ApplicationId, OrgId};
use hookd_core::name::{ChannelName, DataName, EventTypeName, ItemKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{NewMessage, StoreResult};

/// A collection of JSON documents.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionData {
    #[serde(default)]
    pub description: String,
    /// A JSON Schema every document must satisfy.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Publish `document.created|updated|deleted` messages to the application's
    /// endpoints (on the channel named after the collection).
    #[serde(default)]
    pub publish_events: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderboardData {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub policy: ScorePolicy,
    #[serde(default)]
    pub order: ScoreOrder,
    #[serde(default)]
    pub reset: ResetPeriod,
}

/// A portal mode: `METHOD /h/{account}/{app}/{name}/{data...}` runs `operation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModeData {
    #[serde(default)]
    pub description: String,
    pub operation: ModeOperation,
    /// The collection or leaderboard the operation works on (`None` for
    /// `message.publish`).
    #[serde(default)]
    pub target: Option<DataName>,
    /// A JSON Schema the request body must satisfy.
    #[serde(default)]
    pub body_schema: Option<Value>,
}

/// What a definition defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionKind {
    Collection,
    Leaderboard,
    Mode,
}

impl DefinitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Collection => "collection",
            Self::Leaderboard => "leaderboard",
            Self::Mode => "mode",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Collection, Self::Leaderboard, Self::Mode]
            .into_iter()
            .find(|k| k.as_str() == code)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DefinitionSpec {
    Collection(CollectionData),
    Leaderboard(LeaderboardData),
    Mode(ModeData),
}

impl DefinitionSpec {
    pub fn kind(&self) -> DefinitionKind {
        match self {
            Self::Collection(_) => DefinitionKind::Collection,
            Self::Leaderboard(_) => DefinitionKind::Leaderboard,
            Self::Mode(_) => DefinitionKind::Mode,
        }
    }

    /// The stored form (the kind is stored beside it).
    pub fn to_value(&self) -> Value {
        let value = match self {
            Self::Collection(d) => serde_json::to_value(d),
            Self::Leaderboard(d) => serde_json::to_value(d),
            Self::Mode(d) => serde_json::to_value(d),
        };
        // Plain structs of strings, numbers and JSON values always serialise.
        value.unwrap_or(Value::Null)
    }

    pub fn from_value(kind: DefinitionKind, value: Value) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            DefinitionKind::Collection => Self::Collection(serde_json::from_value(value)?),
            DefinitionKind::Leaderboard => Self::Leaderboard(serde_json::from_value(value)?),
            DefinitionKind::Mode => Self::Mode(serde_json::from_value(value)?),
        })
    }
}

/// A collection, leaderboard or mode of an application. Names are unique per
/// application and kind; a mode's name is `{name} {METHOD}` (see [`mode_key`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub name: String,
    pub spec: DefinitionSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The stored name of the mode `name` for `method` (one mode per name and method).
pub fn mode_key(name: &DataName, method: &str) -> String {
    format!("{name} {}", method.to_ascii_uppercase())
}

/// A JSON document of a collection. `version` starts at 1 and grows by one with every
/// change; it is the document's `ETag`.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub key: ItemKey,
    pub body: Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a [`DocumentEdit`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentChange {
    /// Store this body (creating the document when it does not exist).
    Put(Value),
    Delete,
    /// Leave everything as it is.
    Keep,
}

/// Decides a document's change from its collection and current state, inside the
/// backend's transaction (so increments and version checks never race). An error
/// aborts the change.
pub type DocumentEdit =
    Box<dyn FnOnce(&CollectionData, Option<&Document>) -> StoreResult<DocumentChange> + Send>;

/// A put of the body the document already has is no change: the version stays and
/// no event is published.
pub fn unchanged_is_kept(change: DocumentChange, current: Option<&Document>) -> DocumentChange {
    match (change, current) {
        (DocumentChange::Put(body), Some(doc)) if doc.body == body => DocumentChange::Keep,
        (change, _) => change,
    }
}

/// What a document write does, decided without IO from the collection, the document
/// as it is and the edit; both backends run it inside their transaction and then carry
/// out [`DocumentPlan::write`] and insert [`DocumentPlan::event`].
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentPlan {
    pub before: Option<Document>,
    pub after: Option<Document>,
    /// The change event to publish with the write (`None`: nothing changed, or the
    /// collection does not publish).
    pub event: Option<NewMessage>,
}

/// The row change a [`DocumentPlan`] asks of the backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DocumentWrite<'a> {
    /// Nothing changed.
    None,
    /// Insert the document, or replace the stored one.
    Upsert(&'a Document),
    Delete,
}

/// Plans the write of document `key` in `collection_name`: runs `edit`, keeps a put of
/// the same body as no change, gives a put the next version (1 for a new document,
/// `now` as its update time) and decides the change event.
pub fn plan_document_write(
    collection_name: &DataName,
    collection: &CollectionData,
    key: &ItemKey,
    before: Option<Document>,
    edit: DocumentEdit,
    now: DateTime<Utc>,
    event_retain_until: DateTime<Utc>,
) -> StoreResult<DocumentPlan> {
    let after = match unchanged_is_kept(edit(collection, before.as_ref())?, before.as_ref()) {
        DocumentChange::Keep => before.clone(),
        DocumentChange::Delete => None,
        DocumentChange::Put(body) => Some(Document {
            key: key.clone(),
            body,
            version: before.as_ref().map_or(1, |d| d.version + 1),
            created_at: before.as_ref().map_or(now, |d| d.created_at),
            updated_at: now,
        }),
    };
    let event = (before != after)
        .then(|| {
            change_event(
                collection_name.as_str(),
                collection,
                before.as_ref(),
                after.as_ref(),
                event_retain_until,
            )
        })
        .flatten();
    Ok(DocumentPlan { before, after, event })
}

impl DocumentPlan {
    /// The row change this plan needs.
    pub fn write(&self) -> DocumentWrite<'_> {
        match (&self.before, &self.after) {
            (before, Some(after)) if before.as_ref() != Some(after) => DocumentWrite::Upsert(after),
            (Some(_), None) => DocumentWrite::Delete,
            _ => DocumentWrite::None,
        }
    }

    /// The outcome, once the event (if any) was inserted with `event_deliveries`.
    pub fn written(self, event_deliveries: usize) -> DocumentWritten {
        DocumentWritten {
            before: self.before,
            after: self.after,
            event_deliveries,
        }
    }
}

/// A document write's outcome: the document before and after (`None`: absent), and
/// whether a change event was queued.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentWritten {
    pub before: Option<Document>,
    pub after: Option<Document>,
    /// Endpoints the change event goes to (0 when none was published).
    pub event_deliveries: usize,
}

/// Narrows a document listing: keys starting with `prefix`, top-level fields equal to
/// the given strings, numbers or booleans.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocumentFilter {
    pub prefix: Option<String>,
    pub equals: Vec<(String, Value)>,
}

/// The change event of a document write to a collection that publishes them, or
/// `None` (nothing changed, or the collection does not publish).
pub fn change_event(
    collection_name: &str,
    collection: &CollectionData,
    before: Option<&Document>,
    after: Option<&Document>,
    retain_until: DateTime<Utc>,
) -> Option<NewMessage> {
    if !collection.publish_events {
        return None;
    }
    let (kind, doc) = match (before, after) {
        (None, Some(doc)) => ("document.created", doc),
        (Some(_), Some(doc)) => ("document.updated", doc),
        (Some(doc), None) => ("document.deleted", doc),
        (None, None) => return None,
    };
    let payload = serde_json::json!({
        "collection": collection_name,
        "key": doc.key,
        "version": doc.version,
        "document": after.map(|d| &d.body),
        "previous": before.map(|d| &d.body),
    });
    Some(NewMessage {
        event_type: EventTypeName::from_trusted(kind.into()),
        event_id: None,
        channels: collection_name
            .parse::<ChannelName>()
            .ok()
            .map(|c| BTreeSet::from([c])),
        tags: BTreeSet::new(),
        payload: payload.to_string(),
        retain_until,
        only_endpoint: None,
        forward: None,
        flow_runs: Default::default(),
        deliver_at: None,
    })
}

/// A player's standing on a leaderboard. Ranks start at 1; equal scores rank by who
/// reached the score first, then by player id.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreEntry {
    pub player: ItemKey,
    pub score: i64,
    pub rank: u64,
    /// When the player reached this score.
    pub achieved_at: DateTime<Utc>,
}

/// Which period of a leaderboard to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Period {
    /// The period this moment falls in.
    At(DateTime<Utc>),
    /// A period by its key (see [`hookd_core::data::period_key`]).
    Named(PeriodKey),
}

impl Period {
    pub fn key(&self, reset: hookd_core::data::ResetPeriod) -> String {
        match self {
            Self::At(at) => hookd_core::data::period_key(reset, *at),
            Self::Named(key) => key.as_str().to_owned(),
        }
    }
}

/// The score to store for a submission of `submitted` by a player whose score in the
/// period is `current`, under the board's policy and order; `None` when the stored
/// score stays (a worse score under `best`, or the same score). A score, or a sum
/// under `sum`, past `±MAX_SCORE` is refused, naming `score`.
pub fn score_to_store(
    board: &LeaderboardData,
    current: Option<i64>,
    submitted: i64,
) -> StoreResult<Option<i64>> {
    let new = hookd_core::data::combine_score(board.policy, board.order, current, submitted)
        .map_err(|e| crate::StoreError::rejected("score", e.message))?;
    Ok(new.filter(|n| current != Some(*n)))
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoreSubmitted {
    /// The period the score counts in (see [`hookd_core::data::period_key`]).
    pub period: String,
    pub entry: ScoreEntry,
    /// Whether the player's score changed (a worse score under `best` does not).
    pub changed: bool,
}

/// An API key of the data API, scoped to one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyData {
    pub name: String,
    /// May run reading operations.
    pub read: bool,
    /// May run writing operations.
    pub write: bool,
    /// Only these modes (`None`: every mode of the application).
    #[serde(default)]
    pub modes: Option<BTreeSet<DataName>>,
    /// Requests per second this key may make (`None`: the server's default).
    #[serde(default)]
    pub rate_limit: Option<u32>,
}

#[derive(Debug)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub hash: TokenHash,
    pub data: ApiKeyData,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub app_id: ApplicationId,
    pub hash: TokenHash,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub data: ApiKeyData,
}

/// Data operations and the credits they cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageCount {
    pub reads: u64,
    pub writes: u64,
    pub credits: u64,
}

impl UsageCount {
    pub fn add(&mut self, other: UsageCount) {
        self.reads += other.reads;
        self.writes += other.writes;
        self.credits += other.credits;
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An organisation's usage on one day (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageDay {
    pub day: NaiveDate,
    pub count: UsageCount,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn doc(body: Value, version: i64) -> Document {
        Document {
            key: "k".parse().unwrap(),
            body,
            version,
            created_at: at(0),
            updated_at: at(1),
        }
    }

    fn plan(publish: bool, before: Option<Document>, change: DocumentChange) -> DocumentPlan {
        let collection = CollectionData {
            publish_events: publish,
            ..CollectionData::default()
        };
        plan_document_write(
            &"orders".parse().unwrap(),
            &collection,
            &"k".parse().unwrap(),
            before,
            Box::new(move |_, _| Ok(change)),
            at(10),
            at(99),
        )
        .unwrap()
    }

    #[test]
    fn a_new_document_is_version_one_and_announced_as_created() {
        let p = plan(true, None, DocumentChange::Put(json!({"a": 1})));
        let after = p.after.clone().unwrap();
        assert_eq!(
            (after.version, after.created_at, after.updated_at),
            (1, at(10), at(10))
        );
        assert_eq!(p.write(), DocumentWrite::Upsert(&after));
        let event = p.event.as_ref().unwrap();
        assert_eq!(event.event_type.as_str(), "document.created");
        assert_eq!(event.retain_until, at(99));
        assert_eq!(p.written(2).event_deliveries, 2);
    }

    #[test]
    fn an_update_keeps_the_creation_time_and_takes_the_next_version() {
        let p = plan(
            false,
            Some(doc(json!({"a": 1}), 4)),
            DocumentChange::Put(json!({"a": 2})),
        );
        let after = p.after.clone().unwrap();
        assert_eq!(
            (after.version, after.created_at, after.updated_at),
            (5, at(0), at(10))
        );
        assert_eq!(p.write(), DocumentWrite::Upsert(&after));
        assert!(p.event.is_none(), "the collection does not publish");
    }

    #[test]
    fn the_same_body_again_or_a_delete_of_nothing_writes_nothing() {
        let same = plan(
            true,
            Some(doc(json!({"a": 1}), 4)),
            DocumentChange::Put(json!({"a": 1})),
        );
        assert_eq!(same.write(), DocumentWrite::None);
        assert_eq!(same.after.as_ref().map(|d| d.version), Some(4));
        assert!(same.event.is_none());
        let nothing = plan(true, None, DocumentChange::Delete);
        assert_eq!(
            (nothing.write(), nothing.event.is_none()),
            (DocumentWrite::None, true)
        );
        let kept = plan(true, Some(doc(json!(1), 1)), DocumentChange::Keep);
        assert_eq!((kept.write(), kept.event.is_none()), (DocumentWrite::None, true));
    }

    #[test]
    fn a_delete_of_a_document_is_announced_with_its_last_body() {
        let p = plan(true, Some(doc(json!({"a": 1}), 2)), DocumentChange::Delete);
        assert_eq!(p.write(), DocumentWrite::Delete);
        let event = p.event.unwrap();
        assert_eq!(event.event_type.as_str(), "document.deleted");
        let payload: Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(payload["previous"], json!({"a": 1}));
        assert_eq!(payload["document"], Value::Null);
    }

    #[test]
    fn an_edit_that_refuses_aborts_the_plan() {
        let refused = plan_document_write(
            &"orders".parse().unwrap(),
            &CollectionData::default(),
            &"k".parse().unwrap(),
            None,
            Box::new(|_, _| Err(crate::StoreError::rejected("body", "no"))),
            at(10),
            at(99),
        );
        assert!(refused.is_err());
    }

    #[test]
    fn a_score_is_stored_only_when_it_changes() {
        let board = |policy| LeaderboardData {
            policy,
            ..LeaderboardData::default()
        };
        let best = board(ScorePolicy::Best);
        assert_eq!(score_to_store(&best, None, 5).unwrap(), Some(5));
        assert_eq!(score_to_store(&best, Some(7), 5).unwrap(), None, "worse");
        assert_eq!(score_to_store(&best, Some(7), 7).unwrap(), None, "the same");
        assert_eq!(score_to_store(&best, Some(7), 9).unwrap(), Some(9));
        let sum = board(ScorePolicy::Sum);
        assert_eq!(score_to_store(&sum, Some(7), 0).unwrap(), None);
        assert_eq!(score_to_store(&sum, Some(7), 3).unwrap(), Some(10));
        assert!(score_to_store(&sum, Some(hookd_core::data::MAX_SCORE), 1).is_err());
        assert_eq!(
            score_to_store(&board(ScorePolicy::Latest), Some(7), 2).unwrap(),
            Some(2)
        );
    }
}
