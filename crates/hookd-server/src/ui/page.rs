//! Rendering: a template into an HTML response, the chrome every page shares, and the
//! UI's errors as pages (a JSON error body would be useless to a browser).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::http::error::ApiError;

/// What the layout around every page needs.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub title: String,
    pub csrf: String,
    /// The organisation (operator) or application (portal) signed in to.
    pub who: String,
    /// Which navigation entry is current.
    pub section: &'static str,
    pub portal: Option<PortalLook>,
}

/// The portal's look, from the sign-in link's parameters (Svix's theming names).
#[derive(Debug, Clone, Default)]
pub struct PortalLook {
    pub dark: bool,
    pub hide_nav: bool,
    /// `rrggbb`, checked.
    pub primary: Option<String>,
    pub read_only: bool,
}

impl Chrome {
    pub fn new(title: impl Into<String>, csrf: &str, who: impl Into<String>, section: &'static str) -> Self {
        Self {
            title: title.into(),
            csrf: csrf.to_owned(),
            who: who.into(),
            section,
            portal: None,
        }
    }
}

/// Renders a page; a template that cannot render is a server error (logged).
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a UI template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// After a successful form: see the result (POST, redirect, GET).
pub fn see(path: impl AsRef<str>) -> Response {
    Redirect::to(path.as_ref()).into_response()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    detail: &'a str,
}

/// An error met by a UI request.
#[derive(Debug)]
pub enum UiError {
    /// No live session: to the sign-in page of that surface.
    SignIn(&'static str),
    Api(ApiError),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<hookd_store::StoreError> for UiError {
    fn from(e: hookd_store::StoreError) -> Self {
        Self::Api(e.into())
    }
}

pub type UiResult<T = Response> = Result<T, UiError>;

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn(path) => {
                let mut r = Redirect::to(path).into_response();
                // htmx follows this instead of swapping the sign-in page into a fragment.
                if let Ok(v) = HeaderValue::from_str(path) {
                    r.headers_mut().insert("hx-redirect", v);
                }
                r
            }
            Self::Api(e) => {
                let detail = match &e {
                    ApiError::Validation(items) => items
                        .iter()
                        .map(|i| format!("{}: {}", i.loc.last().map_or("", String::as_str), i.msg))
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                };
                // The API's answer for the same error gives the status and headers
                // (Retry-After of a 503), and logs a server error once.
                let api = e.into_response();
                let status = api.status();
                let page = ErrorPage {
                    status: status.as_u16(),
                    reason: status.canonical_reason().unwrap_or("Error"),
                    detail: &detail,
                };
                let mut r = render(&page);
                *r.status_mut() = status;
                if let Some(v) = api.headers().get(header::RETRY_AFTER) {
                    r.headers_mut().insert(header::RETRY_AFTER, v.clone());
                }
                r
            }
        }
    }
}
