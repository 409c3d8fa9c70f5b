//! The data API of an application: its collections (browse, view a document), its
//! leaderboards (the top of the current period), its modes with their URLs, its API
//! keys (create — the key is shown once — and revoke), and the organisation's usage
//! per day as a chart.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use chrono::{Duration, Utc};
use hookd_core::id::ApiKeyId;
use hookd_core::name::{DataName, ItemKey};
use hookd_store::{
    ApiKeyRecord, Application, Definition, DefinitionKind, DefinitionSpec, Document, DocumentFilter,
    ListQuery, Order, Period, ScoreEntry,
};
use serde::Deserialize;

use super::{OperatorSession, chrome};
use crate::http::error::ApiError;
use crate::http::parse_field;
use crate::service::{Service, auth};
use crate::ui::page::{Chrome, UiResult, render, see};
use crate::ui::session::{Operator, Posted};
use crate::ui::views::{pretty_json, time};

pub fn router() -> Router<Service> {
    Router::new()
        .route("/ui/apps/{app}/data", get(overview))
        .route("/ui/apps/{app}/data/keys", post(create_key))
        .route("/ui/apps/{app}/data/keys/{key}/revoke", post(revoke_key))
        .route("/ui/apps/{app}/data/collections/{name}", get(collection))
        .route("/ui/apps/{app}/data/collections/{name}/{key}", get(document))
        .route("/ui/apps/{app}/data/leaderboards/{name}", get(leaderboard))
}

struct DefinitionRow {
    name: String,
    description: String,
    detail: String,
}

fn definition_row(d: Definition) -> DefinitionRow {
    let (description, detail) = match d.spec {
        DefinitionSpec::Collection(c) => (
            c.description,
            if c.publish_events {
                "publishes change events".to_owned()
            } else {
                String::new()
            },
        ),
        DefinitionSpec::Leaderboard(l) => (
            l.description,
            format!("{:?}, {:?}, reset {:?}", l.policy, l.order, l.reset).to_lowercase(),
        ),
        DefinitionSpec::Mode(m) => (
            m.description,
            match m.target {
                Some(t) => format!("{} → {t}", m.operation),
                None => m.operation.to_string(),
            },
        ),
    };
    DefinitionRow {
        name: d.name,
        description,
        detail,
    }
}

struct KeyRow {
    id: String,
    name: String,
    scopes: String,
    created: String,
    revoked: bool,
}

fn key_row(k: ApiKeyRecord) -> KeyRow {
    let scopes = [(k.data.read, "read"), (k.data.write, "write")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, s)| *s)
        .collect::<Vec<_>>()
        .join(", ");
    KeyRow {
        id: k.id.to_string(),
        name: k.data.name,
        scopes,
        created: time(k.created_at),
        revoked: k.revoked_at.is_some(),
    }
}

/// One day's bar of the usage chart.
struct UsageBar {
    day: String,
    credits: u64,
    x: usize,
    y: u64,
    height: u64,
}

#[derive(Template)]
#[template(path = "ui/data.html")]
struct DataPage {
    chrome: Chrome,
    app: Application,
    collections: Vec<DefinitionRow>,
    leaderboards: Vec<DefinitionRow>,
    modes: Vec<DefinitionRow>,
    mode_base: String,
    keys: Vec<KeyRow>,
    new_key: Option<String>,
    usage: Vec<UsageBar>,
    usage_total: u64,
}

async fn definitions(
    state: &Service,
    s: &OperatorSession,
    app: &Application,
    kind: DefinitionKind,
) -> Result<Vec<DefinitionRow>, ApiError> {
    let query = ListQuery {
        limit: 250,
        cursor: None,
        order: Order::Ascending,
    };
    Ok(state
        .store
        .list_definitions(s.org(), &app.id, kind, &query)
        .await?
        .items
        .into_iter()
        .map(definition_row)
        .collect())
}

const USAGE_DAYS: i64 = 30;

async fn data_page(state: &Service, s: &OperatorSession, app_key: &str, new_key: Option<String>) -> UiResult {
    let app = state.store.get_application(s.org(), app_key).await?;
    let keys = state
        .store
        .list_api_keys(
            s.org(),
            &app.id,
            &ListQuery {
                limit: 250,
                cursor: None,
                order: Order::Ascending,
            },
        )
        .await?
        .items
        .into_iter()
        .map(key_row)
        .collect();
    let today = Utc::now().date_naive();
    let since = today - Duration::days(USAGE_DAYS - 1);
    let days = state.store.list_usage(s.org(), since, today).await?;
    let top = days.iter().map(|d| d.count.credits).max().unwrap_or(0).max(1);
    let usage = days
        .iter()
        .map(|d| {
            let height = d.count.credits * 58 / top;
            UsageBar {
                day: d.day.to_string(),
                credits: d.count.credits,
                x: usize::try_from((d.day - since).num_days()).unwrap_or(0) * 10,
                y: 60 - height,
                height,
            }
        })
        .collect();
    Ok(render(&DataPage {
        chrome: chrome(s, format!("{} · data", app.data.name), "apps"),
        collections: definitions(state, s, &app, DefinitionKind::Collection).await?,
        leaderboards: definitions(state, s, &app, DefinitionKind::Leaderboard).await?,
        modes: definitions(state, s, &app, DefinitionKind::Mode).await?,
        mode_base: format!(
            "{}/h/{}/{}",
            state.config.public_url().trim_end_matches('/'),
            s.org(),
            app.id
        ),
        keys,
        new_key,
        usage_total: days.iter().map(|d| d.count.credits).sum(),
        usage,
        app,
    }))
}

async fn overview(State(state): State<Service>, s: OperatorSession, Path(app): Path<String>) -> UiResult {
    data_page(&state, &s, &app, None).await
}

#[derive(Debug, Deserialize)]
struct KeyForm {
    name: String,
    read: Option<String>,
    write: Option<String>,
}

/// Makes a key and shows it on the answer to this POST only.
async fn create_key(
    State(state): State<Service>,
    Path(app_key): Path<String>,
    p: Posted<Operator, KeyForm>,
) -> UiResult {
    let mut scopes = Vec::new();
    if p.form.read.is_some() {
        scopes.push("read".to_owned());
    }
    if p.form.write.is_some() {
        scopes.push("write".to_owned());
    }
    let data = auth::api_key_data(p.form.name.trim().to_owned(), &scopes, None, None)?;
    let app = state.store.get_application(p.session.org(), &app_key).await?;
    let (_, key) = auth::issue_api_key(state.store.as_ref(), p.session.org(), &app.id, data).await?;
    data_page(&state, &p.session, &app_key, Some(key.reveal())).await
}

#[derive(Debug, Deserialize)]
struct Empty {}

async fn revoke_key(
    State(state): State<Service>,
    Path((app_key, key)): Path<(String, String)>,
    p: Posted<Operator, Empty>,
) -> UiResult {
    let app = state.store.get_application(p.session.org(), &app_key).await?;
    let id: ApiKeyId = key.parse().map_err(|_| ApiError::not_found("API key"))?;
    crate::service::data::revoke_api_key(&state, p.session.org(), &app.id, &id).await?;
    Ok(see(format!("/ui/apps/{}/data", app.id)))
}

#[derive(Template)]
#[template(path = "ui/collection.html")]
struct CollectionPage {
    chrome: Chrome,
    app: Application,
    name: String,
    documents: Vec<(String, i64, String, String)>,
    more: bool,
    prefix: String,
}

#[derive(Debug, Default, Deserialize)]
struct CollectionQuery {
    #[serde(default)]
    prefix: String,
}

/// A short one-line view of a document's body.
fn excerpt(body: &serde_json::Value) -> String {
    let text = body.to_string();
    match text.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

async fn collection(
    State(state): State<Service>,
    s: OperatorSession,
    Path((app, name)): Path<(String, String)>,
    Query(q): Query<CollectionQuery>,
) -> UiResult {
    let app = state.store.get_application(s.org(), &app).await?;
    let collection: DataName = parse_field(&name, "collection")?;
    let filter = DocumentFilter {
        prefix: Some(q.prefix.trim().to_owned()).filter(|p| !p.is_empty()),
        equals: Vec::new(),
    };
    let query = ListQuery {
        limit: 100,
        cursor: None,
        order: Order::Ascending,
    };
    let page = state
        .store
        .list_documents(s.org(), &app.id, &collection, &query, &filter)
        .await?;
    Ok(render(&CollectionPage {
        chrome: chrome(&s, format!("{name} · {}", app.data.name), "apps"),
        documents: page
            .items
            .iter()
            .map(|d: &Document| (d.key.to_string(), d.version, time(d.updated_at), excerpt(&d.body)))
            .collect(),
        more: page.has_more,
        app,
        name,
        prefix: q.prefix,
    }))
}

#[derive(Template)]
#[template(path = "ui/document.html")]
struct DocumentPage {
    chrome: Chrome,
    app: Application,
    collection: String,
    doc: Document,
    body: String,
    created: String,
    updated: String,
}

async fn document(
    State(state): State<Service>,
    s: OperatorSession,
    Path((app, name, key)): Path<(String, String, String)>,
) -> UiResult {
    let app = state.store.get_application(s.org(), &app).await?;
    let collection: DataName = parse_field(&name, "collection")?;
    let key: ItemKey = parse_field(&key, "key")?;
    let doc = state
        .store
        .get_document(s.org(), &app.id, &collection, &key)
        .await?;
    Ok(render(&DocumentPage {
        chrome: chrome(&s, format!("{key} · {name}"), "apps"),
        body: pretty_json(&doc.body.to_string()),
        created: time(doc.created_at),
        updated: time(doc.updated_at),
        app,
        collection: name,
        doc,
    }))
}

#[derive(Template)]
#[template(path = "ui/leaderboard.html")]
struct LeaderboardPage {
    chrome: Chrome,
    app: Application,
    name: String,
    period: String,
    entries: Vec<(u64, String, i64, String)>,
}

/// Entries shown of a leaderboard.
const TOP: usize = 50;

async fn leaderboard(
    State(state): State<Service>,
    s: OperatorSession,
    Path((app, name)): Path<(String, String)>,
) -> UiResult {
    let app = state.store.get_application(s.org(), &app).await?;
    let board: DataName = parse_field(&name, "leaderboard")?;
    let (period, entries) = state
        .store
        .top_scores(s.org(), &app.id, &board, &Period::At(Utc::now()), TOP)
        .await?;
    Ok(render(&LeaderboardPage {
        chrome: chrome(&s, format!("{name} · {}", app.data.name), "apps"),
        entries: entries
            .into_iter()
            .map(|e: ScoreEntry| (e.rank, e.player.to_string(), e.score, time(e.achieved_at)))
            .collect(),
        app,
        name,
        period,
    }))
}
