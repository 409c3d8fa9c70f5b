//! The consumer portal (`/portal`): what a SaaS embeds so its customers manage their
//! own endpoints for one application — endpoints, the event catalogue, the message
//! log with resend and recovery, a testing tab, and secrets where allowed. A portal
//! session reaches only its application, and each action needs the Svix capability
//! that allows it (`ViewBase`, `ViewEndpointSecret`, `ManageEndpointSecret`,
//! `CreateAttempts`, `ManageEndpoint`); a read-only session sees no edit buttons and
//! its posts are refused.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hookd_core::id::ApplicationId;
use hookd_core::name::EventTypeName;
use hookd_store::{Application, EventType, ListQuery, Message, MessageFilter};
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::http::parse_field;
use crate::service::endpoint::{self as endpoint_service, AppRef, EndpointSecretRotateIn};
use crate::service::ui_session::{self, SignedIn};
use crate::service::{Service, jobs, message};
use crate::ui::endpoint_settings::{
    self, FilterForm, HeadersForm, Settings, SimulateForm, Simulated, TransformationForm,
};
use crate::ui::operator::{newest, parse_since};
use crate::ui::page::{Chrome, PortalLook, UiResult, render, see};
use crate::ui::session::{self, Portal, Posted, Session};
use crate::ui::views::{
    self, AttemptRow, Delivery, DeliveryFragment, EndpointForm, event_types_text, pretty_json, time,
};

type PortalSession = Session<Portal>;

pub fn router() -> Router<Service> {
    Router::new()
        .route("/portal", get(endpoints).post(create_endpoint))
        .route("/portal/sign-in", get(sign_in))
        .route("/portal/signed-out", get(signed_out))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/theme.css", get(theme_css))
        .route("/portal/endpoints/{ep}", get(endpoint).post(update_endpoint))
        .route("/portal/endpoints/{ep}/state", post(endpoint_state))
        .route("/portal/endpoints/{ep}/delete", post(delete_endpoint))
        .route("/portal/endpoints/{ep}/secret", post(reveal_secret))
        .route("/portal/endpoints/{ep}/rotate", post(rotate_secret))
        .route("/portal/endpoints/{ep}/recover", post(recover))
        .route("/portal/endpoints/{ep}/headers", post(save_headers))
        .route("/portal/endpoints/{ep}/filter", post(save_filter))
        .route("/portal/endpoints/{ep}/transformation", post(save_transformation))
        .route("/portal/endpoints/{ep}/simulate", post(simulate))
        .route("/portal/event-types", get(event_types))
        .route("/portal/messages", get(messages))
        .route("/portal/messages/{msg}", get(show_message))
        .route("/portal/messages/{msg}/attempts", get(message_attempts))
        .route("/portal/messages/{msg}/resend", post(resend))
        .route("/portal/testing", get(testing).post(send_example))
}

const LOOK_COOKIE: &str = "hookd_portal_look";

/// The look chosen by the sign-in link: `darkMode`, `hideNav` (or Svix's
/// `fullSize`/`noGutters` spirit: no navigation) and `primaryColor` (`rrggbb`, with or
/// without `#`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LookQuery {
    #[serde(default)]
    dark_mode: Option<String>,
    #[serde(default)]
    hide_nav: Option<String>,
    #[serde(default)]
    primary_color: Option<String>,
}

fn hex_colour(s: &str) -> Option<String> {
    let s = s.trim_start_matches('#');
    (s.len() == 6 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

fn yes(v: Option<&String>) -> bool {
    v.is_some_and(|v| matches!(v.as_str(), "true" | "1" | "yes"))
}

/// `d` (dark) `n` (no navigation) and a colour, e.g. `dn-2457c5`: nothing secret.
fn look_cookie(q: &LookQuery) -> String {
    let mut flags = String::new();
    if yes(q.dark_mode.as_ref()) {
        flags.push('d');
    }
    if yes(q.hide_nav.as_ref()) {
        flags.push('n');
    }
    let colour = q
        .primary_color
        .as_deref()
        .and_then(hex_colour)
        .unwrap_or_default();
    format!("{flags}-{colour}")
}

fn read_look(headers: &HeaderMap) -> PortalLook {
    let value = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(n, _)| *n == LOOK_COOKIE)
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    let (flags, colour) = value.split_once('-').unwrap_or(("", ""));
    PortalLook {
        dark: flags.contains('d'),
        hide_nav: flags.contains('n'),
        primary: hex_colour(colour),
        read_only: false,
    }
}

/// The portal's own layout data: its application and the look.
struct Ctx {
    app: Application,
    look: PortalLook,
}

impl Ctx {
    async fn load(state: &Service, s: &SignedIn, headers: &HeaderMap) -> Result<Self, ApiError> {
        let app_id = portal_app(s)?;
        let app = state.store.get_application(s.org(), app_id.as_str()).await?;
        let mut look = read_look(headers);
        look.read_only = !s.can("ManageEndpoint") && !s.can("CreateAttempts");
        Ok(Self { app, look })
    }

    fn chrome(&self, s: &SignedIn, title: impl Into<String>, section: &'static str) -> Chrome {
        let mut c = Chrome::new(title, s.csrf_token(), self.app.data.name.clone(), section);
        c.portal = Some(self.look.clone());
        c
    }
}

fn portal_app(s: &SignedIn) -> Result<&ApplicationId, ApiError> {
    s.session.app_id.as_ref().ok_or(ApiError::Internal)
}

fn app_ref(s: &SignedIn) -> Result<AppRef, ApiError> {
    Ok(AppRef::Key(portal_app(s)?.to_string()))
}

/// 403 unless the session holds one of `capabilities`.
fn require(s: &SignedIn, capabilities: &[&str]) -> Result<(), ApiError> {
    if capabilities.iter().any(|c| s.can(c)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this portal link does not allow that (it needs {})",
            capabilities.join(" or ")
        )))
    }
}

/// What a session may do, for templates.
struct Can {
    manage: bool,
    view_secret: bool,
    rotate_secret: bool,
    attempts: bool,
}

impl Can {
    fn of(s: &SignedIn) -> Self {
        Self {
            manage: s.can("ManageEndpoint"),
            view_secret: s.can("ViewEndpointSecret")
                || s.can("ManageEndpointSecret")
                || s.can("ManageEndpoint"),
            rotate_secret: s.can("ManageEndpointSecret") || s.can("ManageEndpoint"),
            attempts: s.can("CreateAttempts"),
        }
    }
}

// ---------------------------------------------------------------------------------
// Signing in and out.

#[derive(Debug, Deserialize)]
struct SignInQuery {
    token: Option<String>,
    #[serde(flatten)]
    look: LookQuery,
}

#[derive(Template)]
#[template(path = "portal/signed_out.html")]
struct SignedOutPage {
    message: &'static str,
}

#[derive(Template)]
#[template(path = "ui/signed_in.html")]
struct SignedInPage {
    to: &'static str,
}

async fn sign_in(State(state): State<Service>, Query(q): Query<SignInQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    match ui_session::follow_portal_link(&state, &token).await {
        Ok(s) => {
            let max_age = (s.session.expires_at - chrono::Utc::now()).num_seconds().max(0);
            let mut r = render(&SignedInPage { to: "/portal" });
            let h = r.headers_mut();
            if let Ok(v) = session::set_cookie::<Portal>(&state, &token, max_age).parse() {
                h.append(SET_COOKIE, v);
            }
            let look = format!(
                "{LOOK_COOKIE}={}; Path=/portal; Max-Age={max_age}; {}",
                look_cookie(&q.look),
                <Portal as session::Surface>::attributes(state.config.public_url().starts_with("https://"))
            );
            if let Ok(v) = look.parse() {
                h.append(SET_COOKIE, v);
            }
            r
        }
        Err(ApiError::Unauthorized(_)) => {
            let mut r = render(&SignedOutPage {
                message: "This portal link is invalid, has expired or was already used. Open the portal again from the application that sent you here.",
            });
            *r.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
            r
        }
        Err(e) => crate::ui::page::UiError::from(e).into_response(),
    }
}

async fn signed_out() -> Response {
    render(&SignedOutPage {
        message: "You are signed out of this portal. Open it again from the application that sent you here.",
    })
}

#[derive(Debug, Deserialize)]
struct Empty {}

async fn sign_out(State(state): State<Service>, p: Posted<Portal, Empty>) -> UiResult {
    ui_session::sign_out(&state, &p.session).await?;
    let mut r = see("/portal/signed-out");
    if let Ok(v) = session::clear_cookie::<Portal>(&state).parse() {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(r)
}

#[derive(Debug, Deserialize)]
struct ThemeQuery {
    #[serde(default)]
    primary: String,
}

/// The primary colour as a stylesheet (the CSP allows no inline style).
async fn theme_css(Query(q): Query<ThemeQuery>) -> Response {
    let css = match hex_colour(&q.primary) {
        Some(c) => format!(
            "body.portal {{ --accent: #{c}; }}\nbody.portal button, body.portal .button {{ border-color: #{c}; }}\n"
        ),
        None => String::new(),
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        ],
        css,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------
// Endpoints.

#[derive(Template)]
#[template(path = "portal/endpoints.html")]
struct EndpointsPage {
    chrome: Chrome,
    endpoints: Vec<(String, String, String, bool)>,
    can: Can,
    event_types: Vec<String>,
}

/// The event types this portal session may see: every type without feature flags, and
/// those with one of the session's `featureFlags` (as Svix hides flagged types).
async fn visible_event_types(state: &Service, s: &SignedIn) -> Result<Vec<EventType>, ApiError> {
    let query = ListQuery {
        limit: 250,
        ..ListQuery::default()
    };
    let granted = &s.session.grants.feature_flags;
    Ok(state
        .store
        .list_event_types(s.org(), &query, false)
        .await?
        .items
        .into_iter()
        .filter(|t| {
            t.data.feature_flags.is_empty()
                || t.data
                    .feature_flags
                    .iter()
                    .any(|f| granted.iter().any(|g| g == f.as_str()))
        })
        .collect())
}

async fn event_type_names(state: &Service, s: &SignedIn) -> Result<Vec<String>, ApiError> {
    Ok(visible_event_types(state, s)
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect())
}

async fn endpoints(State(state): State<Service>, s: PortalSession, headers: HeaderMap) -> UiResult {
    let ctx = Ctx::load(&state, &s, &headers).await?;
    let list = endpoint_service::list(&state, s.org(), &app_ref(&s)?, &newest(250)).await?;
    Ok(render(&EndpointsPage {
        chrome: ctx.chrome(&s, "Endpoints", "endpoints"),
        endpoints: list
            .items
            .into_iter()
            .map(|ep| {
                (
                    ep.id.to_string(),
                    ep.data.url.to_string(),
                    event_types_text(&ep),
                    ep.data.disabled,
                )
            })
            .collect(),
        can: Can::of(&s),
        event_types: event_type_names(&state, &s).await?,
    }))
}

async fn create_endpoint(State(state): State<Service>, p: Posted<Portal, EndpointForm>) -> UiResult {
    require(&p.session, &["ManageEndpoint"])?;
    let ep =
        endpoint_service::create(&state, p.session.org(), &app_ref(&p.session)?, p.form.into_new()).await?;
    Ok(see(format!("/portal/endpoints/{}", ep.id)))
}

#[derive(Template)]
#[template(path = "portal/endpoint.html")]
struct EndpointPage {
    chrome: Chrome,
    ep: hookd_store::Endpoint,
    event_types: String,
    attempts: Vec<AttemptRow>,
    can: Can,
    secret: Option<String>,
    notice: Option<String>,
    settings: Settings,
    base: String,
    csrf: String,
    can_manage: bool,
    can_transform: bool,
}

/// What an endpoint page shows besides the endpoint itself.
#[derive(Default)]
struct Extra {
    secret: Option<String>,
    notice: Option<String>,
    simulated: Option<(String, Simulated)>,
}

async fn endpoint_page(
    state: &Service,
    s: &SignedIn,
    headers: &HeaderMap,
    ep: &str,
    extra: Extra,
) -> UiResult {
    let ctx = Ctx::load(state, s, headers).await?;
    let ep = state.store.get_endpoint(s.org(), &ctx.app.id, ep).await?;
    let filter = hookd_store::AttemptFilter {
        endpoint: Some(ep.id.clone()),
        ..Default::default()
    };
    let attempts = state
        .store
        .list_attempts(s.org(), &ctx.app.id, &newest(50), &filter)
        .await?
        .items
        .into_iter()
        .map(AttemptRow::from)
        .collect();
    let mut settings = Settings::of(&ep);
    if let Some((code, simulated)) = extra.simulated {
        settings.code = code;
        settings.simulated = Some(simulated);
    }
    Ok(render(&EndpointPage {
        chrome: ctx.chrome(s, ep.data.url.to_string(), "endpoints"),
        event_types: event_types_text(&ep),
        base: format!("/portal/endpoints/{}", ep.id),
        csrf: s.csrf_token().to_owned(),
        can_manage: s.can("ManageEndpoint"),
        can_transform: s.can("ManageTransformations"),
        settings,
        ep,
        attempts,
        can: Can::of(s),
        secret: extra.secret,
        notice: extra.notice,
    }))
}

async fn endpoint(
    State(state): State<Service>,
    s: PortalSession,
    Path(ep): Path<String>,
    headers: HeaderMap,
) -> UiResult {
    endpoint_page(&state, &s, &headers, &ep, Extra::default()).await
}

async fn update_endpoint(
    State(state): State<Service>,
    Path(ep): Path<String>,
    p: Posted<Portal, EndpointForm>,
) -> UiResult {
    require(&p.session, &["ManageEndpoint"])?;
    endpoint_service::change(
        &state,
        p.session.org(),
        &app_ref(&p.session)?,
        &ep,
        p.form.into_patch(),
    )
    .await?;
    Ok(see(format!("/portal/endpoints/{ep}")))
}

#[derive(Debug, Deserialize)]
struct StateForm {
    disabled: bool,
}

async fn endpoint_state(
    State(state): State<Service>,
    Path(ep): Path<String>,
    p: Posted<Portal, StateForm>,
) -> UiResult {
    require(&p.session, &["ManageEndpoint"])?;
    let patch = endpoint_service::EndpointPatch {
        disabled: Some(p.form.disabled),
        ..Default::default()
    };
    endpoint_service::change(&state, p.session.org(), &app_ref(&p.session)?, &ep, patch).await?;
    Ok(see(format!("/portal/endpoints/{ep}")))
}

async fn delete_endpoint(
    State(state): State<Service>,
    Path(ep): Path<String>,
    p: Posted<Portal, Empty>,
) -> UiResult {
    require(&p.session, &["ManageEndpoint"])?;
    endpoint_service::delete(&state, p.session.org(), &app_ref(&p.session)?, &ep).await?;
    Ok(see("/portal"))
}

/// Posted forms carry the request's headers too (for the look cookie).
#[derive(Debug)]
struct WithHeaders<T>(HeaderMap, Posted<Portal, T>);

impl<T: serde::de::DeserializeOwned + Send> axum::extract::FromRequest<Service> for WithHeaders<T> {
    type Rejection = crate::ui::page::UiError;
    async fn from_request(req: axum::extract::Request, state: &Service) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        Ok(Self(headers, Posted::from_request(req, state).await?))
    }
}

async fn reveal_secret(
    State(state): State<Service>,
    Path(ep): Path<String>,
    WithHeaders(h, p): WithHeaders<Empty>,
) -> UiResult {
    require(
        &p.session,
        &["ViewEndpointSecret", "ManageEndpointSecret", "ManageEndpoint"],
    )?;
    let secret = endpoint_service::secret(&state, p.session.org(), &app_ref(&p.session)?, &ep).await?;
    let extra = Extra {
        secret: Some(secret.key),
        ..Extra::default()
    };
    endpoint_page(&state, &p.session, &h, &ep, extra).await
}

async fn rotate_secret(
    State(state): State<Service>,
    Path(ep): Path<String>,
    WithHeaders(h, p): WithHeaders<Empty>,
) -> UiResult {
    require(&p.session, &["ManageEndpointSecret", "ManageEndpoint"])?;
    let secret = endpoint_service::rotate_secret(
        &state,
        p.session.org(),
        &app_ref(&p.session)?,
        &ep,
        EndpointSecretRotateIn::default(),
    )
    .await?;
    let notice = "The secret was rotated; the previous one keeps signing for 24 hours.".to_owned();
    let extra = Extra {
        secret: Some(secret.key),
        notice: Some(notice),
        ..Extra::default()
    };
    endpoint_page(&state, &p.session, &h, &ep, extra).await
}

async fn recover(
    State(state): State<Service>,
    Path(ep): Path<String>,
    WithHeaders(h, p): WithHeaders<crate::ui::operator::RecoverForm>,
) -> UiResult {
    require(&p.session, &["CreateAttempts"])?;
    let since = parse_since(&p.form.since)?;
    let app = portal_app(&p.session)?.clone();
    let ep_id = state.store.get_endpoint(p.session.org(), &app, &ep).await?.id;
    jobs::recover(&state, p.session.org(), &app, &ep_id, since, None).await?;
    let notice = format!("Recovering failed messages since {}.", time(since));
    let extra = Extra {
        notice: Some(notice),
        ..Extra::default()
    };
    endpoint_page(&state, &p.session, &h, &ep, extra).await
}

/// The portal's endpoint `ep`, and the `AppRef` to change it by.
async fn endpoint_of(
    state: &Service,
    s: &SignedIn,
    ep: &str,
) -> Result<(AppRef, hookd_store::Endpoint), ApiError> {
    let app = portal_app(s)?;
    let ep = state.store.get_endpoint(s.org(), app, ep).await?;
    Ok((app_ref(s)?, ep))
}

async fn save_headers(
    State(state): State<Service>,
    Path(ep): Path<String>,
    p: Posted<Portal, HeadersForm>,
) -> UiResult {
    require(&p.session, &["ManageEndpoint"])?;
    let (app, endpoint) = endpoint_of(&state, &p.session, &ep).await?;
    endpoint_settings::save_headers(&state, p.session.org(), &app, &endpoint, p.form).await?;
    Ok(see(format!("/portal/endpoints/{ep}")))
}

async fn save_filter(
    State(state): State<Service>,
    Path(ep): Path<String>,
    p: Posted<Portal, FilterForm>,
) -> UiResult {
    require(&p.session, &["ManageEndpoint"])?;
    let (app, endpoint) = endpoint_of(&state, &p.session, &ep).await?;
    endpoint_settings::save_filter(&state, p.session.org(), &app, &endpoint, p.form).await?;
    Ok(see(format!("/portal/endpoints/{ep}")))
}

async fn save_transformation(
    State(state): State<Service>,
    Path(ep): Path<String>,
    p: Posted<Portal, TransformationForm>,
) -> UiResult {
    require(&p.session, &["ManageTransformations"])?;
    let (app, endpoint) = endpoint_of(&state, &p.session, &ep).await?;
    endpoint_settings::save_transformation(&state, p.session.org(), &app, &endpoint, p.form).await?;
    Ok(see(format!("/portal/endpoints/{ep}")))
}

async fn simulate(
    State(state): State<Service>,
    Path(ep): Path<String>,
    WithHeaders(h, p): WithHeaders<SimulateForm>,
) -> UiResult {
    require(&p.session, &["ManageTransformations"])?;
    let (app, endpoint) = endpoint_of(&state, &p.session, &ep).await?;
    let simulated = endpoint_settings::simulate(&state, p.session.org(), &app, &endpoint, &p.form).await?;
    let extra = Extra {
        simulated: Some((p.form.code.clone(), simulated)),
        ..Extra::default()
    };
    endpoint_page(&state, &p.session, &h, &ep, extra).await
}

// ---------------------------------------------------------------------------------
// The event catalogue.

struct EventTypeRow {
    name: String,
    description: String,
    deprecated: bool,
    schema: Option<String>,
    example: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/event_types.html")]
struct EventTypesPage {
    chrome: Chrome,
    types: Vec<EventTypeRow>,
}

fn event_type_row(t: EventType) -> EventTypeRow {
    let newest = t
        .data
        .schemas
        .as_ref()
        .and_then(|s| s.as_object())
        .and_then(|versions| {
            versions
                .iter()
                .max_by_key(|(v, _)| v.parse::<u64>().unwrap_or(0))
                .map(|(_, schema)| schema.clone())
        });
    EventTypeRow {
        example: Some(message::example_payload(t.data.schemas.as_ref(), &t.name, 0)).map(|e| pretty_json(&e)),
        schema: newest.and_then(|s| serde_json::to_string_pretty(&s).ok()),
        name: t.name.to_string(),
        description: t.data.description,
        deprecated: t.data.deprecated,
    }
}

async fn event_types(State(state): State<Service>, s: PortalSession, headers: HeaderMap) -> UiResult {
    let ctx = Ctx::load(&state, &s, &headers).await?;
    let types = visible_event_types(&state, &s).await?;
    Ok(render(&EventTypesPage {
        chrome: ctx.chrome(&s, "Event catalog", "event-types"),
        types: types.into_iter().map(event_type_row).collect(),
    }))
}

// ---------------------------------------------------------------------------------
// Messages (the log) and testing.

#[derive(Template)]
#[template(path = "portal/messages.html")]
struct MessagesPage {
    chrome: Chrome,
    messages: Vec<(String, String, String)>,
    event_type: String,
}

#[derive(Debug, Default, Deserialize)]
struct MessageQuery {
    #[serde(default)]
    event_type: String,
}

async fn messages(
    State(state): State<Service>,
    s: PortalSession,
    Query(q): Query<MessageQuery>,
    headers: HeaderMap,
) -> UiResult {
    let ctx = Ctx::load(&state, &s, &headers).await?;
    let filter = MessageFilter {
        event_types: match q.event_type.trim() {
            "" => None,
            t => Some(vec![parse_field::<EventTypeName>(t, "event_type")?]),
        },
        ..MessageFilter::default()
    };
    let page = state
        .store
        .list_messages(s.org(), &ctx.app.id, &newest(50), &filter)
        .await?;
    Ok(render(&MessagesPage {
        chrome: ctx.chrome(&s, "Logs", "messages"),
        messages: page
            .items
            .into_iter()
            .map(|m: Message| (m.id.to_string(), m.event_type.to_string(), time(m.created_at)))
            .collect(),
        event_type: q.event_type,
    }))
}

#[derive(Template)]
#[template(path = "portal/message.html")]
struct MessagePage {
    chrome: Chrome,
    msg: Message,
    payload: String,
    at: String,
    delivery: Delivery,
}

async fn show_message(
    State(state): State<Service>,
    s: PortalSession,
    Path(msg): Path<String>,
    headers: HeaderMap,
) -> UiResult {
    let ctx = Ctx::load(&state, &s, &headers).await?;
    let msg = state.store.get_message(s.org(), &ctx.app.id, &msg).await?;
    let base = format!("/portal/messages/{}", msg.id);
    let delivery = views::delivery(
        &state,
        s.org(),
        &ctx.app.id,
        &msg.id,
        base,
        s.can("CreateAttempts"),
        s.csrf_token(),
    )
    .await?;
    Ok(render(&MessagePage {
        chrome: ctx.chrome(&s, msg.event_type.to_string(), "messages"),
        payload: msg.payload.as_deref().map(pretty_json).unwrap_or_default(),
        at: time(msg.created_at),
        msg,
        delivery,
    }))
}

async fn message_attempts(
    State(state): State<Service>,
    s: PortalSession,
    Path(msg): Path<String>,
) -> UiResult {
    let app = portal_app(&s)?.clone();
    let msg = state.store.get_message(s.org(), &app, &msg).await?.id;
    let base = format!("/portal/messages/{msg}");
    let delivery = views::delivery(
        &state,
        s.org(),
        &app,
        &msg,
        base,
        s.can("CreateAttempts"),
        s.csrf_token(),
    )
    .await?;
    Ok(render(&DeliveryFragment { delivery }))
}

async fn resend(
    State(state): State<Service>,
    Path(msg): Path<String>,
    p: Posted<Portal, crate::ui::operator::ResendForm>,
) -> UiResult {
    require(&p.session, &["CreateAttempts"])?;
    let org = p.session.org();
    let app = portal_app(&p.session)?.clone();
    let msg = state.store.get_message(org, &app, &msg).await?.id;
    let ep = state.store.get_endpoint(org, &app, &p.form.endpoint).await?.id;
    message::resend(&state, org, &app, &msg, &ep).await?;
    Ok(see(format!("/portal/messages/{msg}")))
}

#[derive(Template)]
#[template(path = "portal/testing.html")]
struct TestingPage {
    chrome: Chrome,
    endpoints: Vec<(String, String)>,
    event_types: Vec<String>,
    can_send: bool,
}

async fn testing(State(state): State<Service>, s: PortalSession, headers: HeaderMap) -> UiResult {
    let ctx = Ctx::load(&state, &s, &headers).await?;
    let list = endpoint_service::list(&state, s.org(), &app_ref(&s)?, &newest(250)).await?;
    Ok(render(&TestingPage {
        chrome: ctx.chrome(&s, "Testing", "testing"),
        endpoints: list
            .items
            .into_iter()
            .map(|ep| (ep.id.to_string(), ep.data.url.to_string()))
            .collect(),
        event_types: event_type_names(&state, &s).await?,
        can_send: s.can("CreateAttempts"),
    }))
}

#[derive(Debug, Deserialize)]
struct ExampleForm {
    endpoint: String,
    event_type: String,
}

async fn send_example(State(state): State<Service>, p: Posted<Portal, ExampleForm>) -> UiResult {
    require(&p.session, &["CreateAttempts"])?;
    let org = p.session.org();
    let app = portal_app(&p.session)?.clone();
    let ep = state.store.get_endpoint(org, &app, &p.form.endpoint).await?.id;
    let event_type: EventTypeName = parse_field(p.form.event_type.trim(), "eventType")?;
    if !event_type_names(&state, &p.session)
        .await?
        .iter()
        .any(|t| t == event_type.as_str())
    {
        return Err(ApiError::not_found("event type").into());
    }
    let msg = message::send_example(&state, org, &app, &ep, event_type, 0, None).await?;
    Ok(see(format!("/portal/messages/{}", msg.id)))
}
