//! The shared HTTP layer every surface uses: the one error type ([`error`]), request
//! extractors whose rejections are API errors ([`extract`]), pagination, the
//! [`Tenant`](auth::Tenant) extractor, `Idempotency-Key` handling, and the small answer
//! types handlers share.
//!
//! It may use the store and core crates, never the service layer or a surface: what it
//! needs of the server's state it asks through [`HttpState`].

pub mod auth;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod openapi;
pub mod pagination;
pub mod server;

use std::str::FromStr;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hookd_core::InvalidValue;
use hookd_core::throttle::ThrottleRate;
use serde::Serialize;

use crate::http::error::{ApiError, ApiResult};

/// What the shared HTTP layer needs of the server's state (implemented by
/// [`crate::service::Service`]): the store, for idempotency records, and the request
/// body limit.
pub trait HttpState: auth::Authenticate + Clone + Send + Sync + 'static {
    fn store(&self) -> &dyn hookd_store::Store;
    /// `api_max_body_bytes`.
    fn max_body_bytes(&self) -> usize;
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

/// A body's `throttleRate`: absent is no limit; 0 answers 422 naming it.
pub fn parse_throttle_rate(rate: Option<u16>) -> ApiResult<Option<ThrottleRate>> {
    match rate {
        None => Ok(None),
        Some(r) => ThrottleRate::new(r)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(&["body", "throttleRate"], "throttleRate must be at least 1")),
    }
}

/// A PATCH body's `throttleRate`: absent keeps the limit, `null` or 0 removes it.
pub fn patch_throttle_rate(rate: Option<Option<u16>>) -> Option<Option<ThrottleRate>> {
    rate.map(|r| r.and_then(ThrottleRate::new))
}
