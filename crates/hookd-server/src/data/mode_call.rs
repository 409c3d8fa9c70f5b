//! Portal modes: `METHOD /h/{account}/{app}/{mode}/{data...}` runs the operation the
//! application's mode binds to that method, for a caller holding one of the
//! application's API keys.
//!
//! A request is authenticated (key from `Authorization: Bearer`, `X-API-Key` or
//! `?key=`; hashed, compared in constant time), rate limited per key, checked against
//! the key's scopes and modes and the mode's body schema, metered, and answered with
//! JSON. Every refusal is `{"code", "detail"}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use chrono::Utc;
use hookd_core::data::ModeOperation;
use hookd_core::id::{ApplicationId, MessageId, OrgId};
use hookd_core::name::{DataName, EventTypeName, ItemKey};
use hookd_store::ModeData;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::data::leaderboard::ScoreQuery;
use crate::data::{
    DocumentOut, ScoreIn, ScoreSubmittedOut, ScoresOut, document_filter, etag, if_match, written_response,
};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{decode_json, read_body};
use crate::http::pagination::{ListResponse, Pagination};
use crate::service::data::{self, DocumentOp, check_body, metered, write_document};
use crate::service::{Service, auth, message};

/// Headers a capture never keeps (they carry the caller's key).
const SECRET_HEADERS: [&str; 3] = ["authorization", "x-api-key", "cookie"];

pub fn router(state: Service) -> Router {
    Router::new()
        .route("/h/{account}/{app}/{mode}", any(handle))
        .route("/h/{account}/{app}/{mode}/{*data}", any(handle))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// The request's API key, from the header or query parameter that carries it.
fn presented_key(headers: &HeaderMap, uri: &Uri) -> ApiResult<String> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default().trim();
        return match text.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => Ok(key.trim().to_owned()),
            _ => Err(ApiError::Unauthorized(
                "the Authorization header must be `Bearer <api key>`".into(),
            )),
        };
    }
    if let Some(value) = headers.get("x-api-key") {
        return Ok(value.to_str().unwrap_or_default().trim().to_owned());
    }
    uri.query()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "key"))
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "missing API key: send `Authorization: Bearer <key>`, `X-API-Key: <key>` or `?key=<key>`"
                    .into(),
            )
        })
}

async fn handle(
    State(state): State<Service>,
    Path(params): Path<BTreeMap<String, String>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    match run(&state, &params, parts.method, parts.uri, parts.headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: &Service,
    params: &BTreeMap<String, String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let key = auth::authenticate_api_key(state, &presented_key(&headers, &uri)?).await?;
    data::admit_key(state, &key)?;
    if !data::key_owns(state, &key, param("account"), param("app")).await? {
        return Err(ApiError::Forbidden(
            "this API key belongs to another account or application".into(),
        ));
    }
    let name: DataName = param("mode")
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no mode named {:?}", param("mode"))))?;
    if key.data.modes.as_ref().is_some_and(|m| !m.contains(&name)) {
        return Err(ApiError::Forbidden(format!(
            "this API key may not use the mode {name}"
        )));
    }
    let mode = data::find_mode(state, &key, &name, &method).await?;
    let (allowed, scope) = if mode.operation.is_write() {
        (key.data.write, "write")
    } else {
        (key.data.read, "read")
    };
    if !allowed {
        return Err(ApiError::Forbidden(format!(
            "this API key lacks the {scope} scope that {} needs",
            mode.operation
        )));
    }
    let data = params.get("data").map(String::as_str).filter(|d| !d.is_empty());
    let call = Call {
        state,
        org: &key.org_id,
        app: &key.app_id,
        name: &name,
        mode: &mode,
        uri: &uri,
        headers: &headers,
    };
    let body = read_body(&headers, body, state.config.data_max_body_bytes).await?;
    call.dispatch(&method, data, body).await
}

struct Call<'a> {
    state: &'a Service,
    org: &'a OrgId,
    app: &'a ApplicationId,
    name: &'a DataName,
    mode: &'a ModeData,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PublishedOut {
    id: MessageId,
    event_type: EventTypeName,
    timestamp: chrono::DateTime<Utc>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CapturedOut {
    key: ItemKey,
    version: i64,
}

impl Call<'_> {
    fn target(&self) -> ApiResult<&DataName> {
        self.mode
            .target
            .as_ref()
            .ok_or_else(|| ApiError::NotFound("this mode has no target".into()))
    }

    fn item(&self, data: Option<&str>, what: &str) -> ApiResult<ItemKey> {
        let data = data.ok_or_else(|| {
            ApiError::NotFound(format!(
                "{} needs the {what} after the mode in the URL",
                self.mode.operation
            ))
        })?;
        data.parse()
            .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(&["path", what], e.message))
    }

    /// The body as JSON, checked against the mode's schema.
    fn json(&self, body: &Bytes) -> ApiResult<Value> {
        let value: Value = decode_json(body)?;
        check_body(self.state, self.mode.body_schema.as_ref(), &value)?;
        Ok(value)
    }

    fn query<T: serde::de::DeserializeOwned>(&self) -> ApiResult<T> {
        let query = self.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map_err(|e| ApiError::invalid(&["query", &e.path().to_string()], e.into_inner().to_string()))
    }

    async fn dispatch(&self, method: &Method, data: Option<&str>, body: Bytes) -> ApiResult<Response> {
        let (state, org, app) = (self.state, self.org, self.app);
        if data.is_some() && !self.mode.operation.takes_data() {
            return Err(ApiError::NotFound(format!(
                "{} takes nothing after the mode in the URL",
                self.mode.operation
            )));
        }
        match self.mode.operation {
            ModeOperation::DocumentGet => {
                let (collection, key) = (self.target()?, self.item(data, "key")?);
                let doc = metered(
                    state,
                    org,
                    false,
                    state.store.get_document(org, app, collection, &key),
                )
                .await?;
                Ok((etag(&doc), Json(DocumentOut::from(doc))).into_response())
            }
            ModeOperation::DocumentPut | ModeOperation::DocumentPatch | ModeOperation::DocumentIncrement => {
                let (collection, key) = (self.target()?, self.item(data, "key")?);
                let required = if_match(self.headers)?;
                let value = self.json(&body)?;
                let op = match self.mode.operation {
                    ModeOperation::DocumentPut => DocumentOp::Put(value),
                    ModeOperation::DocumentPatch => DocumentOp::Patch(value),
                    _ => match value {
                        Value::Object(fields) => DocumentOp::Increment(fields),
                        _ => {
                            return Err(ApiError::invalid(
                                &["body"],
                                "an increment is an object of numbers",
                            ));
                        }
                    },
                };
                written_response(write_document(state, org, app, collection, &key, op, required).await?)
            }
            ModeOperation::DocumentDelete => {
                let (collection, key) = (self.target()?, self.item(data, "key")?);
                let required = if_match(self.headers)?;
                write_document(state, org, app, collection, &key, DocumentOp::Delete, required).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            ModeOperation::DocumentList => {
                let collection = self.target()?;
                let page: Pagination = self.query()?;
                let mut params: BTreeMap<String, String> = self.query()?;
                if let Some(prefix) = data {
                    params.insert("prefix".into(), prefix.to_owned());
                }
                let filter = document_filter(&params, &["limit", "iterator", "order", "key"])?;
                let query = page.to_query(hookd_store::Order::Ascending)?;
                let page = metered(
                    state,
                    org,
                    false,
                    state.store.list_documents(org, app, collection, &query, &filter),
                )
                .await?;
                Ok(Json(ListResponse::from_page(
                    page,
                    |d| d.key.to_string(),
                    DocumentOut::from,
                ))
                .into_response())
            }
            ModeOperation::LeaderboardSubmit => {
                let (board, player) = (self.target()?, self.item(data, "player")?);
                let value = self.json(&body)?;
                let score: ScoreIn = crate::http::extract::decode_value(value)?;
                let submitted = data::submit_score(state, org, app, board, &player, score.score).await?;
                Ok(Json(ScoreSubmittedOut::from(submitted)).into_response())
            }
            ModeOperation::LeaderboardTop => {
                let board = self.target()?;
                let q: ScoreQuery = self.query()?;
                let (period, limit) = (q.period()?, q.limit()?);
                let top = metered(
                    state,
                    org,
                    false,
                    state.store.top_scores(org, app, board, &period, limit),
                )
                .await?;
                Ok(Json(ScoresOut::new(top)).into_response())
            }
            ModeOperation::LeaderboardRank => {
                let (board, player) = (self.target()?, self.item(data, "player")?);
                let q: ScoreQuery = self.query()?;
                let (period, neighbours) = (q.period()?, q.neighbours()?);
                let window = metered(
                    state,
                    org,
                    false,
                    state
                        .store
                        .scores_around(org, app, board, &player, neighbours, &period),
                )
                .await?;
                Ok(Json(ScoresOut::new(window)).into_response())
            }
            ModeOperation::MessagePublish => {
                let event_type: EventTypeName = data
                    .ok_or_else(|| {
                        ApiError::NotFound("message.publish needs the event type after the mode".into())
                    })?
                    .parse()
                    .map_err(|e: hookd_core::InvalidValue| {
                        ApiError::invalid(&["path", "eventType"], e.message)
                    })?;
                let value = self.json(&body)?;
                if !value.is_object() {
                    return Err(ApiError::invalid(&["body"], "the payload must be a JSON object"));
                }
                let published = message::new_message(event_type, value.to_string());
                let (msg, _) = metered(state, org, true, message::accept(state, org, app, published)).await?;
                let out = PublishedOut {
                    id: msg.id,
                    event_type: msg.event_type,
                    timestamp: msg.created_at,
                };
                Ok((StatusCode::ACCEPTED, Json(out)).into_response())
            }
            ModeOperation::FlowRun => {
                let value = self.form_or_json(&body)?;
                check_body(state, self.mode.body_schema.as_ref(), &value)?;
                let trigger = serde_json::json!({
                    "app": app,
                    "mode": self.name,
                    "method": method.as_str(),
                    "query": self.query_pairs(),
                    "headers": self.kept_headers(),
                    "body": value,
                });
                let answer = metered(
                    state,
                    org,
                    true,
                    crate::service::flow::run_for_mode(state, org, app, self.name, trigger),
                )
                .await?;
                let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
                Ok((status, Json(answer.body)).into_response())
            }
            ModeOperation::Capture => {
                let collection = self.target()?;
                let key = ItemKey::from_trusted(MessageId::generate().to_string());
                let captured = self.capture(method, &body);
                let w = write_document(state, org, app, collection, &key, DocumentOp::Put(captured), None)
                    .await?;
                let doc = w.after.ok_or_else(|| ApiError::not_found("document"))?;
                Ok((
                    StatusCode::CREATED,
                    Json(CapturedOut {
                        key: doc.key,
                        version: doc.version,
                    }),
                )
                    .into_response())
            }
        }
    }

    /// The request's headers without those that carry the caller's key; a repeated
    /// header is a list of its values.
    fn kept_headers(&self) -> Map<String, Value> {
        let mut headers = Map::new();
        for (name, value) in self.headers {
            if SECRET_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
            match headers.get_mut(name.as_str()) {
                Some(Value::Array(list)) => list.push(value),
                Some(first) => *first = Value::Array(vec![first.clone(), value]),
                None => {
                    headers.insert(name.as_str().to_owned(), value);
                }
            }
        }
        headers
    }

    /// The query string's pairs, in order, without the API key.
    fn query_pairs(&self) -> Vec<Value> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or_default().as_bytes())
            .filter(|(k, _)| k != "key")
            .map(|(k, v)| serde_json::json!([k, v]))
            .collect()
    }

    /// A posted web form (`application/x-www-form-urlencoded`) as an object of
    /// strings (a repeated field: a list), else the body as JSON.
    fn form_or_json(&self, body: &Bytes) -> ApiResult<Value> {
        let is_form = self
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return decode_json(body);
        }
        let mut fields = Map::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            let v = Value::String(v.into_owned());
            match fields.get_mut(k.as_ref()) {
                Some(Value::Array(list)) => list.push(v),
                Some(first) => *first = Value::Array(vec![first.clone(), v]),
                None => {
                    fields.insert(k.into_owned(), v);
                }
            }
        }
        Ok(Value::Object(fields))
    }

    /// The request as a document: method, path, query and headers without the API key,
    /// the body byte for byte (base64), and as text when it is UTF-8.
    fn capture(&self, method: &Method, body: &Bytes) -> Value {
        serde_json::json!({
            "method": method.as_str(),
            "path": self.uri.path(),
            "query": self.query_pairs(),
            "headers": self.kept_headers(),
            "body": std::str::from_utf8(body).ok(),
            "bodyBase64": base64::engine::general_purpose::STANDARD.encode(body),
            "receivedAt": Utc::now(),
        })
    }
}
