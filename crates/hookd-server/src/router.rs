//! The whole HTTP surface assembled: every surface's `router()` (send, receive, data,
//! ops, the web UI) merged with the OpenAPI document generated from the same handlers, and the
//! layers every request passes (idempotency, body limit, run-to-completion, panics,
//! tracing).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::http::error::ApiError;
use crate::service::Service;

#[derive(OpenApi)]
#[openapi(
    info(title = "hookd", description = "The hookd API: Svix-compatible webhook sending and ingest."),
    modifiers(&BearerAuth),
    security(("HTTPBearer" = [])),
    components(schemas(
        crate::http::error::HttpErrorOut,
        crate::http::error::ValidationErrorOut,
        crate::http::pagination::Ordering
    ))
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
pub fn router(state: Service) -> Router {
    if !state.config.api_enabled {
        return worker_router(state);
    }
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::ops::health::router())
        .merge(crate::send::application::router())
        .merge(crate::send::event_type::router())
        .merge(crate::send::endpoint::router())
        .merge(crate::send::message::router())
        .merge(crate::send::attempt::router())
        .merge(crate::send::resend::router())
        .merge(crate::send::tasks::router())
        .merge(crate::send::operational::router())
        .merge(crate::send::portal_access::router())
        .merge(crate::receive::source::router())
        .merge(crate::receive::destination::router())
        .merge(crate::data::collection::router())
        .merge(crate::data::leaderboard::router())
        .merge(crate::data::mode::router())
        .merge(crate::data::api_key::router())
        .merge(crate::flow::router())
        .split_for_parts();
    // Served as finished JSON (`http::openapi`), serialized once.
    let openapi = Arc::new(crate::http::openapi::finish(
        serde_json::to_value(&openapi).unwrap_or_default(),
    ));
    let receive = crate::receive::request::router(state.clone());
    let modes = crate::data::mode_call::router(state.clone());
    let ui = crate::ui::router(state.clone());
    router
        .route(
            "/api/v1/openapi.json",
            get(move || async move { Json(openapi.as_ref().clone()) }),
        )
        .route("/metrics", get(crate::ops::metrics::handler))
        // `hookd listen`'s sessions: hookd's own, with an event stream (not in the document).
        .merge(crate::listen::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::idempotency::middleware::<Service>,
        ))
        .layer(DefaultBodyLimit::max(state.config.api_max_body_bytes))
        .with_state(state)
        // Source URLs: their own body limit, no API token, no idempotency keys.
        .merge(receive)
        // Data API modes: API keys instead of tokens, their own body limit.
        .merge(modes)
        // The web UI: session cookies, HTML pages and their own errors.
        .merge(ui)
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

/// The span of a request: method and path, never the query (mode URLs may carry an
/// API key in `?key=`).
fn request_span(request: &axum::extract::Request) -> tracing::Span {
    tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
}

/// A delivery-only node (`serve --no-api`): health and metrics, nothing else.
fn worker_router(state: Service) -> Router {
    let (router, _) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::ops::health::router())
        .split_for_parts();
    router
        .route("/metrics", get(crate::ops::metrics::handler))
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
