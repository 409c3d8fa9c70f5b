//! What a step does with a run's data, decided without IO: its `if` evaluated, its
//! templates rendered and every rendered value checked, so the runner that carries
//! the [`Effect`] out only performs it and records the result.
//!
//! A [`PlanError`] fails the step (the JSON pointer of the field that did not render
//! or check, and why); it is recorded like any failed step and is not retried, since
//! the same data renders the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hookd_core::data::check_score;
use hookd_core::endpoint_url::EndpointUrl;
use hookd_core::filter::Subject;
use hookd_core::name::{ChannelName, DataName, EventTypeName, ItemKey};
use serde_json::{Value, json};

use crate::definition::{Action, DocumentOp, HttpMethod, SmsSender, Step};
use crate::template::{Mapping, RunData, Template};

/// A step that could not be planned: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PlanError {
    /// The step's field (`key`, `to/0`, `body/amount`...).
    pub field: String,
    pub message: String,
}

fn at(field: impl Into<String>, message: impl std::fmt::Display) -> PlanError {
    PlanError {
        field: field.into(),
        message: message.to_string(),
    }
}

/// What the runner does for a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The step's `if` did not match: it is recorded as skipped and the run goes on.
    Skip,
    /// A condition that did not hold: the run ends as `stopped` (not failed).
    Stop,
    /// Nothing to do but record `output` (a condition that held, data that is valid).
    Output(Value),
    /// The data failed the schema: the run ends as `invalid` with these errors.
    Invalid(Vec<String>),
    /// Run `code` in the sandbox with `input`; its result is the step's output.
    Transform {
        code: String,
        input: Value,
    },
    Document {
        op: DocumentOp,
        app: String,
        collection: DataName,
        key: ItemKey,
        body: Option<Value>,
    },
    LeaderboardSubmit {
        app: String,
        leaderboard: DataName,
        player: ItemKey,
        score: i64,
    },
    Publish {
        app: String,
        event_type: EventTypeName,
        payload: Value,
        channels: BTreeSet<ChannelName>,
    },
    Http {
        method: HttpMethod,
        url: EndpointUrl,
        headers: BTreeMap<String, String>,
        /// JSON text.
        body: Option<String>,
        sign_with: Option<String>,
    },
    Email {
        to: Vec<String>,
        cc: Vec<String>,
        subject: String,
        text: Option<String>,
        html: Option<String>,
        credentials: String,
    },
    Sms {
        to: String,
        sender: SmsTo,
        body: String,
        credentials: String,
    },
    Delay(Duration),
    Call {
        flow: String,
        input: Value,
    },
}

/// Most of a step's input kept in its record (JSON text); a larger one is recorded as
/// its size only, so a run's state stays small enough to commit after every step.
pub const MAX_INPUT_BYTES: usize = 16 * 1024;

/// Header values an http step's recorded input does not show.
const HIDDEN_HEADERS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "x-api-key"];

impl Effect {
    /// What the step acts on, rendered, as the run log shows it (`None` for a step
    /// that only decides: skip, condition, validation, transform, whose input is the
    /// run's data). Secrets are never in it: credentials are named, not opened, and
    /// the values of authorization-like headers are hidden.
    pub fn input(&self) -> Option<Value> {
        let input = match self {
            Self::Skip | Self::Stop | Self::Output(_) | Self::Invalid(_) | Self::Transform { .. } => {
                return None;
            }
            Self::Document {
                op,
                app,
                collection,
                key,
                body,
            } => json!({"op": format!("{op:?}").to_lowercase(), "app": app, "collection": collection,
                        "key": key, "body": body}),
            Self::LeaderboardSubmit {
                app,
                leaderboard,
                player,
                score,
            } => json!({"app": app, "leaderboard": leaderboard, "player": player, "score": score}),
            Self::Publish {
                app,
                event_type,
                payload,
                channels,
            } => json!({"app": app, "eventType": event_type, "payload": payload, "channels": channels}),
            Self::Http {
                method,
                url,
                headers,
                body,
                sign_with,
            } => {
                let headers: BTreeMap<&str, &str> = headers
                    .iter()
                    .map(|(k, v)| {
                        let hidden = HIDDEN_HEADERS.iter().any(|h| k.eq_ignore_ascii_case(h));
                        (k.as_str(), if hidden { "[hidden]" } else { v.as_str() })
                    })
                    .collect();
                let body = body.as_deref().map(|b| {
                    serde_json::from_str::<Value>(b).unwrap_or_else(|_| Value::String(b.to_owned()))
                });
                json!({"method": format!("{method:?}").to_uppercase(), "url": url.as_str(), "headers": headers,
                       "body": body, "signWith": sign_with})
            }
            Self::Email {
                to,
                cc,
                subject,
                text,
                html,
                credentials,
            } => json!({"to": to, "cc": cc, "subject": subject, "text": text, "html": html,
                        "credentials": credentials}),
            Self::Sms {
                to,
                sender,
                body,
                credentials,
            } => {
                let (field, value) = match sender {
                    SmsTo::From(f) => ("from", f),
                    SmsTo::MessagingService(m) => ("messagingServiceSid", m),
                };
                json!({"to": to, field: value, "body": body, "credentials": credentials})
            }
            Self::Delay(d) => json!({"duration": humantime::format_duration(*d).to_string()}),
            Self::Call { flow, input } => json!({"flow": flow, "input": input}),
        };
        let size = input.to_string().len();
        Some(if size > MAX_INPUT_BYTES {
            json!({"truncated": true, "bytes": size})
        } else {
            input
        })
    }
}

/// An SMS's sender once rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsTo {
    From(String),
    MessagingService(String),
}

/// The idempotency key of a step's side effect: the same for every try of that step
/// of that run (an email's `Message-ID`, an http step's `Idempotency-Key`, a published
/// message's `eventId`), and new after each of the run's `reruns`.
pub fn idempotency_key(run_id: &str, step: usize, reruns: u32) -> String {
    if reruns == 0 {
        format!("{run_id}.{step}")
    } else {
        format!("{run_id}.{step}.r{reruns}")
    }
}

fn render(t: &Template, data: &RunData, field: &str) -> Result<String, PlanError> {
    t.render(data).map_err(|e| at(field, e))
}

fn render_value(m: &Mapping, data: &RunData, field: &str) -> Result<Value, PlanError> {
    m.render(data).map_err(|e| at(field, e))
}

/// The earlier steps' outputs as one object (a filter's `steps`).
fn steps_value(data: &RunData) -> Value {
    Value::Object(data.steps.clone())
}

/// What `step` does with `data`.
pub fn plan(step: &Step, data: &RunData) -> Result<Effect, PlanError> {
    // The trigger is borrowed: it is the largest part of the data, and most steps
    // only read it.
    let (trigger, steps) = (&data.trigger, steps_value(data));
    let view = Subject {
        trigger: Some(trigger),
        steps: Some(&steps),
        ..Subject::default()
    };
    if step.when.as_ref().is_some_and(|f| !f.matches(&view)) {
        return Ok(Effect::Skip);
    }
    Ok(match &step.action {
        Action::Condition { filter } => match filter.explain(&view) {
            Ok(()) => Effect::Output(json!({"matched": true})),
            Err(_) => Effect::Stop,
        },
        Action::Transform { code } => Effect::Transform {
            code: code.clone(),
            input: json!({"trigger": trigger, "steps": steps}),
        },
        Action::Validate { schema, data: chosen } => {
            let value = match chosen {
                Some(m) => render_value(m, data, "data")?,
                // A received request's or a form's body; otherwise the whole input.
                None => trigger.get("body").cloned().unwrap_or_else(|| trigger.clone()),
            };
            match schema.check(&value) {
                Ok(()) => Effect::Output(json!({"valid": true})),
                Err(errors) => Effect::Invalid(errors),
            }
        }
        Action::Document {
            op,
            app,
            collection,
            key,
            body,
        } => {
            let key = render(key, data, "key")?;
            let key: ItemKey = key
                .parse()
                .map_err(|e| at("key", format!("{key:?} is not a key: {e}")))?;
            let field = if *op == DocumentOp::Increment {
                "by"
            } else {
                "body"
            };
            Effect::Document {
                op: *op,
                app: app.clone(),
                collection: collection.clone(),
                key,
                body: body.as_ref().map(|b| render_value(b, data, field)).transpose()?,
            }
        }
        Action::LeaderboardSubmit {
            app,
            leaderboard,
            player,
            score,
        } => {
            let player = render(player, data, "player")?;
            let player: ItemKey = player
                .parse()
                .map_err(|e| at("player", format!("{player:?} is not a player id: {e}")))?;
            let score = match render_value(score, data, "score")? {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| at("score", "a score is an integer"))?;
            Effect::LeaderboardSubmit {
                app: app.clone(),
                leaderboard: leaderboard.clone(),
                player,
                score: check_score(score).map_err(|e| at("score", e))?,
            }
        }
        Action::MessagePublish {
            app,
            event_type,
            payload,
            channels,
        } => {
            let payload = render_value(payload, data, "payload")?;
            if !payload.is_object() {
                return Err(at("payload", "a message's payload is a JSON object"));
            }
            let channels = channels
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let field = format!("channels/{i}");
                    let c = render(c, data, &field)?;
                    c.parse()
                        .map_err(|e| at(&field, format!("{c:?} is not a channel: {e}")))
                })
                .collect::<Result<_, _>>()?;
            Effect::Publish {
                app: app.clone(),
                event_type: event_type.clone(),
                payload,
                channels,
            }
        }
        Action::Http {
            method,
            url,
            headers,
            body,
            sign_with,
        } => {
            let url = render(url, data, "url")?;
            let url: EndpointUrl = url.parse().map_err(|e| at("url", e))?;
            let headers = headers
                .iter()
                .map(|(name, value)| {
                    let field = format!("headers/{name}");
                    let value = render(value, data, &field)?;
                    hookd_core::endpoint_headers::validate(name, &value).map_err(|e| at(&field, e))?;
                    Ok((name.clone(), value))
                })
                .collect::<Result<_, PlanError>>()?;
            Effect::Http {
                method: *method,
                url,
                headers,
                body: body
                    .as_ref()
                    .map(|b| render_value(b, data, "body").map(|v| v.to_string()))
                    .transpose()?,
                sign_with: sign_with.clone(),
            }
        }
        Action::Email {
            to,
            cc,
            subject,
            text,
            html,
            credentials,
        } => {
            let list = |l: &[Template], name: &str| -> Result<Vec<String>, PlanError> {
                l.iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let field = format!("{name}/{i}");
                        let address = render(t, data, &field)?;
                        if address.trim().is_empty() || address.contains(['\r', '\n']) {
                            return Err(at(field, format!("{address:?} is not an address")));
                        }
                        Ok(address)
                    })
                    .collect()
            };
            let subject = render(subject, data, "subject")?;
            if subject.contains(['\r', '\n']) {
                return Err(at("subject", "a subject is one line"));
            }
            Effect::Email {
                to: list(to, "to")?,
                cc: list(cc, "cc")?,
                subject,
                text: text.as_ref().map(|t| render(t, data, "text")).transpose()?,
                html: html.as_ref().map(|t| render(t, data, "html")).transpose()?,
                credentials: credentials.clone(),
            }
        }
        Action::Sms {
            to,
            sender,
            body,
            credentials,
        } => Effect::Sms {
            to: render(to, data, "to")?,
            sender: match sender {
                SmsSender::From(t) => SmsTo::From(render(t, data, "from")?),
                SmsSender::MessagingService(sid) => SmsTo::MessagingService(sid.clone()),
            },
            body: render(body, data, "body")?,
            credentials: credentials.clone(),
        },
        Action::Delay { duration } => Effect::Delay(*duration),
        Action::FlowCall { flow, input } => Effect::Call {
            flow: flow.clone(),
            input: match input {
                Some(m) => render_value(m, data, "input")?,
                None => json!({"trigger": trigger, "steps": steps}),
            },
        },
    })
}
