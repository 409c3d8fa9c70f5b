//! Request extractors whose rejections are API errors: JSON bodies and query strings
//! are decoded with the failing field named, oversize bodies get 413, and nothing ever
//! answers with a plain-text or HTML error.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::http::error::{ApiError, ValidationItem};

/// A JSON body, decoded with the path of the first failing field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_body(req, state).await?;
        decode_object(&bytes).map(Self)
    }
}

/// A JSON body that may also be empty (or `null`), meaning `T::default()`.
#[derive(Debug)]
pub struct ApiJsonOrDefault<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for ApiJsonOrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
            return Ok(Self(T::default()));
        }
        decode_object(&bytes).map(Self)
    }
}

/// Reads a body declared as JSON (or undeclared), within the body limit.
async fn json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if let Some(ct) = req.headers().get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or_default().trim().to_owned();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "expected a JSON body (content-type: application/json), got {essence:?}"
            )));
        }
    }
    Bytes::from_request(req, state).await.map_err(|e| {
        if crate::http::server::is_body_timeout(&e) {
            body_timeout()
        } else if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("the request body is larger than this server accepts".into())
        } else {
            ApiError::BadRequest {
                code: "bad_request",
                detail: format!("could not read the request body: {e}"),
            }
        }
    })
}

/// A JSON value already parsed (and checked against a schema) as `T`, with the path of
/// the first failing field.
/// Reads a whole request body of at most `limit` bytes: the one size-limited reader of
/// every surface. A `Content-Length` over the limit is refused before anything is read,
/// a longer stream as soon as it passes the limit; either is a 413 and nothing is kept.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large =
        || ApiError::PayloadTooLarge(format!("the body is over this server's limit of {limit} bytes"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            too_large()
        } else if crate::http::server::is_body_timeout(&e) {
            body_timeout()
        } else {
            ApiError::BadRequest {
                code: "bad_body",
                detail: format!("the body could not be read: {e}"),
            }
        }
    })
}

/// The answer to a body that trickled in past `http_body_timeout`.
pub fn body_timeout() -> ApiError {
    ApiError::RequestTimeout(
        "the request body did not arrive in time (http_body_timeout); send it faster".into(),
    )
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

pub fn decode_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::Validation(vec![item("body", &path, &e.into_inner().to_string())])
    })
}

/// [`decode_json`] of a body that must be a JSON object, as every API body is (serde
/// would otherwise read a struct from an array of its fields in order).
pub fn decode_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
        return Err(ApiError::Validation(vec![item(
            "body",
            "",
            "the body must be a JSON object",
        )]));
    }
    decode_json(bytes)
}

pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let syntax = |e: serde_json::Error| ApiError::BadRequest {
        code: "invalid_json",
        detail: format!("the body is not valid JSON: {e}"),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::Validation(vec![item("body", &path, &inner.to_string())])
            }
            _ => syntax(inner),
        }
    })?;
    de.end().map_err(syntax)?;
    Ok(value)
}

/// A query string, decoded with the failing parameter named.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let path = e.path().to_string();
            ApiError::Validation(vec![item("query", &path, &e.into_inner().to_string())])
        })
    }
}

fn form_urlencoded_parse(query: &str) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(query.as_bytes())
}

/// Builds a validation item, recovering the field of "missing field `x`" errors, whose
/// path is the enclosing object.
fn item(place: &str, path: &str, message: &str) -> ValidationItem {
    let mut loc = vec![place.to_owned()];
    if path != "." && !path.is_empty() {
        loc.extend(path.split('.').map(str::to_owned));
    }
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    if let Some(field) = missing {
        loc.push(field.to_owned());
    }
    let msg = message.split(" at line ").next().unwrap_or(message).to_owned();
    let kind = if missing.is_some() {
        "value_error.missing"
    } else {
        "type_error"
    };
    ValidationItem {
        loc,
        msg,
        kind: kind.into(),
    }
}

/// `Option<Option<T>>` for PATCH bodies: absent → `None` (leave as is), `null` →
/// `Some(None)` (clear), a value → `Some(Some(v))`.
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::send::application::ApplicationIn;
    use crate::service::endpoint::{EndpointHeadersPatchIn, EndpointIn};

    #[test]
    fn missing_fields_are_named() {
        let Err(ApiError::Validation(items)) = decode_json::<ApplicationIn>(b"{}") else {
            panic!()
        };
        assert_eq!(items[0].loc, ["body", "name"]);
        assert_eq!(items[0].kind, "value_error.missing");
    }

    #[test]
    fn nested_fields_are_named() {
        let Err(ApiError::Validation(items)) =
            decode_json::<EndpointIn>(br#"{"url": "https://x", "headers": {"a": 1}}"#)
        else {
            panic!()
        };
        assert_eq!(items[0].loc, ["body", "headers", "a"]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_json::<ApplicationIn>(&bytes);
            let _ = decode_json::<EndpointIn>(&bytes);
            let _ = decode_json::<EndpointHeadersPatchIn>(&bytes);
        }

        #[test]
        fn arbitrary_json_values_never_panic(s in r#"\{("[a-zA-Z]{1,12}": ("[^"\\]{0,8}"|-?[0-9]{1,6}|null|true|\[\]|\{\}), ){0,5}"name": "x"\}"#) {
            let _ = decode_json::<ApplicationIn>(s.as_bytes());
            let _ = decode_json::<EndpointIn>(s.as_bytes());
        }
    }
}
