//! The API's one error type and the one place store errors become HTTP answers.
//!
//! Client errors are `{"code": ..., "detail": ...}` with the right 4xx; validation
//! errors are 422 with `detail` a list of `{loc, msg, type}` naming the failing field
//! (the shape the Svix SDKs parse). Server errors are logged with their whole cause
//! chain and answered with an opaque body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hookd_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// One failing input: where (`["body", "uid"]`), what is wrong, and its kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValidationItem {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// An HTTP error body: `{"code", "detail"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HttpErrorOut {
    pub code: String,
    pub detail: String,
}

/// A 422 body: `{"code": "validation", "detail": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorOut {
    pub code: String,
    pub detail: Vec<ValidationItem>,
}

/// Seconds a 503 asks its client to wait before trying again (`Retry-After`).
pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    PreconditionFailed(String),
    /// 429, with `Retry-After` when a wait is known.
    #[error("{detail}")]
    TooManyRequests {
        code: &'static str,
        detail: String,
        retry_after: Option<u64>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 408: the body did not arrive within `http_body_timeout`.
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("invalid input")]
    Validation(Vec<ValidationItem>),
    /// 503, with `Retry-After` ([`UNAVAILABLE_RETRY_AFTER`]).
    #[error("{0}")]
    Unavailable(String),
    /// 503 with `Retry-After: 1`: refused before any work because the database's
    /// writes are queueing (admission control, `http_admission_write_wait`).
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    NotImplemented(String),
    /// 502: what the request set off failed further on (a flow a mode ran).
    #[error("{0}")]
    BadGateway(String),
    /// 503 with `Retry-After`: stored data the request needs does not decode (a
    /// damaged row, a secret no configured key opens) until an operator repairs it;
    /// the detail names the row.
    #[error("{0}")]
    Damaged(String),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A 422 for one field, e.g. `ApiError::invalid(&["body", "uid"], "...")`.
    pub fn invalid(loc: &[&str], msg: impl Into<String>) -> Self {
        Self::Validation(vec![ValidationItem {
            loc: loc.iter().map(|s| (*s).to_owned()).collect(),
            msg: msg.into(),
            kind: "value_error".into(),
        }])
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "authentication_failed"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            Self::TooManyRequests { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Damaged(_) => (StatusCode::SERVICE_UNAVAILABLE, "damaged_data"),
            Self::NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, "not_implemented"),
            Self::BadGateway(_) => (StatusCode::BAD_GATEWAY, "flow_failed"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match self {
            Self::Validation(detail) => (
                status,
                Json(ValidationErrorOut {
                    code: code.into(),
                    detail,
                }),
            )
                .into_response(),
            Self::Internal => (
                status,
                Json(HttpErrorOut {
                    code: code.into(),
                    detail: "an internal error occurred; it has been logged".into(),
                }),
            )
                .into_response(),
            Self::TooManyRequests {
                ref detail,
                retry_after,
                ..
            } => {
                let body = Json(HttpErrorOut {
                    code: code.into(),
                    detail: detail.clone(),
                });
                match retry_after {
                    Some(secs) => (
                        status,
                        [(axum::http::header::RETRY_AFTER, secs.to_string())],
                        body,
                    )
                        .into_response(),
                    None => (status, body).into_response(),
                }
            }
            // Shed load: worth retrying within the second.
            Self::Overloaded(ref detail) => (
                status,
                [(axum::http::header::RETRY_AFTER, "1".to_owned())],
                Json(HttpErrorOut {
                    code: code.into(),
                    detail: detail.clone(),
                }),
            )
                .into_response(),
            // A fault we could not handle: the client is told when to try again.
            Self::Unavailable(ref detail) | Self::Damaged(ref detail) => (
                status,
                [(
                    axum::http::header::RETRY_AFTER,
                    UNAVAILABLE_RETRY_AFTER.to_string(),
                )],
                Json(HttpErrorOut {
                    code: code.into(),
                    detail: detail.clone(),
                }),
            )
                .into_response(),
            other => (
                status,
                Json(HttpErrorOut {
                    code: code.into(),
                    detail: other.to_string(),
                }),
            )
                .into_response(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Precondition(m) => Self::PreconditionFailed(m),
            StoreError::Rejected { field, message } if field.is_empty() => Self::invalid(&["body"], message),
            StoreError::Rejected { field, message } => Self::invalid(&["body", &field], message),
            StoreError::Unavailable(m) => {
                tracing::error!(error = %m, "the database is unavailable");
                Self::Unavailable("the database is unavailable; try again".into())
            }
            StoreError::Damaged { place, cause } => {
                tracing::error!(%place, %cause, "stored data does not decode; repair or delete the row");
                Self::Damaged(format!(
                    "stored data this request needs does not decode ({place}); it has been logged for an operator to repair"
                ))
            }
            StoreError::Internal(source) => {
                let mut chain = source.to_string();
                let mut cause = source.source();
                while let Some(c) = cause {
                    chain.push_str(": ");
                    chain.push_str(&c.to_string());
                    cause = c.source();
                }
                tracing::error!(error = %chain, "storage error");
                Self::Internal
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
