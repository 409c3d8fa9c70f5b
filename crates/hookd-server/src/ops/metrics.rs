//! `/metrics`: Prometheus text exposition of the server and its delivery engine.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::service::Service;

pub async fn handler(State(state): State<Service>) -> Response {
    match crate::service::metrics::render(&state).await {
        Ok(text) => (
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
