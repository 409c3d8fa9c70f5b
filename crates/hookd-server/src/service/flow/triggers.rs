//! What starts a flow's runs: each trigger's key (how `FlowStore::flows_for_trigger`
//! finds the flows listening to an event in one indexed read), the listeners of a key
//! (remembered for a second, `service::cache`), and the runs an event starts, built
//! as [`RunsFrom`] so the store inserts them **in the transaction that commits the
//! event**: a message, a document write, a score is never kept without its runs.
//!
//! | trigger | key | `trigger` in the run |
//! |---|---|---|
//! | `source.request` | `source.request:{source id}` | the request (see `runs_for_request`) |
//! | `message.created` | `message.created:{app id}` | `{app, messageId, eventType, eventId, channels, payload, timestamp}` |
//! | `document.changed` | `document.changed:{app id}/{collection}` | `{app, collection, key, event, version, document, previous}` |
//! | `leaderboard.submitted` | `leaderboard.submitted:{app id}/{board}` | `{app, leaderboard, player, score, best, rank, period, changed}` |
//! | `mode` | `mode:{app id}/{mode}` | `{app, mode, method, query, headers, body}` |
//! | `cron` | `cron` | `{scheduledAt, body}` (the flow's `payload`) |
//!
//! A run started by a flow's own step (a published message, a document or a score it
//! wrote) is one level deeper than that step's run, so flows that set each other off
//! stop at `hookd_flow::run::MAX_DEPTH` instead of running for ever.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, FlowId, OrgId};
use hookd_core::ingest::verify;
use hookd_core::name::DataName;
use hookd_flow::definition::DocumentEvent;
use hookd_flow::{Flow, RunState, Trigger};
use hookd_store::{
    DocumentWritten, Message, NewFlowRun, NewMessage, RunsFrom, ScoreSubmitted, Store, StoreResult,
};
use serde_json::{Value, json};

use crate::service::Service;

/// The trigger key of flows run only through the API.
pub const MANUAL: &str = "manual";
/// The trigger key of flows run on a cron schedule (one key for every organisation:
/// the scheduler reads them all).
pub const CRON: &str = "cron";

/// The trigger key of flows run by requests source `source` (its id) receives.
pub fn source_key(source: &hookd_core::id::SourceId) -> String {
    format!("source.request:{source}")
}

pub fn message_key(app: &ApplicationId) -> String {
    format!("message.created:{app}")
}

pub fn document_key(app: &ApplicationId, collection: &DataName) -> String {
    format!("document.changed:{app}/{collection}")
}

pub fn score_key(app: &ApplicationId, board: &DataName) -> String {
    format!("leaderboard.submitted:{app}/{board}")
}

pub fn mode_key(app: &ApplicationId, mode: &DataName) -> String {
    format!("mode:{app}/{mode}")
}

/// A flow listening to a trigger key, with its trigger as parsed.
#[derive(Debug)]
pub struct Listener {
    pub id: FlowId,
    pub trigger: Trigger,
}

/// The enabled flows of `org` listening to `key`, oldest first, remembered for a
/// second (this node's own flow changes clear the memory at once).
pub async fn listeners(state: &Service, org: &OrgId, key: String) -> StoreResult<Arc<Vec<Listener>>> {
    let cache_key = (org.clone(), key);
    if let Some(found) = state.lookups.flows.get(&cache_key) {
        return Ok(found);
    }
    let found = state.store.flows_for_trigger(org, &cache_key.1).await?;
    let listeners: Vec<Listener> = found
        .into_iter()
        .filter_map(|f| match Flow::parse(&f.data.document) {
            Ok(flow) => Some(Listener {
                id: f.id,
                trigger: flow.trigger,
            }),
            // Saved by another version of hookd: it starts nothing here.
            Err(e) => {
                tracing::warn!(flow = %f.id, error = %e, "a flow's definition no longer checks; it starts no run");
                None
            }
        })
        .collect();
    let listeners = Arc::new(listeners);
    state.lookups.flows.put(cache_key, Arc::clone(&listeners));
    Ok(listeners)
}

/// One new run of each of `flows`, `depth` calls deep, seeing `trigger`; none (with a
/// warning) past the depth limit.
pub fn new_runs(flows: &[FlowId], trigger: Value, depth: u32) -> Vec<NewFlowRun> {
    match RunState::new(trigger, depth) {
        Ok(run) => {
            let data = super::stored(&run);
            flows
                .iter()
                .map(|flow| NewFlowRun {
                    flow: flow.clone(),
                    data: data.clone(),
                })
                .collect()
        }
        Err(why) => {
            tracing::warn!(flows = ?flows, error = %why, "an event started no flow run");
            Vec::new()
        }
    }
}

/// The runs message `message` starts when it is created in `app`: flows listening to
/// the application's messages, of its event type and channels when they name some.
pub async fn message_runs(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    message: &NewMessage,
    depth: u32,
) -> StoreResult<RunsFrom<Message>> {
    let listeners = listeners(state, org, message_key(app)).await?;
    let flows: Vec<FlowId> = listeners
        .iter()
        .filter(|l| match &l.trigger {
            Trigger::MessageCreated {
                event_types,
                channels,
                ..
            } => {
                event_types
                    .as_ref()
                    .is_none_or(|t| t.contains(&message.event_type))
                    && channels.as_ref().is_none_or(|wanted| {
                        message
                            .channels
                            .as_ref()
                            .is_some_and(|has| has.iter().any(|c| wanted.contains(c)))
                    })
            }
            _ => false,
        })
        .map(|l| l.id.clone())
        .collect();
    if flows.is_empty() {
        return Ok(RunsFrom::none());
    }
    Ok(RunsFrom::new(move |msg: &Message| {
        let payload = msg
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .unwrap_or(Value::Null);
        let trigger = json!({
            "app": msg.app_id,
            "messageId": msg.id,
            "eventType": msg.event_type,
            "eventId": msg.event_id,
            "channels": msg.channels,
            "payload": payload,
            "timestamp": msg.created_at,
        });
        new_runs(&flows, trigger, depth)
    }))
}

/// What happened to a document, by its state before and after.
fn document_event(written: &DocumentWritten) -> Option<DocumentEvent> {
    match (&written.before, &written.after) {
        (None, Some(_)) => Some(DocumentEvent::Created),
        (Some(_), Some(_)) => Some(DocumentEvent::Updated),
        (Some(_), None) => Some(DocumentEvent::Deleted),
        (None, None) => None,
    }
}

/// The runs a write to `collection` of `app` starts: flows listening to the
/// collection for what the write did (created, updated, deleted).
pub async fn document_runs(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    collection: &DataName,
    depth: u32,
) -> StoreResult<RunsFrom<DocumentWritten>> {
    let listeners = listeners(state, org, document_key(app, collection)).await?;
    let wanted: Vec<(FlowId, BTreeSet<DocumentEvent>)> = listeners
        .iter()
        .filter_map(|l| match &l.trigger {
            Trigger::DocumentChanged { on, .. } => Some((l.id.clone(), on.clone())),
            _ => None,
        })
        .collect();
    if wanted.is_empty() {
        return Ok(RunsFrom::none());
    }
    let (app, collection) = (app.clone(), collection.clone());
    Ok(RunsFrom::new(move |written: &DocumentWritten| {
        let Some(event) = document_event(written) else {
            return Vec::new();
        };
        let flows: Vec<FlowId> = wanted
            .iter()
            .filter(|(_, on)| on.contains(&event))
            .map(|(id, _)| id.clone())
            .collect();
        if flows.is_empty() {
            return Vec::new();
        }
        let doc = written.after.as_ref().or(written.before.as_ref());
        let trigger = json!({
            "app": app,
            "collection": collection,
            "key": doc.map(|d| &d.key),
            "event": match event {
                DocumentEvent::Created => "created",
                DocumentEvent::Updated => "updated",
                DocumentEvent::Deleted => "deleted",
            },
            "version": written.after.as_ref().map(|d| d.version),
            "document": written.after.as_ref().map(|d| &d.body),
            "previous": written.before.as_ref().map(|d| &d.body),
        });
        new_runs(&flows, trigger, depth)
    }))
}

/// The runs a score submitted to `board` of `app` starts (every submission, also one
/// that did not change the player's score: `changed` says which).
pub async fn score_runs(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    board: &DataName,
    submitted_score: i64,
    depth: u32,
) -> StoreResult<RunsFrom<ScoreSubmitted>> {
    let listeners = listeners(state, org, score_key(app, board)).await?;
    let flows: Vec<FlowId> = listeners.iter().map(|l| l.id.clone()).collect();
    if flows.is_empty() {
        return Ok(RunsFrom::none());
    }
    let (app, board) = (app.clone(), board.clone());
    Ok(RunsFrom::new(move |s: &ScoreSubmitted| {
        let trigger = json!({
            "app": app,
            "leaderboard": board,
            "player": s.entry.player,
            "score": submitted_score,
            "best": s.entry.score,
            "rank": s.entry.rank,
            "period": s.period,
            "changed": s.changed,
        });
        new_runs(&flows, trigger, depth)
    }))
}

/// What one [`fire_cron_flows`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CronFired {
    /// Runs started by this call.
    pub started: usize,
    /// When the next firing is due.
    pub next: Option<DateTime<Utc>>,
}

/// Starts a run of every flow on a cron schedule whose firing is due at `now` (tests
/// call it with a time of their choosing). As with cron sources, counting starts at
/// the later of the last firing and the flow's last change, firings missed while no
/// node ran are not made up (only the latest is), and each firing is claimed in the
/// transaction that inserts its run, so with several nodes it runs once.
pub async fn fire_cron_flows(store: &dyn Store, now: DateTime<Utc>) -> StoreResult<CronFired> {
    let mut fired = CronFired::default();
    for (org, stored, last) in store.cron_flows().await? {
        let Ok(flow) = Flow::parse(&stored.data.document) else {
            continue;
        };
        let Trigger::Cron { schedule, payload } = &flow.trigger else {
            continue;
        };
        let from = last.map_or(stored.updated_at, |l| l.max(stored.updated_at));
        let Some(mut due) = verify::next_fire(schedule, from) else {
            continue;
        };
        if due <= now {
            while let Some(next) = verify::next_fire(schedule, due).filter(|n| *n <= now) {
                due = next;
            }
            let trigger = json!({"scheduledAt": due, "body": payload});
            if let Some(run) = new_runs(std::slice::from_ref(&stored.id), trigger, 0).pop()
                && store
                    .fire_cron_flow(&org, &stored.id, last, due, run.data)
                    .await?
            {
                fired.started += 1;
            }
            due = match verify::next_fire(schedule, due) {
                Some(d) => d,
                None => continue,
            };
        }
        fired.next = Some(fired.next.map_or(due, |n| n.min(due)));
    }
    Ok(fired)
}
