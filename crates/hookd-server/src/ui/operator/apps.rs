//! Applications → endpoints → messages and their attempts: create, look, resend,
//! recover, reveal and rotate secrets, and a consumer portal link for an application.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use chrono::{NaiveDateTime, Utc};
use hookd_core::name::EventTypeName;
use hookd_store::{Application, ApplicationData, ApplicationFilter, EndpointStats, Message, MessageFilter};
use serde::Deserialize;

use super::{OperatorSession, chrome, newest};
use crate::http::error::ApiError;
use crate::http::parse_field;
use crate::service::endpoint::{self as endpoint_service, AppRef, EndpointSecretRotateIn};
use crate::service::ui_session::{self, PortalGrant};
use crate::service::{Service, application, jobs, message};
use crate::ui::endpoint_settings::{
    self, FilterForm, HeadersForm, Settings, SimulateForm, Simulated, TransformationForm,
};
use crate::ui::page::{Chrome, UiResult, render, see};
use crate::ui::session::{Operator, Posted};
use crate::ui::views::{
    self, AttemptRow, Delivery, DeliveryFragment, EndpointForm, event_types_text, pretty_json, time,
};

pub fn router() -> Router<Service> {
    Router::new()
        .route("/ui/apps", get(list).post(create))
        .route("/ui/apps/{app}", get(show))
        .route("/ui/apps/{app}/endpoints", post(create_endpoint))
        .route("/ui/apps/{app}/messages", post(send_message))
        .route("/ui/apps/{app}/portal-access", post(portal_access))
        .route(
            "/ui/apps/{app}/endpoints/{ep}",
            get(endpoint).post(update_endpoint),
        )
        .route("/ui/apps/{app}/endpoints/{ep}/state", post(endpoint_state))
        .route("/ui/apps/{app}/endpoints/{ep}/secret", post(reveal_secret))
        .route("/ui/apps/{app}/endpoints/{ep}/rotate", post(rotate_secret))
        .route("/ui/apps/{app}/endpoints/{ep}/delete", post(delete_endpoint))
        .route("/ui/apps/{app}/endpoints/{ep}/recover", post(recover))
        .route("/ui/apps/{app}/endpoints/{ep}/headers", post(save_headers))
        .route("/ui/apps/{app}/endpoints/{ep}/filter", post(save_filter))
        .route(
            "/ui/apps/{app}/endpoints/{ep}/transformation",
            post(save_transformation),
        )
        .route("/ui/apps/{app}/endpoints/{ep}/simulate", post(simulate))
        .route("/ui/apps/{app}/msg/{msg}", get(show_message))
        .route("/ui/apps/{app}/msg/{msg}/attempts", get(message_attempts))
        .route("/ui/apps/{app}/msg/{msg}/resend", post(resend))
}

#[derive(Template)]
#[template(path = "ui/apps.html")]
struct AppsPage {
    chrome: Chrome,
    apps: Vec<Application>,
    more: bool,
}

async fn list(State(state): State<Service>, s: OperatorSession) -> UiResult {
    let page = state
        .store
        .list_applications(s.org(), &newest(200), ApplicationFilter::default())
        .await?;
    Ok(render(&AppsPage {
        chrome: chrome(&s, "Applications", "apps"),
        apps: page.items,
        more: page.has_more,
    }))
}

#[derive(Debug, Deserialize)]
struct AppForm {
    name: String,
    #[serde(default)]
    uid: String,
}

async fn create(State(state): State<Service>, p: Posted<Operator, AppForm>) -> UiResult {
    let uid = match p.form.uid.trim() {
        "" => None,
        uid => Some(parse_field(uid, "uid")?),
    };
    let name = p.form.name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid(&["body", "name"], "an application needs a name").into());
    }
    let data = ApplicationData {
        uid,
        name: name.to_owned(),
        throttle_rate: None,
        metadata: Default::default(),
    };
    let (app, _) = application::create(&state, p.session.org(), data, false).await?;
    Ok(see(format!("/ui/apps/{}", app.id)))
}

#[derive(Template)]
#[template(path = "ui/app.html")]
struct AppPage {
    chrome: Chrome,
    app: Application,
    endpoints: Vec<EndpointRow>,
    messages: Vec<MessageRow>,
    more_messages: bool,
    /// When filtering by status: the matching attempts instead of messages.
    attempts: Vec<AttemptRow>,
    statuses: Vec<&'static str>,
    q: MessageQuery,
    event_types: Vec<String>,
    portal: Option<(String, String)>,
}

struct EndpointRow {
    id: String,
    url: String,
    description: String,
    disabled: bool,
    event_types: String,
}

struct MessageRow {
    id: String,
    event_type: String,
    at: String,
}

impl From<Message> for MessageRow {
    fn from(m: Message) -> Self {
        Self {
            id: m.id.to_string(),
            event_type: m.event_type.to_string(),
            at: time(m.created_at),
        }
    }
}

/// The message list's filters, as the form sends them (empty: no filter).
#[derive(Debug, Default, Deserialize)]
struct MessageQuery {
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    channel: String,
    /// `datetime-local`, UTC.
    #[serde(default)]
    after: String,
    #[serde(default)]
    before: String,
    /// An attempt status (`success`, `pending`, `fail`, `sending`): lists attempts.
    #[serde(default)]
    status: String,
}

/// The statuses the filter offers, as the attempt API names them.
const STATUSES: [(&str, hookd_store::DeliveryStatus); 3] = [
    ("success", hookd_store::DeliveryStatus::Success),
    ("pending", hookd_store::DeliveryStatus::Pending),
    ("fail", hookd_store::DeliveryStatus::Fail),
];

fn optional_time(value: &str) -> Result<Option<chrono::DateTime<Utc>>, ApiError> {
    match value.trim() {
        "" => Ok(None),
        v => parse_since(v).map(Some),
    }
}

async fn app_page(
    state: &Service,
    s: &OperatorSession,
    app_key: &str,
    q: MessageQuery,
    portal: Option<(String, String)>,
) -> UiResult {
    let app = state.store.get_application(s.org(), app_key).await?;
    let endpoints = endpoint_service::list(state, s.org(), &AppRef::Key(app.id.to_string()), &newest(250))
        .await?
        .items
        .into_iter()
        .map(|ep| EndpointRow {
            event_types: event_types_text(&ep),
            id: ep.id.to_string(),
            url: ep.data.url.to_string(),
            description: ep.data.description,
            disabled: ep.data.disabled,
        })
        .collect();
    let filter = MessageFilter {
        event_types: match q.event_type.trim() {
            "" => None,
            t => Some(vec![parse_field::<EventTypeName>(t, "event_type")?]),
        },
        channel: match q.channel.trim() {
            "" => None,
            c => Some(parse_field(c, "channel")?),
        },
        tag: None,
        after: optional_time(&q.after)?,
        before: optional_time(&q.before)?,
    };
    let status = match q.status.as_str() {
        "" => None,
        name => Some(
            STATUSES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, st)| *st)
                .ok_or_else(|| ApiError::invalid(&["query", "status"], "success, pending or fail"))?,
        ),
    };
    let attempts: Vec<AttemptRow> = match status {
        Some(status) => {
            let attempt_filter = hookd_store::AttemptFilter {
                status: Some(status),
                event_types: filter.event_types.clone(),
                channel: filter.channel.clone(),
                before: filter.before,
                after: filter.after,
                ..Default::default()
            };
            state
                .store
                .list_attempts(s.org(), &app.id, &newest(50), &attempt_filter)
                .await?
                .items
                .into_iter()
                .map(AttemptRow::from)
                .collect()
        }
        None => Vec::new(),
    };
    let messages = match status {
        Some(_) => hookd_store::Page {
            items: Vec::new(),
            has_more: false,
        },
        None => {
            state
                .store
                .list_messages(s.org(), &app.id, &newest(50), &filter)
                .await?
        }
    };
    let event_types = state
        .store
        .list_event_types(s.org(), &hookd_store::ListQuery::default(), false)
        .await?
        .items
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    Ok(render(&AppPage {
        chrome: chrome(s, app.data.name.clone(), "apps"),
        endpoints,
        more_messages: messages.has_more,
        messages: messages.items.into_iter().map(MessageRow::from).collect(),
        app,
        attempts,
        statuses: STATUSES.iter().map(|(n, _)| *n).collect(),
        q,
        event_types,
        portal,
    }))
}

async fn show(
    State(state): State<Service>,
    s: OperatorSession,
    Path(app): Path<String>,
    Query(q): Query<MessageQuery>,
) -> UiResult {
    app_page(&state, &s, &app, q, None).await
}

async fn create_endpoint(
    State(state): State<Service>,
    Path(app): Path<String>,
    p: Posted<Operator, EndpointForm>,
) -> UiResult {
    let app = state.store.get_application(p.session.org(), &app).await?;
    let ep = endpoint_service::create(
        &state,
        p.session.org(),
        &AppRef::Key(app.id.to_string()),
        p.form.into_new(),
    )
    .await?;
    Ok(see(format!("/ui/apps/{}/endpoints/{}", app.id, ep.id)))
}

#[derive(Debug, Deserialize)]
struct MessageForm {
    event_type: String,
    payload: String,
}

async fn send_message(
    State(state): State<Service>,
    Path(app): Path<String>,
    p: Posted<Operator, MessageForm>,
) -> UiResult {
    let org = p.session.org();
    let app = state.store.get_application(org, &app).await?.id;
    let event_type: EventTypeName = parse_field(p.form.event_type.trim(), "eventType")?;
    let payload = p.form.payload.trim();
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(_)) => {}
        _ => {
            return Err(ApiError::invalid(&["body", "payload"], "the payload must be a JSON object").into());
        }
    }
    let (msg, _) = message::accept(
        &state,
        org,
        &app,
        message::new_message(event_type, payload.to_owned()),
    )
    .await?;
    Ok(see(format!("/ui/apps/{app}/msg/{}", msg.id)))
}

#[derive(Debug, Deserialize)]
struct PortalForm {
    /// A checkbox: present when ticked.
    read_only: Option<String>,
}

/// Shows a new consumer portal link for the application on its page.
async fn portal_access(
    State(state): State<Service>,
    Path(app_key): Path<String>,
    p: Posted<Operator, PortalForm>,
) -> UiResult {
    let app = state.store.get_application(p.session.org(), &app_key).await?;
    let (url, _) = ui_session::portal_access(
        &state,
        p.session.org(),
        &app.id,
        PortalGrant {
            read_only: p.form.read_only.is_some(),
            expiry: Some(3_600),
            ..PortalGrant::default()
        },
    )
    .await?;
    let access = if p.form.read_only.is_some() {
        "read-only"
    } else {
        "full"
    };
    app_page(
        &state,
        &p.session,
        &app_key,
        MessageQuery::default(),
        Some((url, access.to_owned())),
    )
    .await
}

#[derive(Template)]
#[template(path = "ui/endpoint.html")]
struct EndpointPage {
    chrome: Chrome,
    app: Application,
    ep: hookd_store::Endpoint,
    event_types: String,
    stats: EndpointStats,
    attempts: Vec<AttemptRow>,
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
    /// Code simulated and its answer.
    simulated: Option<(String, Simulated)>,
}

async fn endpoint_page(
    state: &Service,
    s: &OperatorSession,
    app_key: &str,
    ep_key: &str,
    extra: Extra,
) -> UiResult {
    let app = state.store.get_application(s.org(), app_key).await?;
    let ep = state.store.get_endpoint(s.org(), &app.id, ep_key).await?;
    let stats = state
        .store
        .endpoint_stats(s.org(), &app.id, &ep.id, None, None)
        .await?;
    let filter = hookd_store::AttemptFilter {
        endpoint: Some(ep.id.clone()),
        ..Default::default()
    };
    let attempts = state
        .store
        .list_attempts(s.org(), &app.id, &newest(50), &filter)
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
        chrome: chrome(s, ep.data.url.to_string(), "apps"),
        event_types: event_types_text(&ep),
        base: format!("/ui/apps/{}/endpoints/{}", app.id, ep.id),
        csrf: s.csrf_token().to_owned(),
        can_manage: true,
        can_transform: true,
        settings,
        app,
        ep,
        stats,
        attempts,
        secret: extra.secret,
        notice: extra.notice,
    }))
}

async fn endpoint(
    State(state): State<Service>,
    s: OperatorSession,
    Path((app, ep)): Path<(String, String)>,
) -> UiResult {
    endpoint_page(&state, &s, &app, &ep, Extra::default()).await
}

async fn update_endpoint(
    State(state): State<Service>,
    Path((app, ep)): Path<(String, String)>,
    p: Posted<Operator, EndpointForm>,
) -> UiResult {
    let app = state.store.get_application(p.session.org(), &app).await?.id;
    endpoint_service::change(
        &state,
        p.session.org(),
        &AppRef::Key(app.to_string()),
        &ep,
        p.form.into_patch(),
    )
    .await?;
    Ok(see(format!("/ui/apps/{app}/endpoints/{ep}")))
}

#[derive(Debug, Deserialize)]
struct StateForm {
    disabled: bool,
}

async fn endpoint_state(
    State(state): State<Service>,
    Path((app, ep)): Path<(String, String)>,
    p: Posted<Operator, StateForm>,
) -> UiResult {
    let app = state.store.get_application(p.session.org(), &app).await?.id;
    let patch = crate::service::endpoint::EndpointPatch {
        disabled: Some(p.form.disabled),
        ..Default::default()
    };
    endpoint_service::change(&state, p.session.org(), &AppRef::Key(app.to_string()), &ep, patch).await?;
    Ok(see(format!("/ui/apps/{app}/endpoints/{ep}")))
}

#[derive(Debug, Deserialize)]
struct Empty {}

/// The secret is shown on a POST's answer only, so it is never in a URL or history.
async fn reveal_secret(
    State(state): State<Service>,
    Path((app, ep)): Path<(String, String)>,
    p: Posted<Operator, Empty>,
) -> UiResult {
    let app_id = state.store.get_application(p.session.org(), &app).await?.id;
    let secret =
        endpoint_service::secret(&state, p.session.org(), &AppRef::Key(app_id.to_string()), &ep).await?;
    let extra = Extra {
        secret: Some(secret.key),
        ..Extra::default()
    };
    endpoint_page(&state, &p.session, &app, &ep, extra).await
}

async fn rotate_secret(
    State(state): State<Service>,
    Path((app, ep)): Path<(String, String)>,
    p: Posted<Operator, Empty>,
) -> UiResult {
    let app_id = state.store.get_application(p.session.org(), &app).await?.id;
    let secret = endpoint_service::rotate_secret(
        &state,
        p.session.org(),
        &AppRef::Key(app_id.to_string()),
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
    endpoint_page(&state, &p.session, &app, &ep, extra).await
}

async fn delete_endpoint(
    State(state): State<Service>,
    Path((app, ep)): Path<(String, String)>,
    p: Posted<Operator, Empty>,
) -> UiResult {
    let app = state.store.get_application(p.session.org(), &app).await?.id;
    endpoint_service::delete(&state, p.session.org(), &AppRef::Key(app.to_string()), &ep).await?;
    Ok(see(format!("/ui/apps/{app}")))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RecoverForm {
    /// `datetime-local` (UTC).
    pub since: String,
}

/// A `datetime-local` value (taken as UTC).
pub(crate) fn parse_since(since: &str) -> Result<chrono::DateTime<Utc>, ApiError> {
    NaiveDateTime::parse_from_str(since.trim(), "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(since.trim(), "%Y-%m-%dT%H:%M:%S"))
        .map(|t| t.and_utc())
        .map_err(|_| ApiError::invalid(&["body", "since"], "a date and time, e.g. 2026-12-06T09:30"))
}

async fn recover(
    State(state): State<Service>,
    Path((app, ep)): Path<(String, String)>,
    p: Posted<Operator, RecoverForm>,
) -> UiResult {
    let since = parse_since(&p.form.since)?;
    let app_id = state.store.get_application(p.session.org(), &app).await?.id;
    let ep_id = state.store.get_endpoint(p.session.org(), &app_id, &ep).await?.id;
    let task = jobs::recover(&state, p.session.org(), &app_id, &ep_id, since, None).await?;
    let notice = format!(
        "Recovering failed deliveries since {} (task {task}).",
        time(since)
    );
    let extra = Extra {
        notice: Some(notice),
        ..Extra::default()
    };
    endpoint_page(&state, &p.session, &app, &ep, extra).await
}

#[derive(Template)]
#[template(path = "ui/message.html")]
struct MessagePage {
    chrome: Chrome,
    app: Application,
    msg: Message,
    payload: String,
    at: String,
    delivery: Delivery,
}

async fn show_message(
    State(state): State<Service>,
    s: OperatorSession,
    Path((app, msg)): Path<(String, String)>,
) -> UiResult {
    let app = state.store.get_application(s.org(), &app).await?;
    let msg = state.store.get_message(s.org(), &app.id, &msg).await?;
    let base = format!("/ui/apps/{}/msg/{}", app.id, msg.id);
    let delivery = views::delivery(&state, s.org(), &app.id, &msg.id, base, true, s.csrf_token()).await?;
    Ok(render(&MessagePage {
        chrome: chrome(&s, format!("{} {}", msg.event_type, msg.id), "apps"),
        payload: msg.payload.as_deref().map(pretty_json).unwrap_or_default(),
        at: time(msg.created_at),
        app,
        msg,
        delivery,
    }))
}

/// The delivery table alone, which the message page reloads every few seconds.
async fn message_attempts(
    State(state): State<Service>,
    s: OperatorSession,
    Path((app, msg)): Path<(String, String)>,
) -> UiResult {
    let app = state.store.get_application(s.org(), &app).await?.id;
    let msg = state.store.get_message(s.org(), &app, &msg).await?.id;
    let base = format!("/ui/apps/{app}/msg/{msg}");
    let delivery = views::delivery(&state, s.org(), &app, &msg, base, true, s.csrf_token()).await?;
    Ok(render(&DeliveryFragment { delivery }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResendForm {
    pub endpoint: String,
}

async fn resend(
    State(state): State<Service>,
    Path((app, msg)): Path<(String, String)>,
    p: Posted<Operator, ResendForm>,
) -> UiResult {
    let org = p.session.org();
    let app = state.store.get_application(org, &app).await?.id;
    let msg = state.store.get_message(org, &app, &msg).await?.id;
    let ep = state.store.get_endpoint(org, &app, &p.form.endpoint).await?.id;
    message::resend(&state, org, &app, &msg, &ep).await?;
    Ok(see(format!("/ui/apps/{app}/msg/{msg}")))
}

/// The application and endpoint of a settings form, and the `AppRef` to change it by.
async fn endpoint_of(
    state: &Service,
    s: &OperatorSession,
    app: &str,
    ep: &str,
) -> Result<(AppRef, hookd_store::Endpoint), ApiError> {
    let app = state.store.get_application(s.org(), app).await?.id;
    let ep = state.store.get_endpoint(s.org(), &app, ep).await?;
    Ok((AppRef::Key(app.to_string()), ep))
}

async fn save_headers(
    State(state): State<Service>,
    Path((app, ep)): Path<(String, String)>,
    p: Posted<Operator, HeadersForm>,
) -> UiResult {
    let (app_ref, endpoint) = endpoint_of(&state, &p.session, &app, &ep).await?;
    endpoint_settings::save_headers(&state, p.session.org(), &app_ref, &endpoint, p.form).await?;
    Ok(see(format!("/ui/apps/{app}/endpoints/{ep}")))
}

async fn save_filter(
    State(state): State<Service>,
    Path((app, ep)): Path<(String, String)>,
    p: Posted<Operator, FilterForm>,
) -> UiResult {
    let (app_ref, endpoint) = endpoint_of(&state, &p.session, &app, &ep).await?;
    endpoint_settings::save_filter(&state, p.session.org(), &app_ref, &endpoint, p.form).await?;
    Ok(see(format!("/ui/apps/{app}/endpoints/{ep}")))
}

async fn save_transformation(
    State(state): State<Service>,
    Path((app, ep)): Path<(String, String)>,
    p: Posted<Operator, TransformationForm>,
) -> UiResult {
    let (app_ref, endpoint) = endpoint_of(&state, &p.session, &app, &ep).await?;
    endpoint_settings::save_transformation(&state, p.session.org(), &app_ref, &endpoint, p.form).await?;
    Ok(see(format!("/ui/apps/{app}/endpoints/{ep}")))
}

async fn simulate(
    State(state): State<Service>,
    Path((app, ep)): Path<(String, String)>,
    p: Posted<Operator, SimulateForm>,
) -> UiResult {
    let (app_ref, endpoint) = endpoint_of(&state, &p.session, &app, &ep).await?;
    let simulated =
        endpoint_settings::simulate(&state, p.session.org(), &app_ref, &endpoint, &p.form).await?;
    let extra = Extra {
        simulated: Some((p.form.code.clone(), simulated)),
        ..Extra::default()
    };
    endpoint_page(&state, &p.session, &app, &ep, extra).await
}
