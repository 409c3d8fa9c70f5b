//! The data API's operations, shared by the management API (`/api/v1/app/{app}/...`,
//! token-authenticated) and the data API's modes (`/h/...`, API-key-authenticated):
//! each checks its input, is metered, and wakes the delivery engine for the change
//! events it commits.

use axum::http::Method;
use std::sync::Arc;

use chrono::NaiveDate;
use hookd_core::data::ModeTarget;
use hookd_core::data::{BodySchema, increment, merge_patch};
use hookd_core::data::{ResetPeriod, ScorePolicy};
use hookd_core::id::{ApiKeyId, ApplicationId, OrgId};
use hookd_core::name::{DataName, ItemKey};
use hookd_store::{
    ApiKeyRecord, CollectionData, Definition, DefinitionKind, DefinitionSpec, Document, DocumentChange,
    DocumentEdit, DocumentWritten, LeaderboardData, ModeData, StoreError, UsageDay, mode_key,
};
use serde_json::{Map, Value};

use crate::http::error::{ApiError, ApiResult};
use crate::service::Service;

/// The id of the application `key` (id or uid) names, remembered for a moment.
pub async fn app_id(state: &Service, org: &OrgId, key: &str) -> ApiResult<ApplicationId> {
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
    state: &Service,
    org: &OrgId,
    app: &str,
    kind: hookd_store::DefinitionKind,
    page: &crate::http::pagination::Pagination,
    out: impl Fn(hookd_store::Definition) -> ApiResult<T>,
) -> ApiResult<crate::http::pagination::ListResponse<T>> {
    let app = app_id(state, org, app).await?;
    let query = page.to_query(hookd_store::Order::Ascending)?;
    let page = state.store.list_definitions(org, &app, kind, &query).await?;
    let items = page
        .items
        .into_iter()
        .map(|d| Ok((d.name.clone(), out(d)?)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(crate::http::pagination::ListResponse::from_page(
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
pub async fn metered<T, E, F>(state: &Service, org: &OrgId, write: bool, op: F) -> ApiResult<T>
where
    E: Into<ApiError>,
    F: Future<Output = Result<T, E>>,
{
    state.meter.check(state.store.as_ref(), org, write).await?;
    let value = op.await.map_err(Into::into)?;
    state.meter.record(org, write);
    Ok(value)
}

/// Checks a JSON Schema given in a body field: an object (the boolean schemas `true`
/// and `false` say nothing a missing or closed schema does not).
pub fn check_schema(schema: Option<&Value>, field: &str) -> ApiResult<()> {
    match schema {
        Some(s) if !s.is_object() => Err(ApiError::invalid(
            &["body", field],
            "a JSON Schema object, e.g. {\"type\": \"object\"}",
        )),
        Some(s) => BodySchema::compile(s)
            .map(|_| ())
            .map_err(|e| ApiError::invalid(&["body", field], e.message)),
        None => Ok(()),
    }
}

/// Checks a request body against a mode's schema: 422 listing what is wrong.
pub fn check_body(state: &Service, schema: Option<&Value>, body: &Value) -> ApiResult<()> {
    let Some(schema) = schema else {
        return Ok(());
    };
    let compiled = state
        .schemas
        .get(schema)
        .map_err(|e| ApiError::invalid(&["mode", "bodySchema"], e.message))?;
    compiled.check(body).map_err(schema_errors)
}

/// Compiled JSON Schemas by their text. A collection's or mode's schema is compiled
/// once per version of it (a changed schema is another text), not on every write — and
/// never inside the SQLite writer after its first use.
#[derive(Debug, Default)]
pub struct Schemas {
    map: std::sync::Mutex<std::collections::HashMap<String, Arc<BodySchema>>>,
    compiled: std::sync::atomic::AtomicUsize,
}

impl Schemas {
    /// Distinct schemas kept at most; past it the map starts again.
    const MAX: usize = 1_000;

    /// The compiled form of `schema`.
    pub fn get(&self, schema: &Value) -> Result<Arc<BodySchema>, hookd_core::InvalidValue> {
        let text = schema.to_string();
        let lock = || self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(compiled) = lock().get(&text) {
            return Ok(Arc::clone(compiled));
        }
        let compiled = Arc::new(BodySchema::compile(schema)?);
        self.compiled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = lock();
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(text, Arc::clone(&compiled));
        Ok(compiled)
    }

    /// How many compilations this cache has made.
    pub fn compilations(&self) -> usize {
        self.compiled.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn schema_errors(errors: Vec<String>) -> ApiError {
    ApiError::Validation(
        errors
            .into_iter()
            .map(|msg| crate::http::error::ValidationItem {
                loc: vec!["body".into()],
                msg,
                kind: "value_error.schema".into(),
            })
            .collect(),
    )
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

fn check_document(
    schemas: &Schemas,
    collection: &CollectionData,
    body: Value,
) -> Result<DocumentChange, StoreError> {
    if !body.is_object() {
        return Err(StoreError::rejected("", "a document is a JSON object"));
    }
    if let Some(schema) = &collection.schema {
        let compiled = schemas
            .get(schema)
            .map_err(|e| StoreError::rejected("schema", e.message))?;
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
    pub fn edit(self, required: Option<Option<i64>>, schemas: Arc<Schemas>) -> DocumentEdit {
        Box::new(move |collection, current| {
            check_version(required, current)?;
            let mut body = current.map_or_else(|| Value::Object(Map::new()), |d| d.body.clone());
            match self {
                Self::Put(new) => return check_document(&schemas, collection, new),
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
            check_document(&schemas, collection, body)
        })
    }
}

/// Writes a document (metered as a write) and wakes the engine for its change event.
pub async fn write_document(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    collection: &DataName,
    key: &ItemKey,
    op: DocumentOp,
    required: Option<Option<i64>>,
) -> ApiResult<DocumentWritten> {
    let deleting = matches!(op, DocumentOp::Delete);
    let retain = crate::service::message::default_retain_until();
    let runs = crate::service::flow::triggers::document_runs(state, org, app, collection, 0).await?;
    let starts_runs = !runs.is_none();
    let written = metered(
        state,
        org,
        true,
        state.store.write_document_starting(
            org,
            app,
            collection,
            key,
            op.edit(required, Arc::clone(&state.schemas)),
            retain,
            runs,
        ),
    )
    .await?;
    if written.event_deliveries > 0 {
        state.wake_dispatcher();
    }
    if starts_runs {
        crate::service::flow::wake(state);
    }
    if deleting && written.before.is_none() {
        return Err(ApiError::not_found("document"));
    }
    Ok(written)
}

/// Submits `score` for `player` on `board` (metered as a write), committed with the
/// runs of the flows listening to the board (`leaderboard.submitted`).
pub async fn submit_score(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    board: &DataName,
    player: &ItemKey,
    score: i64,
) -> ApiResult<hookd_store::ScoreSubmitted> {
    let runs = crate::service::flow::triggers::score_runs(state, org, app, board, score, 0).await?;
    let starts_runs = !runs.is_none();
    let submitted = metered(
        state,
        org,
        true,
        state
            .store
            .submit_score_starting(org, app, board, player, score, chrono::Utc::now(), runs),
    )
    .await?;
    if starts_runs {
        crate::service::flow::wake(state);
    }
    Ok(submitted)
}

/// Admits a call with `key` under its own rate (429 with `Retry-After` past it).
pub fn admit_key(state: &Service, key: &ApiKeyRecord) -> ApiResult<()> {
    state.meter.admit_key(&key.id, key.data.rate_limit)
}

/// Whether `account` (organisation id or name) and `app` (id or uid) are the key's.
pub async fn key_owns(state: &Service, key: &ApiKeyRecord, account: &str, app: &str) -> ApiResult<bool> {
    let org: Option<OrgId> = match state.lookups.orgs.get(&account.to_owned()) {
        Some(org) => Some(org),
        None => {
            let org = state.store.find_org(account).await?.map(|o| o.id);
            if let Some(id) = &org {
                state.lookups.orgs.put(account.to_owned(), id.clone());
            }
            org
        }
    };
    if org.as_ref() != Some(&key.org_id) {
        return Ok(false);
    }
    match app_id(state, &key.org_id, app).await {
        Ok(id) => Ok(id == key.app_id),
        Err(ApiError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn find_mode(
    state: &Service,
    key: &ApiKeyRecord,
    name: &DataName,
    method: &Method,
) -> ApiResult<ModeData> {
    let stored = mode_key(name, method.as_str());
    let cache_key = (key.app_id.clone(), stored.clone());
    let mode = match state.lookups.modes.get(&cache_key) {
        Some(mode) => mode,
        None => {
            let mode = match state
                .store
                .get_definition(&key.org_id, &key.app_id, DefinitionKind::Mode, &stored)
                .await
            {
                Ok(def) => match def.spec {
                    DefinitionSpec::Mode(m) => Some(m),
                    _ => None,
                },
                Err(StoreError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            };
            state.lookups.modes.put(cache_key, mode.clone());
            mode
        }
    };
    mode.ok_or_else(|| {
        ApiError::NotFound(format!(
            "the application has no {method} handler for the mode {name}"
        ))
    })
}

/// Checks a mode: its operation, and that its target exists and is of the right kind.
async fn check_mode(state: &Service, org: &OrgId, app: &ApplicationId, data: &ModeData) -> ApiResult<()> {
    let kind = match data.operation.target() {
        ModeTarget::Application => {
            if data.target.is_some() {
                return Err(ApiError::invalid(
                    &["body", "target"],
                    format!(
                        "{} acts on the application itself (a flow listens to the mode by name); leave target out",
                        data.operation
                    ),
                ));
            }
            return check_schema(data.body_schema.as_ref(), "bodySchema");
        }
        ModeTarget::Collection => DefinitionKind::Collection,
        ModeTarget::Leaderboard => DefinitionKind::Leaderboard,
    };
    let Some(target) = &data.target else {
        return Err(ApiError::invalid(
            &["body", "target"],
            format!("{} needs the {} it works on", data.operation, kind.as_str()),
        ));
    };
    match state.store.get_definition(org, app, kind, target.as_str()).await {
        Ok(_) => {}
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::invalid(
                &["body", "target"],
                format!("the application has no {} named {target}", kind.as_str()),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if data.body_schema.is_some() && !data.operation.takes_body() {
        return Err(ApiError::invalid(
            &["body", "bodySchema"],
            format!("{} reads no request body", data.operation),
        ));
    }
    check_schema(data.body_schema.as_ref(), "bodySchema")
}

/// A checked PATCH of a collection: `None` keeps a field.
#[derive(Debug, Default)]
pub struct CollectionChange {
    pub description: Option<String>,
    /// `Some(None)` removes the schema.
    pub schema: Option<Option<Value>>,
    pub publish_events: Option<bool>,
}

impl CollectionChange {
    fn apply(self, c: &mut CollectionData) {
        if let Some(d) = self.description {
            c.description = d;
        }
        if let Some(s) = self.schema {
            c.schema = s;
        }
        if let Some(p) = self.publish_events {
            c.publish_events = p;
        }
    }
}

/// A PATCH of a leaderboard: `None` keeps a field (its order never changes: ranks are
/// kept in it).
#[derive(Debug, Default)]
pub struct LeaderboardChange {
    pub description: Option<String>,
    pub policy: Option<ScorePolicy>,
    pub reset: Option<ResetPeriod>,
}

impl LeaderboardChange {
    fn apply(self, b: &mut LeaderboardData) {
        if let Some(d) = self.description {
            b.description = d;
        }
        if let Some(p) = self.policy {
            b.policy = p;
        }
        if let Some(r) = self.reset {
            b.reset = r;
        }
    }
}

/// Creates the collection `name` in the application `app` (id or uid); its schema must
/// compile.
pub async fn create_collection(
    state: &Service,
    org: &OrgId,
    app: &str,
    name: &DataName,
    data: CollectionData,
) -> ApiResult<Definition> {
    check_schema(data.schema.as_ref(), "schema")?;
    let app = app_id(state, org, app).await?;
    Ok(state
        .store
        .create_definition(org, &app, name.as_str(), DefinitionSpec::Collection(data))
        .await?)
}

/// Creates the leaderboard `name` in the application `app` (id or uid).
pub async fn create_leaderboard(
    state: &Service,
    org: &OrgId,
    app: &str,
    name: &DataName,
    data: LeaderboardData,
) -> ApiResult<Definition> {
    let app = app_id(state, org, app).await?;
    Ok(state
        .store
        .create_definition(org, &app, name.as_str(), DefinitionSpec::Leaderboard(data))
        .await?)
}

/// A checked PATCH of a collection or of a leaderboard.
#[derive(Debug)]
pub enum DefinitionChange {
    Collection(CollectionChange),
    Leaderboard(LeaderboardChange),
}

/// Changes some fields of the collection or leaderboard `name`; a collection's new
/// schema must compile (documents already stored are checked against it at their
/// next write).
pub async fn change_definition(
    state: &Service,
    org: &OrgId,
    app: &str,
    name: &str,
    change: DefinitionChange,
) -> ApiResult<Definition> {
    let kind = match &change {
        DefinitionChange::Collection(c) => {
            if let Some(Some(schema)) = &c.schema {
                check_schema(Some(schema), "schema")?;
            }
            DefinitionKind::Collection
        }
        DefinitionChange::Leaderboard(_) => DefinitionKind::Leaderboard,
    };
    let app = app_id(state, org, app).await?;
    Ok(state
        .store
        .update_definition(
            org,
            &app,
            kind,
            name,
            Box::new(move |spec| {
                match (spec, change) {
                    (DefinitionSpec::Collection(c), DefinitionChange::Collection(ch)) => ch.apply(c),
                    (DefinitionSpec::Leaderboard(b), DefinitionChange::Leaderboard(ch)) => ch.apply(b),
                    // The store found it by its kind: the spec is of that kind.
                    _ => {}
                }
                Ok(())
            }),
        )
        .await?)
}

/// Deletes the collection or leaderboard `name` with all its documents or scores.
pub async fn delete_definition(
    state: &Service,
    org: &OrgId,
    app: &str,
    kind: DefinitionKind,
    name: &str,
) -> ApiResult<()> {
    let app = app_id(state, org, app).await?;
    Ok(state.store.delete_definition(org, &app, kind, name).await?)
}

/// Starts the leaderboard `board` over: every score of every period is deleted;
/// answers how many.
pub async fn reset_leaderboard(state: &Service, org: &OrgId, app: &str, board: &DataName) -> ApiResult<u64> {
    let app = app_id(state, org, app).await?;
    Ok(state.store.reset_leaderboard(org, &app, board).await?)
}

/// Creates a mode: `name` answering `method`, checked against the application's
/// collections and leaderboards.
pub async fn create_mode(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    name: &DataName,
    method: &str,
    mode: ModeData,
) -> ApiResult<Definition> {
    check_mode(state, org, app, &mode).await?;
    let def = state
        .store
        .create_definition(org, app, &mode_key(name, method), DefinitionSpec::Mode(mode))
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                ApiError::Conflict(format!("the mode {name} already has a {method} handler"))
            }
            other => other.into(),
        })?;
    state.lookups.modes.clear();
    Ok(def)
}

/// Changes the mode stored under `key` by `edit`, checks the result, and stores it —
/// only if the mode is still the one checked (the target lookup cannot run inside the
/// store's transaction), else 409, so a concurrent change is never overwritten unseen.
pub async fn change_mode(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    key: &str,
    edit: impl FnOnce(&mut ModeData),
) -> ApiResult<Definition> {
    let read = state
        .store
        .get_definition(org, app, DefinitionKind::Mode, key)
        .await?
        .spec;
    let DefinitionSpec::Mode(mut mode) = read.clone() else {
        return Err(ApiError::not_found("mode"));
    };
    edit(&mut mode);
    check_mode(state, org, app, &mode).await?;
    let def = state
        .store
        .update_definition(
            org,
            app,
            DefinitionKind::Mode,
            key,
            Box::new(move |spec| {
                if *spec != read {
                    return Err(StoreError::Conflict(
                        "the mode changed while this change was checked; read it again and retry".into(),
                    ));
                }
                *spec = DefinitionSpec::Mode(mode);
                Ok(())
            }),
        )
        .await?;
    state.lookups.modes.clear();
    Ok(def)
}

/// Deletes the mode stored under `key`.
pub async fn delete_mode(state: &Service, org: &OrgId, app: &ApplicationId, key: &str) -> ApiResult<()> {
    state
        .store
        .delete_definition(org, app, DefinitionKind::Mode, key)
        .await?;
    state.lookups.modes.clear();
    Ok(())
}

/// Revokes an API key: refused from then on (at once on this node, within a second on
/// the others).
pub async fn revoke_api_key(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    id: &ApiKeyId,
) -> ApiResult<()> {
    state.store.revoke_api_key(org, app, id).await?;
    state.lookups.api_keys.clear();
    Ok(())
}

/// The organisation's usage per day from `since` to `until`, including what this node
/// counted but has not written yet.
pub async fn usage(
    state: &Service,
    org: &OrgId,
    since: NaiveDate,
    until: NaiveDate,
) -> ApiResult<Vec<UsageDay>> {
    state.meter.flush(state.store.as_ref()).await;
    Ok(state.store.list_usage(org, since, until).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_is_compiled_once_per_text() {
        let schemas = Schemas::default();
        let schema = serde_json::json!({"type": "object", "required": ["a"]});
        for _ in 0..3 {
            let compiled = schemas.get(&schema).unwrap();
            assert!(compiled.check(&serde_json::json!({"a": 1})).is_ok());
            assert!(compiled.check(&serde_json::json!({})).is_err());
        }
        assert_eq!(schemas.compilations(), 1);
        // A changed schema is compiled anew.
        schemas.get(&serde_json::json!({"type": "object"})).unwrap();
        assert_eq!(schemas.compilations(), 2);
        assert!(schemas.get(&serde_json::json!({"type": 12})).is_err());
    }
}
