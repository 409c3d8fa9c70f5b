//! The data API's operations, shared by the management API (`/api/v1/app/{app}/...`,
//! token-authenticated) and the portal modes (`/h/...`, API-key-authenticated): each
//! checks its input, is metered, and turns store answers into the API's.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use axum::http::header::{ETAG, IF_MATCH};
use chrono::{DateTime, Utc};
use hookd_core::data::{BodySchema, increment, merge_patch};
use hookd_core::id::{ApplicationId, OrgId};
use hookd_core::name::{DataName, ItemKey};
use hookd_store::{
    CollectionData, Document, DocumentChange, DocumentEdit, DocumentFilter, DocumentWritten, ScoreEntry,
    StoreError,
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The id of the application `key` (id or uid) names, remembered for a moment.
pub async fn app_id(state: &AppState, org: &OrgId, key: &str) -> ApiResult<ApplicationId> {
    let cache_key = (org.clone(), key.to_owned());
    if let Some(id) = state.lookups.apps.get(&cache_key) {
        return Ok(id);
    }
    let app = state.store.get_application(org, key).await?;
    state.lookups.apps.put(cache_key, app.id.clone());
    Ok(app.id)
}

/// A page of an application's collections, leaderboards or modes, each answered by
/// `out`; the cursor is the stored name.
pub async fn list_definitions<T>(
    state: &AppState,
    org: &OrgId,
    app: &str,
    kind: hookd_store::DefinitionKind,
    page: &crate::pagination::Pagination,
    out: impl Fn(hookd_store::Definition) -> ApiResult<T>,
) -> ApiResult<crate::pagination::ListResponse<T>> {
    let app = app_id(state, org, app).await?;
    let query = page.to_query(hookd_store::Order::Ascending)?;
    let page = state.store.list_definitions(org, &app, kind, &query).await?;
    let items = page
        .items
        .into_iter()
        .map(|d| Ok((d.name.clone(), out(d)?)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(crate::pagination::ListResponse::from_page(
        hookd_store::Page {
            items,
            has_more: page.has_more,
        },
        |(name, _)| name.clone(),
        |(_, item)| item,
    ))
}

/// Runs a data operation under the organisation's quota and counts it when it
/// succeeds.
pub async fn metered<T, F>(state: &AppState, org: &OrgId, write: bool, op: F) -> ApiResult<T>
where
    F: Future<Output = Result<T, StoreError>>,
{
    state.meter.check(state.store.as_ref(), org, write).await?;
    let value = op.await?;
    state.meter.record(org, write);
    Ok(value)
}

/// A name in a path, or 422 naming the path parameter.
pub fn path_name(value: &str, what: &str) -> ApiResult<DataName> {
    value
        .parse()
        .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(&["path", what], e.message))
}

/// A key or player id in a path, or 422 naming the path parameter.
pub fn path_key(value: &str, what: &str) -> ApiResult<ItemKey> {
    value
        .parse()
        .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(&["path", what], e.message))
}

/// Checks a JSON Schema given in a body field.
pub fn check_schema(schema: Option<&Value>, field: &str) -> ApiResult<()> {
    match schema {
        Some(s) => BodySchema::compile(s)
            .map(|_| ())
            .map_err(|e| ApiError::invalid(&["body", field], e.message)),
        None => Ok(()),
    }
}

/// Checks a request body against a mode's schema: 422 listing what is wrong.
pub fn check_body(schema: Option<&Value>, body: &Value) -> ApiResult<()> {
    let Some(schema) = schema else {
        return Ok(());
    };
    let compiled =
        BodySchema::compile(schema).map_err(|e| ApiError::invalid(&["mode", "bodySchema"], e.message))?;
    compiled.check(body).map_err(schema_errors)
}

fn schema_errors(errors: Vec<String>) -> ApiError {
    ApiError::Validation(
        errors
            .into_iter()
            .map(|msg| crate::error::ValidationItem {
                loc: vec!["body".into()],
                msg,
                kind: "value_error.schema".into(),
            })
            .collect(),
    )
}

/// The version `If-Match` requires: `None` without the header, `Some(None)` for `*`
/// (the document must exist).
pub fn if_match(headers: &HeaderMap) -> ApiResult<Option<Option<i64>>> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let bad = || ApiError::BadRequest {
        code: "invalid_if_match",
        detail: "If-Match must be a document version (its ETag, e.g. \"3\") or *".into(),
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(Some(None));
    }
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<i64>().map(|v| Some(Some(v))).map_err(|_| bad())
}

/// A document's `ETag`: its version.
pub fn etag(doc: &Document) -> [(axum::http::HeaderName, String); 1] {
    [(ETAG, format!("\"{}\"", doc.version))]
}

fn check_version(required: Option<Option<i64>>, current: Option<&Document>) -> Result<(), StoreError> {
    match (required, current) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(StoreError::Precondition(
            "If-Match names a version, but the document does not exist".into(),
        )),
        (Some(None), Some(_)) => Ok(()),
        (Some(Some(v)), Some(doc)) if doc.version == v => Ok(()),
        (Some(Some(v)), Some(doc)) => Err(StoreError::Precondition(format!(
            "the document is at version {}, not {v}; read it again and retry",
            doc.version
        ))),
    }
}

fn check_document(collection: &CollectionData, body: Value) -> Result<DocumentChange, StoreError> {
    if !body.is_object() {
        return Err(StoreError::rejected("", "a document is a JSON object"));
    }
    if let Some(schema) = &collection.schema {
        let compiled = BodySchema::compile(schema).map_err(|e| StoreError::rejected("schema", e.message))?;
        compiled
            .check(&body)
            .map_err(|errors| StoreError::rejected("", errors.join("; ")))?;
    }
    Ok(DocumentChange::Put(body))
}

/// What a document write does.
#[derive(Debug, Clone)]
pub enum DocumentOp {
    /// Create or replace.
    Put(Value),
    /// Merge-patch (RFC 7386), creating the document when missing.
    Patch(Value),
    /// Add to numeric fields.
    Increment(Map<String, Value>),
    Delete,
}

impl DocumentOp {
    /// The store edit: the version check, the change, then the collection's schema.
    pub fn edit(self, required: Option<Option<i64>>) -> DocumentEdit {
        Box::new(move |collection, current| {
            check_version(required, current)?;
            let mut body = current.map_or_else(|| Value::Object(Map::new()), |d| d.body.clone());
            match self {
                Self::Put(new) => return check_document(collection, new),
                Self::Patch(patch) => {
                    if !patch.is_object() {
                        return Err(StoreError::rejected("", "a merge patch is a JSON object"));
                    }
                    merge_patch(&mut body, &patch);
                }
                Self::Increment(deltas) => {
                    if let Value::Object(fields) = &mut body {
                        increment(fields, &deltas).map_err(|e| StoreError::rejected("", e.message))?;
                    }
                }
                Self::Delete => {
                    return Ok(if current.is_some() {
                        DocumentChange::Delete
                    } else {
                        DocumentChange::Keep
                    });
                }
            }
            check_document(collection, body)
        })
    }
}

/// Writes a document (metered as a write) and wakes the engine for its change event.
pub async fn write_document(
    state: &AppState,
    org: &OrgId,
    app: &ApplicationId,
    collection: &DataName,
    key: &ItemKey,
    op: DocumentOp,
    required: Option<Option<i64>>,
) -> ApiResult<DocumentWritten> {
    let deleting = matches!(op, DocumentOp::Delete);
    let retain = Utc::now() + chrono::Duration::days(crate::api::message::DEFAULT_RETENTION_DAYS);
    let written = metered(
        state,
        org,
        true,
        state
            .store
            .write_document(org, app, collection, key, op.edit(required), retain),
    )
    .await?;
    if written.event_deliveries > 0 {
        state.wake_dispatcher();
    }
    if deleting && written.before.is_none() {
        return Err(ApiError::not_found("document"));
    }
    Ok(written)
}

/// Answers a document write: 201 when it created the document, else 200; with the
/// document and its `ETag`.
pub fn written_response(w: DocumentWritten) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let created = w.before.is_none();
    let doc = w.after.ok_or_else(|| ApiError::not_found("document"))?;
    let status = if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, etag(&doc), axum::Json(DocumentOut::from(doc))).into_response())
}

/// Equality filters from query parameters: each value is read as JSON when it is a
/// JSON string, number or boolean (`level=3`, `active=true`, `zip="01234"`), else as a
/// string (`team=red`).
pub fn equality_filters(
    params: &BTreeMap<String, String>,
    reserved: &[&str],
) -> ApiResult<Vec<(String, Value)>> {
    let mut equals = Vec::new();
    for (field, raw) in params {
        if reserved.contains(&field.as_str()) {
            continue;
        }
        if field.is_empty()
            || field.len() > 64
            || !field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ApiError::invalid(
                &["query", field],
                "filter on top-level fields named by letters, digits, `_` and `-`",
            ));
        }
        let value = match serde_json::from_str::<Value>(raw) {
            Ok(v @ (Value::String(_) | Value::Bool(_))) => v,
            Ok(Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n),
            Ok(Value::Number(_)) => {
                return Err(ApiError::invalid(
                    &["query", field],
                    "filter numbers must be integers",
                ));
            }
            _ => Value::String(raw.clone()),
        };
        equals.push((field.clone(), value));
    }
    if equals.len() > 8 {
        return Err(ApiError::invalid(&["query"], "at most 8 field filters"));
    }
    Ok(equals)
}

/// A document filter from a listing's query parameters.
pub fn document_filter(params: &BTreeMap<String, String>, reserved: &[&str]) -> ApiResult<DocumentFilter> {
    let prefix = params.get("prefix").filter(|p| !p.is_empty()).cloned();
    if let Some(p) = &prefix {
        p.parse::<ItemKey>()
            .map_err(|e| ApiError::invalid(&["query", "prefix"], e.message))?;
    }
    let mut reserved = reserved.to_vec();
    reserved.push("prefix");
    Ok(DocumentFilter {
        prefix,
        equals: equality_filters(params, &reserved)?,
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentOut {
    #[schema(value_type = String)]
    pub key: ItemKey,
    /// Grows by one with every change; also the `ETag`.
    pub version: i64,
    #[schema(value_type = Object)]
    pub data: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Document> for DocumentOut {
    fn from(d: Document) -> Self {
        Self {
            key: d.key,
            version: d.version,
            data: d.body,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScoreOut {
    #[schema(value_type = String)]
    pub player: ItemKey,
    pub score: i64,
    pub rank: u64,
    pub achieved_at: DateTime<Utc>,
}

impl From<ScoreEntry> for ScoreOut {
    fn from(e: ScoreEntry) -> Self {
        Self {
            player: e.player,
            score: e.score,
            rank: e.rank,
            achieved_at: e.achieved_at,
        }
    }
}

/// A leaderboard listing: the period it is of and its entries, best first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScoresOut {
    pub period: String,
    pub data: Vec<ScoreOut>,
}

impl ScoresOut {
    pub fn new((period, entries): (String, Vec<ScoreEntry>)) -> Self {
        Self {
            period,
            data: entries.into_iter().map(ScoreOut::from).collect(),
        }
    }
}

/// The body of a score submission.
#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct ScoreIn {
    /// An integer within ±(2^53 − 1).
    pub score: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScoreSubmittedOut {
    pub period: String,
    /// Whether the player's score changed (a worse score under `best` does not).
    pub changed: bool,
    #[serde(flatten)]
    pub entry: ScoreOut,
}

impl From<hookd_store::ScoreSubmitted> for ScoreSubmittedOut {
    fn from(s: hookd_store::ScoreSubmitted) -> Self {
        Self {
            period: s.period,
            changed: s.changed,
            entry: s.entry.into(),
        }
    }
}
