//! The HTTP API: one module per resource, each with its `router()`, assembled here with
//! the OpenAPI document generated from the same handlers.

pub mod api_key;
pub mod application;
pub mod attempt;
pub mod collection;
pub mod endpoint;
pub mod event_type;
pub mod health;
pub mod ingest_endpoint;
pub mod leaderboard;
pub mod message;
pub mod mode;
pub mod operational;
pub mod resend;
pub mod source;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hookd_core::InvalidValue;
use hookd_store::{StoreError, StoreResult};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "hookd", description = "The hookd API: Svix-compatible webhook sending and ingest."),
    modifiers(&BearerAuth),
    security(("HTTPBearer" = [])),
    components(schemas(crate::error::HttpErrorOut, crate::error::ValidationErrorOut))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "HTTPBearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API router with its layers. Trailing slashes are handled outside, by
/// [`crate::launch`].
pub fn router(state: AppState) -> Router {
    if !state.config.api_enabled {
        return worker_router(state);
    }
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(application::router())
        .merge(event_type::router())
        .merge(endpoint::router())
        .merge(message::router())
        .merge(attempt::router())
        .merge(resend::router())
        .merge(operational::router())
        .merge(source::router())
        .merge(ingest_endpoint::router())
        .merge(collection::router())
        .merge(leaderboard::router())
        .merge(mode::router())
        .merge(api_key::router())
        .split_for_parts();
    let openapi = Arc::new(openapi);
    let receive = crate::ingest::router(state.clone());
    let portal = crate::portal::router(state.clone());
    router
        .route(
            "/api/v1/openapi.json",
            get(move || async move { Json(openapi.as_ref().clone()) }),
        )
        .route("/metrics", get(crate::metrics::handler))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::middleware,
        ))
        .layer(DefaultBodyLimit::max(state.config.api_max_body_bytes))
        .with_state(state)
        // Source URLs: their own body limit, no API token, no idempotency keys.
        .merge(receive)
        // Portal modes: API keys instead of tokens, their own body limit.
        .merge(portal)
        // Outside the idempotency layer, so a keyed request also runs to the end.
        .layer(axum::middleware::from_fn(run_to_completion))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("a request handler panicked");
                ApiError::Internal.into_response()
            },
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
}

/// The span of a request: method and path, never the query (portal URLs may carry an
/// API key in `?key=`).
fn request_span(request: &axum::extract::Request) -> tracing::Span {
    tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
}

/// A delivery-only node (`serve --no-api`): health and metrics, nothing else.
fn worker_router(state: AppState) -> Router {
    let (router, _) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .split_for_parts();
    router
        .route("/metrics", get(crate::metrics::handler))
        .fallback(|| async {
            ApiError::NotFound(
                "this node serves no API (serve --no-api); only /api/v1/health and /metrics".into(),
            )
        })
        .with_state(state)
        .layer(TraceLayer::new_for_http())
}

/// Runs each request on its own task, so a client that hangs up cannot cancel a
/// request half way (say, after its message is committed but before the delivery engine
/// is woken): once received, a request runs to the end.
async fn run_to_completion(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::spawn(next.run(req)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "a request task failed");
            ApiError::Internal.into_response()
        }
    }
}

/// Queues an operational webhook; a failure is logged, never the caller's problem (the
/// change it reports is already committed).
pub async fn emit_event(
    state: &AppState,
    org: &hookd_core::id::OrgId,
    event: hookd_dispatch::events::OperationalEvent,
) {
    let kind = event.kind;
    match hookd_dispatch::events::emit(state.store.as_ref(), org, event).await {
        Ok(true) => state.wake_dispatcher(),
        Ok(false) => {}
        Err(e) => tracing::warn!(event = kind, error = %e, "could not queue an operational webhook"),
    }
}

/// A created-or-existing answer: 201 with the object, or 200 when nothing was created.
#[derive(Debug)]
pub struct Created<T> {
    created: bool,
    body: T,
}

impl<T> Created<T> {
    pub fn new(body: T) -> Self {
        Self { created: true, body }
    }
    pub fn existing(body: T) -> Self {
        Self { created: false, body }
    }
    pub fn new_if(created: bool, body: T) -> Self {
        Self { created, body }
    }
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        let status = if self.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        (status, Json(self.body)).into_response()
    }
}

/// Checks a body's `metadata`, answering 422 naming it when invalid.
pub fn check_metadata(metadata: &std::collections::BTreeMap<String, String>) -> ApiResult<()> {
    hookd_core::metadata::validate(metadata).map_err(|e| ApiError::invalid(&["body", "metadata"], e.message))
}

/// Parses a body field, answering 422 naming it when invalid.
pub fn parse_field<T: FromStr<Err = InvalidValue>>(value: &str, field: &str) -> ApiResult<T> {
    value
        .parse()
        .map_err(|e: InvalidValue| ApiError::invalid(&["body", field], e.message))
}

/// PUT semantics: replace when it exists, else create; a concurrent creator wins and is
/// then replaced. Returns whether this call created the object.
pub async fn upsert<T, U, UF, C, CF>(update: U, create: C) -> ApiResult<(T, bool)>
where
    U: Fn() -> UF,
    UF: Future<Output = StoreResult<T>>,
    C: FnOnce() -> CF,
    CF: Future<Output = StoreResult<T>>,
{
    match update().await {
        Err(StoreError::NotFound(what)) => match create().await {
            Ok(v) => Ok((v, true)),
            Err(StoreError::Conflict(message)) => match update().await {
                Ok(v) => Ok((v, false)),
                // The conflict was with some other object (e.g. a uid taken elsewhere).
                Err(StoreError::NotFound(_)) => Err(ApiError::Conflict(message)),
                Err(e) => Err(e.into()),
            },
            Err(StoreError::NotFound(_)) => Err(ApiError::not_found(what)),
            Err(e) => Err(e.into()),
        },
        other => Ok((other?, false)),
    }
}
