//! Sources as a live request inspector: each source's URL, its requests appearing as
//! they arrive (Server-Sent Events), a request in full (headers, query, body pretty,
//! raw or hex, the verdict, where it was forwarded and what each destination
//! answered), copy as curl, download and replay.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use hookd_core::id::{IngestLogId, OrgId, SourceId};
use hookd_store::{IngestLogFilter, IngestRequest, Source, SourceData};
use serde::Deserialize;

use super::{OperatorSession, chrome, newest};
use crate::http::error::ApiError;
use crate::service::Service;
use crate::service::endpoint::{self as endpoint_service, AppRef};
use crate::service::source::{self, ingest_url, parse_kind};
use crate::ui::curl;
use crate::ui::page::{Chrome, UiResult, render, see};
use crate::ui::session::{Operator, Posted};
use crate::ui::views::{self, Delivery, EndpointForm, pretty_json, status_class, time};

pub fn router() -> Router<Service> {
    Router::new()
        .route("/ui/sources", get(list).post(create))
        .route("/ui/sources/{src}", get(show))
        .route("/ui/sources/{src}/live", get(live))
        .route("/ui/sources/{src}/destinations", post(add_destination))
        .route("/ui/sources/{src}/replay", post(replay_range))
        .route("/ui/sources/{src}/log/{id}", get(request))
        .route("/ui/sources/{src}/log/{id}/raw", get(raw))
        .route("/ui/sources/{src}/log/{id}/replay", post(replay_one))
}

/// The preset types the create form offers (any type can be set through the API).
const TYPES: &[&str] = &[
    "generic-webhook",
    "github",
    "stripe",
    "shopify",
    "slack",
    "svix",
    "standard-webhooks",
    "twilio",
    "zoom",
    "paddle",
    "linear",
];

#[derive(Template)]
#[template(path = "ui/sources.html")]
struct SourcesPage {
    chrome: Chrome,
    sources: Vec<SourceRow>,
    types: &'static [&'static str],
}

struct SourceRow {
    id: String,
    name: String,
    kind: String,
    url: String,
}

fn source_row(state: &Service, s: Source) -> SourceRow {
    SourceRow {
        url: ingest_url(state, &s.token),
        id: s.id.to_string(),
        kind: s.data.kind.type_name().to_owned(),
        name: s.data.name,
    }
}

async fn list(State(state): State<Service>, s: OperatorSession) -> UiResult {
    let page = state.store.list_sources(s.org(), &newest(250)).await?;
    Ok(render(&SourcesPage {
        chrome: chrome(&s, "Sources", "sources"),
        sources: page
            .items
            .into_iter()
            .map(|src| source_row(&state, src))
            .collect(),
        types: TYPES,
    }))
}

#[derive(Debug, Deserialize)]
struct SourceForm {
    name: String,
    kind: String,
    #[serde(default)]
    secret: String,
}

async fn create(State(state): State<Service>, p: Posted<Operator, SourceForm>) -> UiResult {
    let name = p.form.name.trim();
    if name.is_empty() || name.len() > 256 {
        return Err(ApiError::invalid(
            &["body", "name"],
            "a source needs a name (at most 256 characters)",
        )
        .into());
    }
    let secret = p.form.secret.trim();
    let config = (!secret.is_empty()).then(|| serde_json::json!({ "secret": secret }));
    let kind = parse_kind(&p.form.kind, config.as_ref())?;
    let data = SourceData {
        uid: None,
        name: name.to_owned(),
        kind,
        options: Default::default(),
        metadata: Default::default(),
    };
    let src = source::create(&state, p.session.org(), data).await?;
    Ok(see(format!("/ui/sources/{}", src.id)))
}

/// One received request as an inspector row.
pub struct RequestRow {
    id: String,
    source: String,
    method: String,
    path: String,
    status: &'static str,
    status_class: &'static str,
    reason: String,
    size: usize,
    at: String,
}

impl RequestRow {
    fn new(source: &SourceId, r: &IngestRequest) -> Self {
        let status = r.status.text();
        Self {
            id: r.id.to_string(),
            source: source.to_string(),
            method: r.method.clone(),
            path: if r.query.is_empty() {
                r.path.clone()
            } else {
                format!("{}?{}", r.path, r.query)
            },
            status,
            status_class: status_class(status),
            reason: r.reason.clone().unwrap_or_default(),
            size: r.body.len(),
            at: time(r.received_at),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/request_row.html")]
struct RequestRowFragment<'a> {
    r: &'a RequestRow,
}

#[derive(Template)]
#[template(path = "ui/source.html")]
struct SourcePage {
    chrome: Chrome,
    source: Source,
    kind: String,
    url: String,
    requests: Vec<RequestRow>,
    newest: String,
    destinations: Vec<(String, String, bool)>,
}

async fn show(State(state): State<Service>, s: OperatorSession, Path(src): Path<String>) -> UiResult {
    let source = state.store.get_source(s.org(), &src).await?;
    let log = state
        .store
        .list_ingest_log(s.org(), &source.id, &newest(50), &IngestLogFilter::default())
        .await?;
    let destinations = endpoint_service::list(
        &state,
        s.org(),
        &AppRef::Source(source.id.to_string()),
        &newest(250),
    )
    .await?
    .items
    .into_iter()
    .map(|ep| (ep.id.to_string(), ep.data.url.to_string(), ep.data.disabled))
    .collect();
    Ok(render(&SourcePage {
        chrome: chrome(&s, source.data.name.clone(), "sources"),
        kind: source.data.kind.type_name().to_owned(),
        url: ingest_url(&state, &source.token),
        newest: log.items.first().map(|r| r.id.to_string()).unwrap_or_default(),
        requests: log.items.iter().map(|r| RequestRow::new(&source.id, r)).collect(),
        destinations,
        source,
    }))
}

#[derive(Debug, Deserialize)]
struct LiveQuery {
    /// The newest request the page already shows.
    #[serde(default)]
    after: String,
}

/// How often the live view looks for requests other nodes recorded.
const LIVE_POLL: Duration = Duration::from_secs(2);

/// The source's new requests as they arrive: one `request` event per request, its
/// data the row the page prepends. Woken at once by this node's requests, and every
/// [`LIVE_POLL`] to see other nodes'.
async fn live(
    State(state): State<Service>,
    s: OperatorSession,
    Path(src): Path<String>,
    Query(q): Query<LiveQuery>,
) -> UiResult {
    let source = state.store.get_source(s.org(), &src).await?.id;
    let after: Option<IngestLogId> = q.after.parse().ok();
    let received = state.subscribe_received();
    let org = s.org().clone();
    struct Watch {
        state: Service,
        org: OrgId,
        source: SourceId,
        after: Option<IngestLogId>,
        received: tokio::sync::broadcast::Receiver<SourceId>,
        queued: std::collections::VecDeque<String>,
        first: bool,
    }
    let watch = Watch {
        state,
        org,
        source,
        after,
        received,
        queued: Default::default(),
        first: true,
    };
    let stream = futures_util::stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(row) = w.queued.pop_front() {
                return Some((
                    Ok::<_, Infallible>(Event::default().event("request").data(row)),
                    w,
                ));
            }
            if !w.first {
                let wait = async {
                    loop {
                        match w.received.recv().await {
                            Ok(id) if id == w.source => return,
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                std::future::pending::<()>().await
                            }
                        }
                    }
                };
                let _ = tokio::time::timeout(LIVE_POLL, wait).await;
            }
            w.first = false;
            let page = match w
                .state
                .store
                .list_ingest_log(&w.org, &w.source, &newest(50), &IngestLogFilter::default())
                .await
            {
                Ok(page) => page,
                // The database is briefly away: try again at the next tick.
                Err(_) => continue,
            };
            let fresh: Vec<&IngestRequest> = page
                .items
                .iter()
                .take_while(|r| w.after.as_ref().is_none_or(|after| r.id > *after))
                .collect();
            if let Some(newest) = fresh.first() {
                w.after = Some(newest.id.clone());
            }
            // Oldest first, so prepending each leaves the newest on top.
            for r in fresh.iter().rev() {
                let row = RequestRow::new(&w.source, r);
                if let Ok(html) = (RequestRowFragment { r: &row }).render() {
                    w.queued.push_back(html);
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

async fn add_destination(
    State(state): State<Service>,
    Path(src): Path<String>,
    p: Posted<Operator, EndpointForm>,
) -> UiResult {
    let source = state.store.get_source(p.session.org(), &src).await?;
    endpoint_service::create(
        &state,
        p.session.org(),
        &AppRef::Source(source.id.to_string()),
        p.form.into_new(),
    )
    .await?;
    Ok(see(format!("/ui/sources/{}", source.id)))
}

#[derive(Template)]
#[template(path = "ui/request.html")]
struct RequestPage {
    chrome: Chrome,
    source: Source,
    r: RequestRow,
    entry: IngestRequest,
    body_text: Option<String>,
    body_pretty: Option<String>,
    body_hex: Option<String>,
    /// Only the start of the body is shown.
    body_cut: bool,
    curl: String,
    /// The message that forwarded it, and what became of it.
    delivery: Option<Delivery>,
    endpoints: Vec<(String, String)>,
    replayed: Option<String>,
    csrf: String,
}

#[derive(Debug, Deserialize)]
struct RequestQuery {
    replayed: Option<String>,
}

/// At most this much of a binary body is shown as hex (the download has it all).
const HEX_SHOWN: usize = 16 * 1024;
/// At most this much of a text body is shown (the download and curl have it all).
const TEXT_SHOWN: usize = 256 * 1024;

/// The start of `text` the page shows: [`TEXT_SHOWN`] bytes at most, cut at a
/// character's boundary.
fn shown(text: &str) -> &str {
    if text.len() <= TEXT_SHOWN {
        return text;
    }
    let mut end = TEXT_SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn hex_dump(body: &[u8]) -> String {
    body[..body.len().min(HEX_SHOWN)]
        .chunks(16)
        .enumerate()
        .map(|(i, line)| {
            let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = line
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}  {:<48}  {text}", i * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn log_entry(
    state: &Service,
    org: &OrgId,
    src: &str,
    id: &str,
) -> Result<(Source, IngestRequest), ApiError> {
    let source = state.store.get_source(org, src).await?;
    let id: IngestLogId = id.parse().map_err(|_| ApiError::not_found("request"))?;
    let entry = state.store.get_ingest_request(org, &source.id, &id).await?;
    Ok((source, entry))
}

async fn request(
    State(state): State<Service>,
    s: OperatorSession,
    Path((src, id)): Path<(String, String)>,
    Query(q): Query<RequestQuery>,
) -> UiResult {
    let (source, entry) = log_entry(&state, s.org(), &src, &id).await?;
    let text = std::str::from_utf8(&entry.body).ok().map(|t| shown(t).to_owned());
    let body_pretty = text
        .as_deref()
        .filter(|t| t.len() == entry.body.len() && serde_json::from_str::<serde_json::Value>(t).is_ok())
        .map(pretty_json);
    let body_cut = text.as_ref().is_some_and(|t| t.len() < entry.body.len());
    let body_hex = text.is_none().then(|| hex_dump(&entry.body));
    let mut url = ingest_url(&state, &source.token);
    if entry.path != "/" {
        url.push_str(&entry.path);
    }
    if !entry.query.is_empty() {
        url.push('?');
        url.push_str(&entry.query);
    }
    let curl = curl::command(&url, &entry.method, &entry.headers, &entry.body);
    let base = format!("/ui/sources/{}/log/{}", source.id, entry.id);
    let delivery = match &entry.msg_id {
        Some(msg) => {
            Some(views::delivery(&state, s.org(), &source.app_id, msg, base, false, s.csrf_token()).await?)
        }
        None => None,
    };
    let endpoints = endpoint_service::list(
        &state,
        s.org(),
        &AppRef::Source(source.id.to_string()),
        &newest(250),
    )
    .await?
    .items
    .into_iter()
    .map(|ep| (ep.id.to_string(), ep.data.url.to_string()))
    .collect();
    Ok(render(&RequestPage {
        chrome: chrome(&s, format!("{} {}", entry.method, entry.id), "sources"),
        r: RequestRow::new(&source.id, &entry),
        source,
        body_text: text,
        body_pretty,
        body_hex,
        body_cut,
        curl,
        delivery,
        endpoints,
        replayed: q.replayed.filter(|m| hookd_core::id::MessageId::is_valid(m)),
        csrf: s.csrf_token().to_owned(),
        entry,
    }))
}

/// The body exactly as received, as a download: never rendered by the browser
/// (a received body is the sender's, and could be HTML).
async fn raw(
    State(state): State<Service>,
    s: OperatorSession,
    Path((src, id)): Path<(String, String)>,
) -> UiResult {
    let (_, entry) = log_entry(&state, s.org(), &src, &id).await?;
    let disposition = format!("attachment; filename=\"{}.bin\"", entry.id);
    let mut r = entry.body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

#[derive(Debug, Deserialize)]
struct ReplayForm {
    /// A destination's id; empty: every one.
    #[serde(default)]
    endpoint: String,
}

async fn replay_one(
    State(state): State<Service>,
    Path((src, id)): Path<(String, String)>,
    p: Posted<Operator, ReplayForm>,
) -> UiResult {
    let (source, entry) = log_entry(&state, p.session.org(), &src, &id).await?;
    let only = Some(p.form.endpoint.trim()).filter(|e| !e.is_empty());
    let replayed = source::replay_one(&state, p.session.org(), &source, &entry, only).await?;
    let msg = replayed
        .msg_ids
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    Ok(see(format!(
        "/ui/sources/{}/log/{}?replayed={msg}",
        source.id, entry.id
    )))
}

async fn replay_range(
    State(state): State<Service>,
    Path(src): Path<String>,
    p: Posted<Operator, super::apps::RecoverForm>,
) -> UiResult {
    let since = super::apps::parse_since(&p.form.since)?;
    let source = state.store.get_source(p.session.org(), &src).await?;
    source::replay_range(&state, p.session.org(), source.id.as_str(), since, None, None).await?;
    Ok(see(format!("/ui/sources/{}", source.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_bodies_are_cut_at_a_character() {
        let text = "é".repeat(TEXT_SHOWN);
        let cut = shown(&text);
        assert!(cut.len() <= TEXT_SHOWN && cut.len() >= TEXT_SHOWN - 1);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(shown("short"), "short");
        assert_eq!(hex_dump(b"ab\x00"), format!("00000000  {:<48}  ab.", "61 62 00"));
    }
}
