//! A run's state: where it stands and what each step did, kept as JSON and committed
//! after every step, so a run outlives a crash and resumes at the first step not
//! committed. The runner plans a step ([`crate::plan`]), carries the effect out,
//! and hands the [`Outcome`] to [`RunState::record`]; this module decides what comes
//! next. The same record is the run log's view of the run.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::definition::Flow;
use crate::template::RunData;

/// How deep `flow.call` may nest (a chain of flows starting flows).
pub const MAX_DEPTH: u32 = 8;
/// Tries of one step before the run fails (the first and its retries).
pub const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// A step is due (now, or at `wake_at`).
    Running,
    /// Waiting out a `delay` until `wake_at`.
    Waiting,
    Succeeded,
    Failed,
    /// A condition did not hold.
    Stopped,
    /// Validation failed.
    Invalid,
    Canceled,
}

impl RunStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Running | Self::Waiting)
    }

    /// The name the run log and the store use (the same as its JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
            Self::Invalid => "invalid",
            Self::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Succeeded,
    Skipped,
    /// Tried and failed; another try is scheduled.
    Retrying,
    Failed,
    /// The condition that ended the run.
    Stopped,
    Invalid,
    /// A delay being waited out.
    Waiting,
}

/// What one step did, as the run log shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub name: String,
    pub status: StepStatus,
    /// What the step acted on, rendered from its templates (see
    /// [`crate::plan::Effect::input`]); none for a step that only decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// What carrying a step out came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Its `if` did not match.
    Skipped,
    /// Done, with its output.
    Done(Value),
    /// A condition did not hold: the run ends `stopped`.
    Stopped,
    /// The run ends `invalid` with these errors.
    Invalid(Vec<String>),
    /// Failed for good (a plan error, a refusal): the run ends `failed`.
    Failed(String),
    /// Failed for now (a timeout, a 5xx, a 4xx from SMTP): try again at `at`, unless
    /// the step has had [`MAX_ATTEMPTS`].
    Retry { error: String, at: DateTime<Utc> },
    /// A delay: the next step is due at `until`.
    Wait { until: DateTime<Utc> },
}

/// A run's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    pub status: RunStatus,
    /// What started it (a request, a message, a document change, a form, an input).
    pub trigger: Value,
    /// The index of the next step to run.
    pub next: usize,
    /// Each step that ran, in order (a retried step once, with its attempts).
    pub steps: Vec<StepRecord>,
    /// When the next step is due (a retry or the end of a delay); none: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<DateTime<Utc>>,
    /// How many `flow.call`s led here (0: started by its trigger).
    pub depth: u32,
    /// How many times the run was run again ([`RunState::rerun_from`]): part of its
    /// steps' idempotency keys, so a deliberate re-run acts again where a step tried
    /// again after a crash does not.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reruns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunState {
    /// A run of a flow started by `trigger`, `depth` calls deep.
    pub fn new(trigger: Value, depth: u32) -> Result<Self, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "flow.call nested more than {MAX_DEPTH} deep (a loop of flows?)"
            ));
        }
        Ok(Self {
            status: RunStatus::Running,
            trigger,
            next: 0,
            steps: Vec::new(),
            wake_at: None,
            depth,
            reruns: 0,
            error: None,
        })
    }

    /// What the next step's templates and filters see.
    pub fn data(&self, run_id: &str, flow: &Flow) -> RunData {
        let steps: Map<String, Value> = self
            .steps
            .iter()
            .filter_map(|s| s.output.clone().map(|o| (s.name.clone(), o)))
            .collect();
        RunData {
            trigger: self.trigger.clone(),
            steps,
            run: json!({"id": run_id, "flow": flow.name.as_str(), "depth": self.depth}),
        }
    }

    /// The idempotency key of the next step's side effect (see
    /// [`crate::plan::idempotency_key`]).
    pub fn idempotency_key(&self, run_id: &str) -> String {
        crate::plan::idempotency_key(run_id, self.next, self.reruns)
    }

    /// Whether the next step is due at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        !self.status.is_final() && self.wake_at.is_none_or(|at| at <= now)
    }

    /// Records what the next step of `flow` came to, having acted on `input`,
    /// started at `started`, and moves the run on.
    pub fn record(
        &mut self,
        flow: &Flow,
        outcome: Outcome,
        input: Option<Value>,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let Some(step) = flow.steps.get(self.next) else {
            self.status = RunStatus::Succeeded;
            self.wake_at = None;
            return;
        };
        // A delay that was waited out: the run goes on.
        if self.status == RunStatus::Waiting {
            self.status = RunStatus::Running;
        }
        let name = step.name.as_str().to_owned();
        // A retried step keeps one record, with its attempts counted.
        let attempts = match self.steps.last() {
            Some(last) if last.name == name && last.status == StepStatus::Retrying => {
                let n = last.attempts + 1;
                self.steps.pop();
                n
            }
            _ => 1,
        };
        let mut record = StepRecord {
            name,
            status: StepStatus::Succeeded,
            input,
            output: None,
            error: None,
            attempts,
            started_at: started,
            finished_at: now,
        };
        self.wake_at = None;
        match outcome {
            Outcome::Skipped => record.status = StepStatus::Skipped,
            Outcome::Done(output) => record.output = Some(output),
            Outcome::Stopped => {
                record.status = StepStatus::Stopped;
                self.status = RunStatus::Stopped;
            }
            Outcome::Invalid(errors) => {
                record.status = StepStatus::Invalid;
                record.output = Some(json!({"errors": errors}));
                self.error = Some(format!("{} failed validation", record.name));
                self.status = RunStatus::Invalid;
            }
            Outcome::Failed(error) => {
                self.fail(&mut record, error);
            }
            Outcome::Retry { error, at } if attempts < MAX_ATTEMPTS => {
                record.status = StepStatus::Retrying;
                record.error = Some(error);
                self.wake_at = Some(at);
                self.steps.push(record);
                return;
            }
            Outcome::Retry { error, .. } => {
                self.fail(&mut record, format!("{error} (after {attempts} attempts)"));
            }
            Outcome::Wait { until } => {
                record.status = StepStatus::Waiting;
                record.output = Some(json!({"until": until}));
                self.wake_at = Some(until);
                self.status = RunStatus::Waiting;
            }
        }
        self.steps.push(record);
        if self.status.is_final() {
            return;
        }
        self.next += 1;
        // After the last step the run is done; after a delay that was the last step,
        // once the delay is over (the runner records again and finds no step).
        if self.next >= flow.steps.len() && self.status == RunStatus::Running {
            self.status = RunStatus::Succeeded;
        }
    }

    fn fail(&mut self, record: &mut StepRecord, error: String) {
        record.status = StepStatus::Failed;
        self.error = Some(format!("{}: {error}", record.name));
        record.error = Some(error);
        self.status = RunStatus::Failed;
    }

    /// A run re-run from step `from` (0: the start): the records from there on are
    /// dropped and the run is due now.
    pub fn rerun_from(&mut self, from: usize) {
        // One record per step that ran, in order: step i's is record i.
        self.steps.truncate(from);
        self.next = from.min(self.steps.len());
        self.reruns += 1;
        self.status = RunStatus::Running;
        self.wake_at = None;
        self.error = None;
    }

    /// Cancels a run that has not ended; `false` if it had.
    pub fn cancel(&mut self) -> bool {
        if self.status.is_final() {
            return false;
        }
        self.status = RunStatus::Canceled;
        self.wake_at = None;
        true
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
