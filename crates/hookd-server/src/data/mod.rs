//! The data API — collections of JSON documents, leaderboards, modes and API keys:
//! the management API under `/api/v1/app/{app}/...` (token-authenticated) and the
//! modes served at `/h/{account}/{app}/{mode}/...` (API-key-authenticated,
//! [`mode_call`]). The operations themselves are the service layer's
//! (`crate::service::data`); this module holds what both kinds of handler share on the
//! wire: path parameters, `If-Match`/`ETag`, listing filters and the answer shapes.

pub mod api_key;
pub mod collection;
pub mod leaderboard;
pub mod mode;
pub mod mode_call;

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use axum::http::header::{ETAG, IF_MATCH};
use chrono::{DateTime, Utc};
use hookd_core::name::{DataName, ItemKey};
use hookd_store::{Document, DocumentFilter, DocumentWritten, ScoreEntry};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};

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
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
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
