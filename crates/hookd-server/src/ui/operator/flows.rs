//! Flows and their runs: the organisation's flows with their triggers, a flow's
//! latest runs, and a run's steps (each step's input, output and error) with
//! re-run and cancel.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use hookd_core::id::FlowRunId;
use hookd_store::{FlowRun, ListQuery, Order, StoredFlow};
use serde::Deserialize;
use serde_json::Value;

use super::{OperatorSession, chrome, newest};
use crate::http::error::ApiError;
use crate::service::Service;
use crate::service::flow::{self, RunQuery};
use crate::ui::page::{Chrome, UiResult, render, see};
use crate::ui::session::{Operator, Posted};
use crate::ui::views::{status_class, time};

pub fn router() -> Router<Service> {
    Router::new()
        .route("/ui/flows", get(list))
        .route("/ui/flows/{flow}", get(show))
        .route("/ui/flow-runs/{run}", get(run))
        .route("/ui/flow-runs/{run}/rerun", post(rerun))
        .route("/ui/flow-runs/{run}/cancel", post(cancel))
}

struct FlowRow {
    id: String,
    name: String,
    trigger: String,
    enabled: bool,
}

fn flow_row(f: StoredFlow) -> FlowRow {
    FlowRow {
        id: f.id.to_string(),
        name: f.data.name.to_string(),
        trigger: f.data.trigger,
        enabled: f.data.enabled,
    }
}

#[derive(Template)]
#[template(path = "ui/flows.html")]
struct FlowsPage {
    chrome: Chrome,
    flows: Vec<FlowRow>,
    runs: Vec<RunRow>,
}

struct RunRow {
    id: String,
    flow_id: String,
    status: String,
    status_class: &'static str,
    at: String,
    error: String,
}

/// Field by field from the stored state, so a run this version cannot read still
/// shows (as `FlowRunOut` does).
fn run_row(r: &FlowRun) -> RunRow {
    let status_class = match r.data.status.as_str() {
        "succeeded" => "ok",
        "failed" | "invalid" | "canceled" => "bad",
        _ => "warn",
    };
    RunRow {
        id: r.id.to_string(),
        flow_id: r.flow_id.to_string(),
        status: r.data.status.clone(),
        status_class,
        at: time(r.created_at),
        error: r
            .data
            .state
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

async fn list(State(state): State<Service>, s: OperatorSession) -> UiResult {
    let flows = state
        .store
        .list_flows(
            s.org(),
            &ListQuery {
                limit: 250,
                cursor: None,
                order: Order::Ascending,
            },
        )
        .await?;
    let runs = flow::list_runs(&state, s.org(), &newest(50), &RunQuery::default()).await?;
    Ok(render(&FlowsPage {
        chrome: chrome(&s, "Flows", "flows"),
        flows: flows.items.into_iter().map(flow_row).collect(),
        runs: runs.items.iter().map(run_row).collect(),
    }))
}

#[derive(Template)]
#[template(path = "ui/flow.html")]
struct FlowPage {
    chrome: Chrome,
    flow: FlowRow,
    document: String,
    runs: Vec<RunRow>,
}

async fn show(State(state): State<Service>, s: OperatorSession, Path(key): Path<String>) -> UiResult {
    let stored = state.store.get_flow(s.org(), &key).await?;
    let query = RunQuery {
        flow: Some(stored.id.to_string()),
        ..RunQuery::default()
    };
    let runs = flow::list_runs(&state, s.org(), &newest(50), &query).await?;
    Ok(render(&FlowPage {
        chrome: chrome(&s, stored.data.name.to_string(), "flows"),
        document: serde_json::to_string_pretty(&stored.data.document).unwrap_or_default(),
        runs: runs.items.iter().map(run_row).collect(),
        flow: flow_row(stored),
    }))
}

struct StepRow {
    name: String,
    status: String,
    status_class: &'static str,
    attempts: u64,
    input: Option<String>,
    output: Option<String>,
    error: Option<String>,
    finished: String,
}

fn step_row(v: &Value) -> StepRow {
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let json = |k: &str| {
        v.get(k)
            .filter(|x| !x.is_null())
            .map(|x| serde_json::to_string_pretty(x).unwrap_or_default())
    };
    let status = text("status");
    StepRow {
        name: text("name"),
        status_class: status_class(match status.as_str() {
            "succeeded" => "success",
            "failed" | "invalid" => "fail",
            _ => "",
        }),
        status,
        attempts: v.get("attempts").and_then(Value::as_u64).unwrap_or(0),
        input: json("input"),
        output: json("output"),
        error: v.get("error").and_then(Value::as_str).map(str::to_owned),
        finished: text("finishedAt"),
    }
}

#[derive(Template)]
#[template(path = "ui/flow_run.html")]
struct RunPage {
    chrome: Chrome,
    run: RunRow,
    trigger: String,
    steps: Vec<StepRow>,
    ended: bool,
}

fn run_id(id: &str) -> Result<FlowRunId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("flow run"))
}

async fn run(State(state): State<Service>, s: OperatorSession, Path(id): Path<String>) -> UiResult {
    let r = flow::get_run(&state, s.org(), &run_id(&id)?).await?;
    let steps = r
        .data
        .state
        .get("steps")
        .and_then(Value::as_array)
        .map(|steps| steps.iter().map(step_row).collect())
        .unwrap_or_default();
    let ended = matches!(
        r.data.status.as_str(),
        "succeeded" | "failed" | "stopped" | "invalid" | "canceled"
    );
    Ok(render(&RunPage {
        chrome: chrome(&s, format!("run {}", r.id), "flows"),
        trigger: r
            .data
            .state
            .get("trigger")
            .map(|t| serde_json::to_string_pretty(t).unwrap_or_default())
            .unwrap_or_default(),
        run: run_row(&r),
        steps,
        ended,
    }))
}

#[derive(Debug, Deserialize)]
struct RerunForm {
    /// A step's name; empty: from the first step.
    #[serde(default)]
    from_step: String,
}

async fn rerun(
    State(state): State<Service>,
    Path(id): Path<String>,
    p: Posted<Operator, RerunForm>,
) -> UiResult {
    let from = Some(p.form.from_step.trim().to_owned()).filter(|s| !s.is_empty());
    let r = flow::rerun(&state, p.session.org(), &run_id(&id)?, from).await?;
    Ok(see(format!("/ui/flow-runs/{}", r.id)))
}

#[derive(Debug, Deserialize)]
struct Empty {}

async fn cancel(
    State(state): State<Service>,
    Path(id): Path<String>,
    p: Posted<Operator, Empty>,
) -> UiResult {
    let r = flow::cancel(&state, p.session.org(), &run_id(&id)?).await?;
    Ok(see(format!("/ui/flow-runs/{}", r.id)))
}
