//! The receiving URL `/in/{token}[/...]`: one handler for every method.
//!
//! A request is judged by its source's preset and options
//! (`hookd_core::ingest::verify`), then kept — body byte for byte, with method, path,
//! query, headers, client address, time and verdict — and, when accepted and not a
//! duplicate, turned into a message for the source's destinations, all in one
//! transaction committed before the answer. Forwarding is the delivery engine's job.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::Utc;
use hookd_core::ingest::{self, SourceOptions, Verdict, verify};
use hookd_store::{IngestForward, IngestStatus, NewIngestRequest};

use crate::http::error::ApiError;
use crate::http::extract::read_body;
use crate::service::Service;
use crate::service::source::{self, event_type, retain_until};

/// The receiving routes: outside the management API's auth, idempotency and body
/// limit (a source has its own).
pub fn router(state: Service) -> Router {
    Router::new()
        .route("/in/{token}", any(receive))
        .route("/in/{token}/{*rest}", any(receive))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the last
/// address of `X-Forwarded-For`.
fn client_addr(state: &Service, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
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
    State(state): State<Service>,
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
    state: &Service,
    params: HashMap<String, String>,
    peer: Option<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let token = params.get("token").map(String::as_str).unwrap_or_default();
    let now = Utc::now();
    let Some(found) = source::by_token(state, token, now).await? else {
        return Err(ApiError::NotFound("no source has this URL".into()));
    };
    let (org, source) = (&found.0, &found.1);
    // Before the body is read: a flood costs as little as it can.
    source::admit(state, source)?;
    let body = match read_body(&headers, body, state.config.ingest_max_body_bytes).await {
        Ok(b) => b,
        Err(e @ ApiError::PayloadTooLarge(_)) => {
            source::count_too_large(state);
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let (kind, options) = (&source.data.kind, &source.data.options);
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
        kind,
        options,
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
        id: hookd_core::id::IngestLogId::generate(),
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
        flow_runs: Vec::new(),
    };
    let response = match &verdict {
        Verdict::Accept
            if !source::passes_filter(options, &request.path, &request.query, &header_list, &body) =>
        {
            request.status = IngestStatus::Filtered;
            request.reason = Some("did not match the source's filter; not forwarded".into());
            let response = answer(options);
            request.response_status = response.status().as_u16();
            response
        }
        Verdict::Accept => {
            let response = answer(options);
            request.response_status = response.status().as_u16();
            let window = options
                .dedup
                .as_ref()
                .map(|d| d.window_seconds())
                .unwrap_or_default();
            request.dedup = ingest::dedup_key(options, &header_list, &body)
                .map(|k| (k, now - chrono::Duration::seconds(i64::from(window))));
            request.forward = Some(IngestForward {
                event_type: event_type(kind),
                headers: ingest::forward_headers(&header_list, options),
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
    let recorded = source::receive(state, org, source, request).await?;
    tracing::debug!(source = %source.id, log = %recorded.id, status = recorded.status.text(), "received");
    Ok(response)
}
