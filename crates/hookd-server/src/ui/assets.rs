//! The UI's static files, compiled into the binary: hookd's stylesheet and script and
//! the vendored htmx (`ui-assets/vendor/README.md` says which versions and licences).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "hookd.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui-assets/hookd.css"),
    ),
    (
        "hookd.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui-assets/hookd.js"),
    ),
    (
        "htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui-assets/vendor/htmx-2.0.11.min.js"),
    ),
    (
        "htmx-ext-sse-2.2.4.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui-assets/vendor/htmx-ext-sse-2.2.4.min.js"),
    ),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                // Vendored files carry their version in their name; hookd's own change
                // with the binary, so they are revalidated after an hour.
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=3600"),
                ),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
