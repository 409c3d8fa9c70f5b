//! `/api/v1/listen/...`: what `hookd listen` talks to (hookd's own, not part of the
//! Svix API, and not in the OpenAPI document: one route is an event stream). The
//! protocol is in docs/cli.md:
//!
//! - `POST /api/v1/listen` opens or resumes a session (its temporary endpoint);
//! - `GET /api/v1/listen/{app_id}/{endpoint_id}/events` streams its requests
//!   (server-sent events: `ready`, then one `request` each; a comment every 15 s);
//! - `POST .../answer` gives the local target's answers to requests (a batch);
//! - `DELETE /api/v1/listen/{app_id}/{endpoint_id}` ends it.
//!
//! Server-sent events and not a WebSocket: the stream only flows from the server,
//! it is plain HTTP/1.1 that every proxy and load balancer passes (with buffering
//! off), and answers are ordinary requests on the CLI's pooled connection, each
//! checked like any API call.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine as _;
use hookd_core::id::{ApplicationId, EndpointId};
use hookd_dispatch::relay::{Answer, Relayed};
use serde::{Deserialize, Serialize};

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;
use crate::service::Service;
use crate::service::listen::{self, Target};

/// How often an idle stream carries a comment, so the CLI (and proxies) see it alive.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

pub fn router() -> Router<Service> {
    Router::new()
        .route("/api/v1/listen", post(open))
        .route("/api/v1/listen/{app_id}/{endpoint_id}", delete(close))
        .route("/api/v1/listen/{app_id}/{endpoint_id}/events", get(events))
        .route("/api/v1/listen/{app_id}/{endpoint_id}/answer", post(answer))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListenIn {
    /// Names the session; the same name resumes it (letters, digits, `-`, `_`, `.`).
    session: String,
    /// A source's id or uid: follow what it accepts.
    source: Option<String>,
    /// An application's id or uid: follow its messages.
    app: Option<String>,
    /// With `app`: only these event types.
    event_types: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListenOut {
    session: String,
    app_id: String,
    endpoint_id: String,
    source_id: Option<String>,
    /// The temporary endpoint's signing secret: a local receiver verifies with it.
    secret: String,
    url: String,
}

async fn open(
    State(state): State<Service>,
    tenant: Tenant,
    ApiJson(body): ApiJson<ListenIn>,
) -> ApiResult<Response> {
    let target = match (body.source, body.app) {
        (Some(source), None) => {
            if body.event_types.is_some() {
                return Err(ApiError::invalid(
                    &["body", "eventTypes"],
                    "a source's session receives every accepted request; eventTypes goes with app",
                ));
            }
            Target::Source(source)
        }
        (None, Some(key)) => Target::App {
            key,
            event_types: body.event_types,
        },
        _ => {
            return Err(ApiError::invalid(&["body"], "give exactly one of source and app"));
        }
    };
    let opened = listen::open(&state, &tenant.org, &body.session, target).await?;
    let ep = opened.endpoint;
    Ok(Json(ListenOut {
        session: body.session,
        app_id: ep.app_id.to_string(),
        endpoint_id: ep.id.to_string(),
        source_id: opened.source.map(|s| s.to_string()),
        secret: ep.data.secret.expose(),
        url: ep.data.url.to_string(),
    })
    .into_response())
}

fn ids(app: &str, endpoint: &str) -> ApiResult<(ApplicationId, EndpointId)> {
    let app = app
        .parse()
        .map_err(|_| ApiError::NotFound("no such listen session".into()))?;
    let endpoint = endpoint
        .parse()
        .map_err(|_| ApiError::NotFound("no such listen session".into()))?;
    Ok((app, endpoint))
}

async fn close(
    State(state): State<Service>,
    tenant: Tenant,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (app, endpoint) = ids(&app, &endpoint)?;
    listen::close(&state, &tenant.org, &app, &endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One request as the stream carries it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestEvent<'a> {
    id: u64,
    msg_id: &'a str,
    attempt: u32,
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(String, String)],
    /// The exact body, base64.
    body: String,
}

fn request_event(r: &Relayed) -> Event {
    let event = RequestEvent {
        id: r.id,
        msg_id: r.msg_id.as_str(),
        attempt: r.attempt,
        method: &r.method,
        path: &r.path,
        query: &r.query,
        headers: &r.headers,
        body: base64::engine::general_purpose::STANDARD.encode(&r.body),
    };
    let data = serde_json::to_string(&event).unwrap_or_default();
    Event::default().event("request").data(data)
}

async fn events(
    State(state): State<Service>,
    tenant: Tenant,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (app, endpoint) = ids(&app, &endpoint)?;
    let (held, rx, waiting) = listen::connect(&state, &tenant.org, &app, &endpoint).await?;
    let ready = Event::default()
        .event("ready")
        .data(serde_json::json!({ "waiting": waiting }).to_string());
    // The hold lives as long as the stream: the session ends when the client goes.
    let requests = futures_util::stream::unfold((rx, held), |(mut rx, held)| async move {
        let r = rx.recv().await?;
        Some((Ok::<_, Infallible>(request_event(&r)), (rx, held)))
    });
    let stream = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, Infallible>(ready) }),
        requests,
    );
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response();
    // Proxies (nginx) would otherwise hold the stream back in their buffers.
    response
        .headers_mut()
        .insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AnswerIn {
    /// The request's `id` from the stream.
    id: u64,
    /// The local target's status; absent when it gave none.
    status: Option<u16>,
    /// The first bytes of its answer, or why there was none.
    #[serde(default)]
    body: String,
    /// The URL the CLI called.
    url: Option<String>,
    /// The local target's answer headers.
    #[serde(default)]
    headers: Vec<(String, String)>,
}

/// Answers to one or more requests: the CLI sends what it has at once, so a busy
/// session costs one call per batch, not per request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AnswersIn {
    answers: Vec<AnswerIn>,
}

/// Most answers in one call.
const MAX_ANSWERS: usize = 1024;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AnswersOut {
    /// Ids nothing waited for any more (answered already, timed out, or the stream
    /// is gone): those deliveries are retried.
    late: Vec<u64>,
}

async fn answer(
    State(state): State<Service>,
    tenant: Tenant,
    Path((_app, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<AnswersIn>,
) -> ApiResult<Json<AnswersOut>> {
    let endpoint: EndpointId = endpoint
        .parse()
        .map_err(|_| ApiError::NotFound("no such listen session".into()))?;
    if body.answers.len() > MAX_ANSWERS {
        return Err(ApiError::invalid(
            &["body", "answers"],
            format!("at most {MAX_ANSWERS} answers in one call"),
        ));
    }
    if let Some(i) = body
        .answers
        .iter()
        .position(|a| a.status.is_some_and(|s| !(100..=599).contains(&s)))
    {
        let at = i.to_string();
        return Err(ApiError::invalid(
            &["body", "answers", &at, "status"],
            "an HTTP status is 100 to 599",
        ));
    }
    let mut late = Vec::new();
    for a in body.answers {
        let taken = listen::answer(
            &state,
            &tenant.org,
            &endpoint,
            a.id,
            Answer {
                status: a.status,
                body: a.body,
                url: a.url,
                headers: a.headers,
            },
        )?;
        if !taken {
            late.push(a.id);
        }
    }
    Ok(Json(AnswersOut { late }))
}
