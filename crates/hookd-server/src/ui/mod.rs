//! The web UI, served by the same binary: the operator's pages at `/ui` and the
//! consumer portal at `/portal`. Server-rendered HTML (askama templates under
//! `templates/`, escaped by default) with vendored htmx for the live parts; every page
//! works as plain links and forms without JavaScript.
//!
//! Handlers are as thin as the API's: they take a signed-in session from an extractor
//! (`session`), call the same store and service functions as the API with the
//! session's organisation (and, in the portal, its one application), and render a
//! template. Every response carries a strict Content-Security-Policy (no inline script
//! or style) and is never cached.

mod assets;
mod curl;
mod endpoint_settings;
mod operator;
mod page;
mod portal;
mod session;
mod views;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;

use crate::service::Service;

/// `/ui` and `/portal` with their security headers (empty when `ui_enabled` is off).
pub fn router(state: Service) -> Router {
    if !state.config.ui_enabled {
        return Router::new();
    }
    let portal_csp = csp(&state.config.portal_frame_ancestors);
    let operator = operator::router()
        .route("/ui/assets/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(|r| async {
            security_headers(r, &csp("'none'"), true)
        }));
    let portal = portal::router().layer(axum::middleware::map_response(move |r| {
        let csp = portal_csp.clone();
        async move { security_headers(r, &csp, false) }
    }));
    operator.merge(portal).with_state(state)
}

/// No script or style but hookd's own files, no inline code, forms only to hookd.
fn csp(frame_ancestors: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {frame_ancestors}"
    )
}

fn security_headers(mut r: Response, csp: &str, deny_frames: bool) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if deny_frames {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}
