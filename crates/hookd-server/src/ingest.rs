//! Receiving webhooks: the `/in/{token}` handler and the cron source scheduler.
//!
//! A request is judged by its source's preset and options
//! (`hookd_core::ingest::verify`), then kept — body byte for byte, with method, path,
//! query, headers, client address, time and verdict — and, when accepted and not a
//! duplicate, turned into a message for the source's destinations, all in one
//! transaction committed before the answer. Forwarding is the delivery engine's job.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{DateTime, Utc};
use hookd_core::ingest::{self, SourceKind, SourceOptions, Verdict, verify};
use hookd_core::name::EventTypeName;
use hookd_store::{IngestForward, IngestStatus, NewIngestRequest, Source, Store, StoreError};
use tokio::sync::{Notify, watch};

use crate::api::source::source_spec;
use crate::error::ApiError;
use crate::state::AppState;

/// The receiving routes: outside the management API's auth, idempotency and body
/// limit (a source has its own).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/in/{token}", any(receive))
        .route("/in/{token}/{*rest}", any(receive))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The event type of messages forwarding a source's requests: `ingest.<type>`.
pub fn event_type(kind: &SourceKind) -> EventTypeName {
    format!("ingest.{}", kind.type_name())
        .parse()
        .unwrap_or_else(|_| EventTypeName::from_trusted("ingest.request".into()))
}

/// Until when a request received at `at` is kept and forwarded (`ingest_retention`).
pub fn retain_until(retention: Duration, at: DateTime<Utc>) -> DateTime<Utc> {
    at + crate::config::span(retention)
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the last
/// address of `X-Forwarded-For`.
fn client_addr(state: &AppState, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer.map(|p| p.ip().to_canonical())?;
    if !state.config.ingest_trusted_proxies.contains(peer) {
        return Some(peer);
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .or(Some(peer))
}

fn answer(options: &SourceOptions) -> Response {
    let spec = options.response.clone().unwrap_or_default();
    let status = spec
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let (content_type, body) = match spec.body {
        Some(body) => (
            spec.content_type
                .unwrap_or_else(|| "text/plain; charset=utf-8".into()),
            body,
        ),
        None => ("application/json".into(), r#"{"ok":true}"#.into()),
    };
    let content_type = HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("text/plain"));
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn rejection(status: u16, reason: &str) -> Response {
    let (status, code) = match status {
        403 => (StatusCode::FORBIDDEN, "forbidden"),
        405 => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        _ => (StatusCode::UNAUTHORIZED, "verification_failed"),
    };
    (
        status,
        axum::Json(serde_json::json!({"code": code, "detail": reason})),
    )
        .into_response()
}

async fn receive(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    match receive_inner(&state, params, peer, parts.method, parts.uri, parts.headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn receive_inner(
    state: &AppState,
    params: HashMap<String, String>,
    peer: Option<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let token = params.get("token").map(String::as_str).unwrap_or_default();
    let now = Utc::now();
    let Some((org, source)) = state.store.find_source_by_token(token, now).await? else {
        return Err(ApiError::NotFound("no source has this URL".into()));
    };
    let limit = state.config.ingest_max_body_bytes;
    let too_large = || {
        state.metrics.server.ingest_too_large.inc();
        ApiError::PayloadTooLarge(format!("the body is over this server's limit of {limit} bytes"))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => return Err(too_large()),
        Err(e) => {
            return Err(ApiError::BadRequest {
                code: "bad_body",
                detail: format!("the body could not be read: {e}"),
            });
        }
    };
    let (kind, options) = source_spec(&source)?;
    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let query = uri.query().unwrap_or_default().to_owned();
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{path_and_query}", state.config.public_url());
    let client = client_addr(state, peer, &headers);
    let verdict = verify::check(
        &kind,
        &options,
        &verify::IncomingRequest {
            method: method.as_str(),
            url: &url,
            query: &query,
            headers: &header_list,
            body: &body,
            client,
            now: now.timestamp(),
        },
    );
    let rest = params
        .get("rest")
        .map(|r| format!("/{r}"))
        .unwrap_or_else(|| "/".into());
    let mut request = NewIngestRequest {
        method: method.as_str().to_owned(),
        path: rest,
        query,
        headers: Vec::new(),
        client_addr: client.map(|c| c.to_string()),
        body: Vec::new(),
        status: IngestStatus::Accepted,
        reason: None,
        response_status: 200,
        received_at: now,
        dedup: None,
        forward: None,
        cron: None,
    };
    let response = match &verdict {
        Verdict::Accept => {
            let response = answer(&options);
            request.response_status = response.status().as_u16();
            let window = options
                .dedup
                .as_ref()
                .map(|d| d.window_seconds())
                .unwrap_or_default();
            request.dedup = ingest::dedup_key(&options, &header_list, &body)
                .map(|k| (k, now - chrono::Duration::seconds(i64::from(window))));
            request.forward = Some(IngestForward {
                event_type: event_type(&kind),
                headers: ingest::forward_headers(&header_list, &options),
                retain_until: retain_until(state.config.ingest_retention, now),
            });
            response
        }
        Verdict::Challenge { body } => {
            request.reason = Some("the provider's URL check, answered; not forwarded".into());
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body.clone(),
            )
                .into_response()
        }
        Verdict::Reject { status, reason } => {
            request.status = IngestStatus::Rejected;
            request.reason = Some(reason.clone());
            request.response_status = *status;
            rejection(*status, reason)
        }
    };
    request.headers = header_list;
    // The buffer is handed over, not copied.
    request.body = Vec::from(body);
    let recorded = state.store.record_ingest(&org, &source, request).await?;
    state
        .metrics
        .server
        .ingest_received
        .get_or_create(&crate::metrics::IngestLabels {
            status: recorded.status.text(),
        })
        .inc();
    if recorded.deliveries > 0 {
        state.wake_dispatcher();
    }
    tracing::debug!(source = %source.id, log = %recorded.id, status = recorded.status.text(), "received");
    Ok(response)
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

// ---------------------------------------------------------------------------------
// Cron sources.

/// Fires cron sources on their schedules until `shutdown`: each firing is recorded
/// as a received request (method `POST`, the configured payload and content type) and
/// forwarded like one. A firing is claimed in the same transaction that records it,
/// so with several nodes each firing happens once; firings missed while no node ran
/// are not made up, only the latest one is.
pub async fn run_cron(
    store: Arc<dyn Store>,
    state: AppState,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    const MAX_SLEEP: Duration = Duration::from_secs(30);
    while !*shutdown.borrow() {
        let step = cron_step(store.as_ref(), state.config.ingest_retention, Utc::now()).await;
        if step.as_ref().is_ok_and(|s| s.deliveries > 0) {
            state.wake_dispatcher();
        }
        let sleep = match step.map(|s| s.next) {
            Ok(Some(next)) => (next - Utc::now()).to_std().unwrap_or_default().min(MAX_SLEEP),
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::warn!(error = %e, "the cron scheduler failed; it will try again");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// What one [`cron_step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CronStep {
    /// Firings recorded by this call.
    pub fired: usize,
    /// Deliveries they created.
    pub deliveries: usize,
    /// When the next firing is due.
    pub next: Option<DateTime<Utc>>,
}

/// Fires every cron source that is due at `now` (tests call it with a time of their
/// choosing); `retention` is how long the firings are kept.
pub async fn cron_step(
    store: &dyn Store,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<CronStep, StoreError> {
    let mut step = CronStep::default();
    let mut earliest: Option<DateTime<Utc>> = None;
    for (org, source, last) in store.cron_sources().await? {
        let Ok((SourceKind::Cron(spec), options)) = source_spec(&source) else {
            continue;
        };
        // Counting starts at the later of the last firing and the source's last change.
        let from = last.map_or(source.updated_at, |l| l.max(source.updated_at));
        let Some(mut due) = verify::next_fire(&spec.schedule, from) else {
            continue;
        };
        if due <= now {
            // Skip firings missed while nobody ran: fire the latest due one only.
            while let Some(next) = verify::next_fire(&spec.schedule, due).filter(|n| *n <= now) {
                due = next;
            }
            if let Some(deliveries) =
                fire(store, retention, &org, &source, &spec, &options, last, due).await?
            {
                step.fired += 1;
                step.deliveries += deliveries;
            }
            due = match verify::next_fire(&spec.schedule, due) {
                Some(d) => d,
                None => continue,
            };
        }
        earliest = Some(earliest.map_or(due, |e| e.min(due)));
    }
    step.next = earliest;
    Ok(step)
}

/// Records one firing; `None` when another node recorded it first.
#[allow(clippy::too_many_arguments)]
async fn fire(
    store: &dyn Store,
    retention: Duration,
    org: &hookd_core::id::OrgId,
    source: &Source,
    spec: &ingest::CronSpec,
    options: &SourceOptions,
    last: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<Option<usize>, StoreError> {
    let content_type = spec
        .content_type
        .clone()
        .unwrap_or_else(|| "application/json".into());
    let headers = vec![("content-type".to_owned(), content_type)];
    let kind = SourceKind::Cron(spec.clone());
    let request = NewIngestRequest {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        forward: Some(IngestForward {
            event_type: event_type(&kind),
            headers: ingest::forward_headers(&headers, options),
            retain_until: retain_until(retention, at),
        }),
        headers,
        client_addr: None,
        body: spec.payload.clone().into_bytes(),
        status: IngestStatus::Accepted,
        reason: Some(format!("cron firing of {}", at.to_rfc3339())),
        response_status: 200,
        received_at: Utc::now(),
        dedup: None,
        cron: Some((last, at)),
    };
    match store.record_ingest(org, source, request).await {
        Ok(recorded) => Ok(Some(recorded.deliveries)),
        // Another node fired it.
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
