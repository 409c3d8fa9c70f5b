//! `Idempotency-Key` on every POST of the API.
//!
//! The first request with a key (per token) runs and its answer is kept for 12 hours;
//! later requests with the same key get that answer again (with
//! `Idempotent-Replayed: true`), and one arriving while the first still runs waits for
//! it. A key reused for a different request is a 409. Server errors (5xx) are not
//! kept, so a retry runs again. (Requests run to completion even when the client hangs
//! up: see `api::run_to_completion`.)

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use hookd_store::{IdempotencyBegin, IdempotencyWindow, StoredResponse};
use sha2::{Digest, Sha256};

use crate::http::HttpState;
use crate::http::auth::Tenant;
use crate::http::error::ApiError;
use crate::http::extract::read_body;

/// How long an answer is replayed.
pub const KEEP: chrono::Duration = chrono::Duration::hours(12);
/// A claim unanswered for this long belongs to a request that died (its node was
/// killed): a retry — on any node — then takes the key over. Shorter than [`WAIT`], so a
/// retry that waits gets an answer. API requests are single short transactions; one
/// running longer than this could, if retried meanwhile, run twice.
const STALE: chrono::Duration = chrono::Duration::seconds(30);
/// How long a duplicate waits for the first request's answer.
const WAIT: Duration = Duration::from_secs(60);
const MAX_KEY_LEN: usize = 256;
/// Answers larger than this are not kept (the request still runs once).
const MAX_KEPT_BODY: usize = 1024 * 1024;

pub async fn middleware<S: HttpState>(State(state): State<S>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => k.to_owned(),
        _ => {
            return ApiError::invalid(
                &["header", "idempotency-key"],
                "must be 1 to 256 visible ASCII characters",
            )
            .into_response();
        }
    };
    let (mut parts, body) = req.into_parts();
    let Ok(tenant) = Tenant::from_request_parts(&mut parts, &state).await else {
        // Unauthenticated: the handler answers 401 as usual.
        return next.run(Request::from_parts(parts, body)).await;
    };
    // The handler's Tenant extractor takes it from here instead of reading the token again.
    parts.extensions.insert(tenant.clone());
    let bytes = match read_body(&parts.headers, body, state.max_body_bytes()).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let fingerprint = fingerprint(&parts.method, parts.uri.path(), parts.uri.query(), &bytes);
    let store = state.store();
    let started = Instant::now();
    loop {
        let now = Utc::now();
        let window = IdempotencyWindow {
            now,
            stale_before: now - STALE,
            expired_before: now - KEEP,
        };
        let begun = store
            .idempotency_begin(&tenant.org, &tenant.token, &key, &fingerprint, window)
            .await;
        match begun {
            Err(e) => return ApiError::from(e).into_response(),
            Ok(IdempotencyBegin::Completed {
                fingerprint: stored,
                response,
            }) => {
                if stored != fingerprint {
                    return ApiError::Conflict(
                        "this Idempotency-Key was used for a different request".into(),
                    )
                    .into_response();
                }
                return replay(response);
            }
            Ok(IdempotencyBegin::InProgress) => {
                if started.elapsed() > WAIT {
                    return ApiError::Conflict("a request with this Idempotency-Key is still running".into())
                        .into_response();
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Ok(IdempotencyBegin::Started) => {
                let req = Request::from_parts(parts, Body::from(bytes));
                return run_and_keep(&state, &tenant, &key, req, next).await;
            }
        }
    }
}

async fn run_and_keep<S: HttpState>(
    state: &S,
    tenant: &Tenant,
    key: &str,
    req: Request,
    next: Next,
) -> Response {
    let response = next.run(req).await;
    if response.status().is_server_error() {
        release(state, tenant, key).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    // The handler's answer is already in memory (JSON), and its effect is committed:
    // whatever its size, it goes back to the caller.
    let body = match to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be read after its request ran");
            release(state, tenant, key).await;
            return ApiError::Internal.into_response();
        }
    };
    if body.len() > MAX_KEPT_BODY {
        tracing::warn!(
            bytes = body.len(),
            "an idempotent answer is larger than is kept; the key is released, so a retry runs again"
        );
        release(state, tenant, key).await;
        return Response::from_parts(parts, Body::from(body));
    }
    let kept = StoredResponse {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
    };
    if let Err(e) = state
        .store()
        .idempotency_complete(&tenant.org, &tenant.token, key, kept)
        .await
    {
        tracing::warn!(error = %e, "could not keep an idempotent answer; a retry will run again");
        release(state, tenant, key).await;
    }
    Response::from_parts(parts, Body::from(body))
}

/// Gives a key up (a later request with it runs anew). A failure is logged: the claim
/// then expires after [`STALE`] and is taken over.
async fn release<S: HttpState>(state: &S, tenant: &Tenant, key: &str) {
    if let Err(e) = state
        .store()
        .idempotency_abandon(&tenant.org, &tenant.token, key)
        .await
    {
        tracing::warn!(error = %e, "could not release an Idempotency-Key; it is taken over once stale");
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Bytes::from(stored.body)).into_response();
    if let Some(ct) = stored.content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

fn fingerprint(method: &Method, path: &str, query: Option<&str>, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str());
    h.update(b" ");
    h.update(path.trim_end_matches('/'));
    h.update(b"?");
    h.update(query.unwrap_or_default());
    h.update(b"\n");
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
