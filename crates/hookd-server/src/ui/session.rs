//! Who is looking: a signed-in operator or portal session, from its cookie, and the
//! forms they post, each checked against the session's CSRF token before a handler
//! sees it.
//!
//! Cookies: the operator's `hookd_ui` is `HttpOnly; SameSite=Strict; Path=/ui`
//! (`Secure` when the public URL is https). The portal's `hookd_portal` must also
//! reach an iframe on the SaaS's own site, so behind https it is `SameSite=None;
//! Secure; Partitioned` (a cookie of that embedding only); over plain http it is
//! `SameSite=Lax` and embedding works on the same site only. CSRF tokens guard every
//! form either way.

use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use hookd_store::UiSessionKind;
use serde::de::DeserializeOwned;

use crate::http::error::ApiError;
use crate::service::Service;
use crate::service::ui_session::{self, SignedIn};
use crate::ui::page::UiError;

/// Which UI a session opens.
pub trait Surface: Send + Sync + 'static {
    const KIND: UiSessionKind;
    const COOKIE: &'static str;
    const PATH: &'static str;
    /// Where a browser without a live session is sent.
    const SIGN_IN: &'static str;
    /// The cookie's `SameSite` and `Secure` attributes for a server reached at
    /// `https` or not.
    fn attributes(https: bool) -> &'static str;
}

#[derive(Debug)]
pub struct Operator;
#[derive(Debug)]
pub struct Portal;

impl Surface for Operator {
    const KIND: UiSessionKind = UiSessionKind::Operator;
    const COOKIE: &'static str = "hookd_ui";
    const PATH: &'static str = "/ui";
    const SIGN_IN: &'static str = "/ui/sign-in";
    fn attributes(https: bool) -> &'static str {
        if https {
            "SameSite=Strict; Secure"
        } else {
            "SameSite=Strict"
        }
    }
}

impl Surface for Portal {
    const KIND: UiSessionKind = UiSessionKind::Portal;
    const COOKIE: &'static str = "hookd_portal";
    const PATH: &'static str = "/portal";
    const SIGN_IN: &'static str = "/portal/signed-out";
    fn attributes(https: bool) -> &'static str {
        if https {
            "SameSite=None; Secure; Partitioned"
        } else {
            "SameSite=Lax"
        }
    }
}

fn https(state: &Service) -> bool {
    state.config.public_url().starts_with("https://")
}

/// The `Set-Cookie` value that stores a session credential in the browser.
pub fn set_cookie<S: Surface>(state: &Service, credential: &str, max_age_seconds: i64) -> String {
    format!(
        "{}={credential}; Path={}; HttpOnly; Max-Age={max_age_seconds}; {}",
        S::COOKIE,
        S::PATH,
        S::attributes(https(state))
    )
}

/// The `Set-Cookie` value that removes it.
pub fn clear_cookie<S: Surface>(state: &Service) -> String {
    format!(
        "{}=; Path={}; HttpOnly; Max-Age=0; {}",
        S::COOKIE,
        S::PATH,
        S::attributes(https(state))
    )
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A live session of surface `S`, from its cookie.
#[derive(Debug)]
pub struct Session<S> {
    pub signed_in: SignedIn,
    surface: PhantomData<S>,
}

impl<S> std::ops::Deref for Session<S> {
    type Target = SignedIn;
    fn deref(&self) -> &SignedIn {
        &self.signed_in
    }
}

async fn session<S: Surface>(parts: &Parts, state: &Service) -> Result<Session<S>, UiError> {
    let presented = cookie(parts, S::COOKIE).ok_or(UiError::SignIn(S::SIGN_IN))?;
    match ui_session::authenticate(state, presented, S::KIND).await {
        Ok(signed_in) => Ok(Session {
            signed_in,
            surface: PhantomData,
        }),
        Err(ApiError::Unauthorized(_)) => Err(UiError::SignIn(S::SIGN_IN)),
        Err(e) => Err(e.into()),
    }
}

impl<S: Surface> FromRequestParts<Service> for Session<S> {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &Service) -> Result<Self, Self::Rejection> {
        session::<S>(parts, state).await
    }
}

/// A form posted by a live session of surface `S`: refused (403) unless it carries
/// the session's CSRF token (`_csrf` field, or the `X-CSRF-Token` header htmx sends).
#[derive(Debug)]
pub struct Posted<S, T> {
    pub session: Session<S>,
    pub form: T,
}

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// A form body is small; anything larger is refused before parsing.
const MAX_FORM_BYTES: usize = 1024 * 1024;

impl<S: Surface, T: DeserializeOwned + Send> FromRequest<Service> for Posted<S, T> {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &Service) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let session = session::<S>(&parts, state).await?;
        let header = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = crate::http::extract::read_body(&parts.headers, body, MAX_FORM_BYTES).await?;
        let field = serde_urlencoded::from_bytes::<CsrfField>(&bytes)
            .ok()
            .and_then(|f| f.csrf);
        let presented = field.or(header).unwrap_or_default();
        if !session.csrf_matches(&presented) {
            return Err(ApiError::Forbidden(
                "this form is stale or was not sent by a hookd page; reload the page and try again".into(),
            )
            .into());
        }
        let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| ApiError::BadRequest {
            code: "invalid_form",
            detail: format!("the form could not be read: {e}"),
        })?;
        Ok(Self { session, form })
    }
}
