//! `hookd listen` sessions: a temporary endpoint of an application (or a source's
//! destination) whose deliveries the delivery engine hands to the session's
//! connection to this node instead of sending them (`hookd_dispatch::relay`). The
//! CLI reads them from an event stream, calls its local target, and answers; the
//! answer is the attempt. See docs/cli.md.

use std::sync::Arc;

use chrono::Utc;
use hookd_core::id::{ApplicationId, EndpointId, OrgId};
use hookd_dispatch::relay::{Answer, Connected, Relayed, Relays};
use hookd_store::Endpoint;
use tokio::sync::mpsc;

use crate::http::error::{ApiError, ApiResult};
use crate::service::Service;
use crate::service::endpoint::{self, AppRef};

/// What a session follows.
#[derive(Debug, Clone)]
pub enum Target {
    /// Every request a source accepts (a destination of the source).
    Source(String),
    /// An application's messages, optionally only some event types.
    App {
        key: String,
        event_types: Option<Vec<String>>,
    },
}

/// An opened session: its temporary endpoint and the application it is in.
#[derive(Debug)]
pub struct Opened {
    pub endpoint: Endpoint,
    /// The source's id, for a source's session.
    pub source: Option<hookd_core::id::SourceId>,
}

/// This node's sessions, or why this node cannot serve one.
fn relays(state: &Service) -> ApiResult<&Arc<Relays>> {
    state.relays().ok_or_else(|| {
        ApiError::Conflict(
            "this node does not run the delivery engine (delivery_enabled = false); point \
             `hookd listen --server` at a node that does"
                .into(),
        )
    })
}

/// Opens (or resumes) the session `session` on `target`: its temporary endpoint is
/// made when missing.
pub async fn open(state: &Service, org: &OrgId, session: &str, target: Target) -> ApiResult<Opened> {
    relays(state)?;
    let (app, event_types, source) = match target {
        Target::Source(key) => {
            let source = state.store.get_source(org, &key).await?;
            (AppRef::Source(source.id.to_string()), None, Some(source.id))
        }
        Target::App { key, event_types } => (AppRef::Key(key), event_types, None),
    };
    let endpoint = endpoint::listen_endpoint(state, org, &app, session, event_types).await?;
    Ok(Opened { endpoint, source })
}

/// The session endpoint `endpoint` of `app`, or 404 / 409 when it is not one.
async fn session_endpoint(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    endpoint: &EndpointId,
) -> ApiResult<Endpoint> {
    let ep = state.store.get_endpoint(org, app, endpoint.as_str()).await?;
    if !ep.data.url.is_listener() {
        return Err(ApiError::Conflict(format!(
            "{endpoint} is not a `hookd listen` session's endpoint"
        )));
    }
    Ok(ep)
}

/// Connects the session: requests for it are read from the receiver until the hold
/// is dropped. Its deliveries waiting for a retry are made due now (the ones that
/// failed while it was away), and the engine is woken for them. Answers how many
/// were waiting.
pub async fn connect(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    endpoint: &EndpointId,
) -> ApiResult<(Connected, mpsc::Receiver<Relayed>, usize)> {
    let relays = relays(state)?;
    session_endpoint(state, org, app, endpoint).await?;
    let (held, rx) = relays.connect(org, endpoint);
    // The other nodes' engines leave its deliveries to this node from now on (the
    // engine renews the hold while the session stays).
    if let Some(engine) = state.dispatcher() {
        engine.hold_listener(endpoint).await?;
    }
    let waiting = state
        .store
        .retry_endpoint_now(org, app, endpoint, Utc::now())
        .await?;
    state.wake_dispatcher();
    Ok((held, rx, waiting))
}

/// Takes the session's answer to one request; `false` when nothing waits for it.
pub fn answer(
    state: &Service,
    org: &OrgId,
    endpoint: &EndpointId,
    id: u64,
    answer: Answer,
) -> ApiResult<bool> {
    Ok(relays(state)?.answer(org, endpoint, id, answer))
}

/// Ends the session: its temporary endpoint is deleted (with its pending deliveries).
pub async fn close(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    endpoint: &EndpointId,
) -> ApiResult<()> {
    session_endpoint(state, org, app, endpoint).await?;
    state.store.delete_endpoint(org, app, endpoint.as_str()).await?;
    Ok(())
}
