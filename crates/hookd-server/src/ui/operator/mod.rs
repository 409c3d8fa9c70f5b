//! The operator's pages (`/ui`): signing in (a `hookd ui-link` link or a pasted API
//! token), the overview, applications with their endpoints and messages, their data
//! API, flows and their runs, and sources as a live request inspector. Every page reads through the signed-in session's
//! organisation, with the same store and service calls as the API.

mod apps;
mod data;
mod flows;
mod overview;
mod sources;

pub(crate) use apps::{RecoverForm, ResendForm, parse_since};

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hookd_store::{ListQuery, Order};
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::service::Service;
use crate::service::ui_session;
use crate::ui::page::{Chrome, UiResult, render};
use crate::ui::session::{self, Operator, Posted, Session};

pub type OperatorSession = Session<Operator>;

pub fn router() -> Router<Service> {
    Router::new()
        .route("/ui", get(overview::overview))
        .route("/ui/sign-in", get(sign_in_page).post(sign_in_with_token))
        .route("/ui/sign-out", post(sign_out))
        .merge(apps::router())
        .merge(data::router())
        .merge(flows::router())
        .merge(sources::router())
}

/// The chrome of an operator page.
pub fn chrome(s: &OperatorSession, title: impl Into<String>, section: &'static str) -> Chrome {
    Chrome::new(title, s.csrf_token(), s.org().as_str(), section)
}

/// The first page of a listing, newest first.
pub fn newest(limit: usize) -> ListQuery {
    ListQuery {
        limit,
        cursor: None,
        order: Order::Descending,
    }
}

#[derive(Template)]
#[template(path = "ui/sign_in.html")]
struct SignInPage {
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/signed_in.html")]
struct SignedInPage {
    to: &'static str,
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

/// The sign-in page, or a sign-in link being followed.
async fn sign_in_page(State(state): State<Service>, Query(q): Query<LinkQuery>) -> Response {
    let Some(token) = q.token else {
        return render(&SignInPage { error: None });
    };
    match ui_session::sign_in_with_link(&state, &token).await {
        Ok((credential, _)) => signed_in(&state, &credential.reveal()),
        Err(ApiError::Unauthorized(_)) => {
            let mut r = render(&SignInPage {
                error: Some(
                    "This sign-in link is invalid, expired or already used. Run `hookd ui-link` for a new one, or paste an API token."
                        .into(),
                ),
            });
            *r.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
            r
        }
        Err(e) => crate::ui::page::UiError::from(e).into_response(),
    }
}

/// Sets the session cookie and moves on to the overview. The page (rather than a
/// redirect) drops the link's token from the address bar and history, and makes the
/// next request a same-site one, which a `SameSite=Strict` cookie needs when the link
/// was opened from another site.
fn signed_in(state: &Service, credential: &str) -> Response {
    let max_age = i64::try_from(state.config.ui_session_lifetime.as_secs()).unwrap_or(i64::MAX);
    let cookie = session::set_cookie::<Operator>(state, credential, max_age);
    let mut r = render(&SignedInPage { to: "/ui" });
    if let Ok(v) = cookie.parse() {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    token: String,
}

/// Signs in with a pasted API token. No CSRF token exists yet; the session this
/// creates belongs to whoever holds the API token, so a forged post gains nothing.
async fn sign_in_with_token(
    State(state): State<Service>,
    axum::Form(form): axum::Form<TokenForm>,
) -> Response {
    match ui_session::sign_in_with_token(&state, &form.token).await {
        Ok((credential, _)) => signed_in(&state, &credential.reveal()),
        Err(ApiError::Unauthorized(_)) => {
            let mut r = render(&SignInPage {
                error: Some("That is not a valid API token.".into()),
            });
            *r.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
            r
        }
        Err(e) => crate::ui::page::UiError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct Empty {}

async fn sign_out(State(state): State<Service>, posted: Posted<Operator, Empty>) -> UiResult {
    ui_session::sign_out(&state, &posted.session).await?;
    let mut r = crate::ui::page::see("/ui/sign-in");
    if let Ok(v) = session::clear_cookie::<Operator>(&state).parse() {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(r)
}
