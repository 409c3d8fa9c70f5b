//! A flow's definition: what starts it and the steps it runs, parsed and checked once
//! ([`Flow::parse`]). Every mistake is named by the JSON pointer of the bad part
//! ([`FlowError`]), so a flow that was saved never fails for its own shape at run time.
//!
//! ```json
//! {"name": "invoice-paid",
//!  "trigger": {"type": "source.request", "source": "src_..."},
//!  "steps": [
//!    {"name": "big", "type": "condition",
//!     "filter": {"trigger": {"body": {"data": {"object": {"amount_paid": {"$gte": 1000}}}}}}},
//!    {"name": "activate", "type": "document.patch", "app": "shop", "collection": "customers",
//!     "key": "{{ trigger.body.data.object.customer }}", "body": {"status": "active"}},
//!    {"name": "mail", "type": "email", "to": ["{{ trigger.body.data.object.customer_email }}"],
//!     "subject": "Payment received", "text": "Thank you, {{ steps.activate.document.name }}.",
//!     "credentials": "smtp-main"}]}
//! ```
//!
//! Each step has a `name` (unique in the flow; its output is `steps.<name>`), a
//! `type`, the type's fields, and an optional `if` (a filter on the run's `trigger` and
//! `steps`, [`FilterTarget::Flow`]): a step whose `if` does not match is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hookd_core::data::BodySchema;
use hookd_core::filter::{Filter, FilterTarget};
use hookd_core::name::{ChannelName, DataName, EventTypeName};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::template::{Kind, Mapping, Template, TemplateError};

/// Most steps a flow may have.
pub const MAX_STEPS: usize = 50;
/// Longest `delay`.
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most recipients (`to` and `cc` together) of an email step.
pub const MAX_RECIPIENTS: usize = 50;
/// Longest transform code, in characters (as a transformation's).
pub const MAX_CODE_CHARS: usize = 51_200;
/// Most headers an http step may set.
pub const MAX_HEADERS: usize = 32;

/// A definition refused: where (a JSON pointer into the document) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {pointer:?})")]
pub struct FlowError {
    pub pointer: String,
    pub message: String,
}

impl FlowError {
    fn at(pointer: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.to_string(),
        }
    }
}

/// What starts a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A request a source received, after verification and dedup (the source's id or uid).
    SourceRequest { source: String },
    /// A message created in an application (its id or uid), optionally of some event
    /// types or channels only.
    MessageCreated {
        app: String,
        event_types: Option<BTreeSet<EventTypeName>>,
        channels: Option<BTreeSet<ChannelName>>,
    },
    /// A document created, updated or deleted in a collection.
    DocumentChanged {
        app: String,
        collection: DataName,
        on: BTreeSet<DocumentEvent>,
    },
    /// A score submitted to a leaderboard.
    LeaderboardSubmitted { app: String, leaderboard: DataName },
    /// A post to a portal mode of operation `flow.run` at `/h/{account}/{app}/{mode}`.
    Mode { app: String, mode: DataName },
    /// A cron schedule (the cron sources' syntax), with the run's input.
    Cron { schedule: String, payload: Value },
    /// Only run through the API, with a sample input.
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentEvent {
    Created,
    Updated,
    Deleted,
}

/// HTTP methods an http step may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// What a step does (its fields checked: templates parsed, filters compiled).
#[derive(Debug)]
pub enum Action {
    /// Ends the run (as `stopped`, not failed) unless the filter matches.
    Condition { filter: Filter },
    /// Runs JavaScript in the sandbox: `function handler(input) { return output }`,
    /// `input` being `{trigger, steps}`.
    Transform { code: String },
    /// Ends the run as `invalid`, with each error, unless `data` (the trigger's body
    /// when absent) satisfies the schema.
    Validate {
        schema: BodySchema,
        data: Option<Mapping>,
    },
    Document {
        op: DocumentOp,
        app: String,
        collection: DataName,
        key: Template,
        /// The document (put), the merge patch (patch) or the deltas (increment);
        /// none for delete.
        body: Option<Mapping>,
    },
    LeaderboardSubmit {
        app: String,
        leaderboard: DataName,
        player: Template,
        score: Mapping,
    },
    /// A message to an application's endpoints, signed and delivered as any other.
    MessagePublish {
        app: String,
        event_type: EventTypeName,
        payload: Mapping,
        channels: Vec<Template>,
    },
    Http {
        method: HttpMethod,
        url: Template,
        headers: BTreeMap<String, Template>,
        body: Option<Mapping>,
        /// The name of a secret to sign the request with (Standard Webhooks headers).
        sign_with: Option<String>,
    },
    Email {
        to: Vec<Template>,
        cc: Vec<Template>,
        subject: Template,
        text: Option<Template>,
        html: Option<Template>,
        /// The name of the secret holding the SMTP server and sender
        /// (`{"smtpUrl", "from"}`).
        credentials: String,
    },
    Sms {
        to: Template,
        sender: SmsSender,
        body: Template,
        /// The name of the secret holding the provider's credentials.
        credentials: String,
    },
    /// Waits, durably, before the next step.
    Delay { duration: Duration },
    /// Starts another flow (its id or name) with `input` as its trigger data.
    FlowCall { flow: String, input: Option<Mapping> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentOp {
    Put,
    Patch,
    Increment,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsSender {
    From(Template),
    MessagingService(String),
}

/// One step.
#[derive(Debug)]
pub struct Step {
    pub name: DataName,
    /// Runs only when this matches.
    pub when: Option<Filter>,
    pub action: Action,
}

/// A mode trigger's answer to the poster: a status and a body (JSON with templates).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Option<Mapping>,
}

/// A checked flow. It keeps the document it was parsed from, which is what is stored
/// and shown.
#[derive(Debug)]
pub struct Flow {
    document: Value,
    pub name: DataName,
    pub description: Option<String>,
    pub enabled: bool,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
    /// Runs of this flow at once (none: no limit beyond the node's).
    pub concurrency: Option<u32>,
    /// Runs of this flow taken up per second over all nodes (none: no limit).
    pub throttle_rate: Option<hookd_core::throttle::ThrottleRate>,
    pub response: Option<Response>,
}

/// A step's raw fields, by type (serde reports unknown or missing fields).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
enum RawAction {
    #[serde(rename = "condition")]
    Condition { filter: Value },
    #[serde(rename = "transform")]
    Transform { code: String },
    #[serde(rename = "validate")]
    Validate { schema: Value, data: Option<Value> },
    #[serde(rename = "document.put")]
    DocumentPut {
        app: String,
        collection: String,
        key: String,
        body: Value,
    },
    #[serde(rename = "document.patch")]
    DocumentPatch {
        app: String,
        collection: String,
        key: String,
        body: Value,
    },
    #[serde(rename = "document.increment")]
    DocumentIncrement {
        app: String,
        collection: String,
        key: String,
        by: Value,
    },
    #[serde(rename = "document.delete")]
    DocumentDelete {
        app: String,
        collection: String,
        key: String,
    },
    #[serde(rename = "leaderboard.submit")]
    LeaderboardSubmit {
        app: String,
        leaderboard: String,
        player: String,
        score: Value,
    },
    #[serde(rename = "message.publish")]
    MessagePublish {
        app: String,
        event_type: String,
        payload: Value,
        #[serde(default)]
        channels: Vec<String>,
    },
    #[serde(rename = "http")]
    Http {
        #[serde(default = "post")]
        method: HttpMethod,
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        body: Option<Value>,
        sign_with: Option<String>,
    },
    #[serde(rename = "email")]
    Email {
        to: Vec<String>,
        #[serde(default)]
        cc: Vec<String>,
        subject: String,
        text: Option<String>,
        html: Option<String>,
        credentials: String,
    },
    #[serde(rename = "sms")]
    Sms {
        to: String,
        from: Option<String>,
        messaging_service_sid: Option<String>,
        body: String,
        credentials: String,
    },
    #[serde(rename = "delay")]
    Delay { duration: String },
    #[serde(rename = "flow.call")]
    FlowCall { flow: String, input: Option<Value> },
}

fn post() -> HttpMethod {
    HttpMethod::Post
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase", deny_unknown_fields)]
enum RawTrigger {
    #[serde(rename = "source.request")]
    SourceRequest { source: String },
    #[serde(rename = "message.created")]
    MessageCreated {
        app: String,
        event_types: Option<Vec<String>>,
        channels: Option<Vec<String>>,
    },
    #[serde(rename = "document.changed")]
    DocumentChanged {
        app: String,
        collection: String,
        on: Option<Vec<DocumentEvent>>,
    },
    #[serde(rename = "leaderboard.submitted")]
    LeaderboardSubmitted { app: String, leaderboard: String },
    #[serde(rename = "mode")]
    Mode { app: String, mode: String },
    #[serde(rename = "cron")]
    Cron {
        schedule: String,
        payload: Option<Value>,
    },
    #[serde(rename = "manual")]
    Manual {},
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    status: u16,
    body: Option<Value>,
}

/// Reads `field` of `object` as `T`; a wrong shape is refused at `at/field`.
fn field<T: serde::de::DeserializeOwned>(
    object: &Map<String, Value>,
    name: &str,
    at: &str,
) -> Result<Option<T>, FlowError> {
    object
        .get(name)
        .filter(|v| !v.is_null())
        .map(|v| serde_json::from_value(v.clone()).map_err(|e| FlowError::at(format!("{at}/{name}"), e)))
        .transpose()
}

fn template(source: &str, kind: Kind, at: &str) -> Result<Template, FlowError> {
    Template::parse(source, kind).map_err(|e| FlowError::at(at, e))
}

fn mapping(source: &Value, at: &str) -> Result<Mapping, FlowError> {
    Mapping::parse(source)
        .map_err(|(inner, e): (String, TemplateError)| FlowError::at(format!("{at}{inner}"), e))
}

fn parsed<T: std::str::FromStr>(s: &str, at: &str) -> Result<T, FlowError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| FlowError::at(at, e))
}

fn filter(doc: &Value, at: &str) -> Result<Filter, FlowError> {
    Filter::parse(doc, FilterTarget::Flow).map_err(|e| FlowError::at(format!("{at}{}", e.pointer), e.message))
}

fn app_key(app: String, at: &str) -> Result<String, FlowError> {
    if app.is_empty() || app.len() > 256 {
        return Err(FlowError::at(at, "an application's id or uid"));
    }
    Ok(app)
}

impl Flow {
    /// Parses and checks `document`.
    pub fn parse(document: &Value) -> Result<Self, FlowError> {
        let Value::Object(object) = document else {
            return Err(FlowError::at("", "a flow is a JSON object"));
        };
        const KNOWN: &[&str] = &[
            "name",
            "description",
            "enabled",
            "trigger",
            "steps",
            "concurrency",
            "throttleRate",
            "response",
        ];
        if let Some(unknown) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(FlowError::at(
                format!("/{unknown}"),
                format!("unknown field; a flow has {}", KNOWN.join(", ")),
            ));
        }
        let name: String =
            field(object, "name", "")?.ok_or_else(|| FlowError::at("/name", "a flow needs a name"))?;
        let name = parsed(&name, "/name")?;
        let description: Option<String> = field(object, "description", "")?;
        if description.as_ref().is_some_and(|d| d.len() > 4_096) {
            return Err(FlowError::at("/description", "at most 4,096 bytes"));
        }
        let enabled = field(object, "enabled", "")?.unwrap_or(true);
        let concurrency: Option<u32> = field(object, "concurrency", "")?;
        if concurrency == Some(0) {
            return Err(FlowError::at("/concurrency", "at least 1 (or absent: no limit)"));
        }
        let throttle_rate = match field::<u16>(object, "throttleRate", "")? {
            None => None,
            Some(n) => Some(hookd_core::throttle::ThrottleRate::new(n).ok_or_else(|| {
                FlowError::at(
                    "/throttleRate",
                    "runs per second, 1 to 65535 (or absent: no limit)",
                )
            })?),
        };
        let raw_trigger = object
            .get("trigger")
            .ok_or_else(|| FlowError::at("/trigger", "a flow needs a trigger"))?;
        let trigger = Self::trigger(raw_trigger)?;
        let raw_steps: Vec<Value> = field(object, "steps", "")?.unwrap_or_default();
        if raw_steps.is_empty() {
            return Err(FlowError::at("/steps", "a flow needs at least one step"));
        }
        if raw_steps.len() > MAX_STEPS {
            return Err(FlowError::at("/steps", format!("at most {MAX_STEPS} steps")));
        }
        let mut names = BTreeSet::new();
        let mut steps = Vec::with_capacity(raw_steps.len());
        for (i, raw) in raw_steps.iter().enumerate() {
            let step = Self::step(raw, &format!("/steps/{i}"))?;
            if !names.insert(step.name.as_str().to_owned()) {
                return Err(FlowError::at(
                    format!("/steps/{i}/name"),
                    format!("another step is named {:?}", step.name.as_str()),
                ));
            }
            steps.push(step);
        }
        let response = match field::<RawResponse>(object, "response", "")? {
            None => None,
            Some(_) if !matches!(trigger, Trigger::Mode { .. }) => {
                return Err(FlowError::at(
                    "/response",
                    "only a flow run by a mode answers a poster",
                ));
            }
            Some(r) => {
                if !(200..=599).contains(&r.status) {
                    return Err(FlowError::at("/response/status", "an HTTP status, 200 to 599"));
                }
                Some(Response {
                    status: r.status,
                    body: r
                        .body
                        .as_ref()
                        .map(|b| mapping(b, "/response/body"))
                        .transpose()?,
                })
            }
        };
        Ok(Self {
            document: document.clone(),
            name,
            description,
            enabled,
            trigger,
            steps,
            concurrency,
            throttle_rate,
            response,
        })
    }

    /// The document it was parsed from.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The flows its `flow.call` steps start (ids or names), to refuse loops.
    pub fn calls(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|s| match &s.action {
            Action::FlowCall { flow, .. } => Some(flow.as_str()),
            _ => None,
        })
    }

    /// The secrets it names (email and SMS credentials, http signing keys).
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().filter_map(|s| match &s.action {
            Action::Sms { credentials, .. } | Action::Email { credentials, .. } => Some(credentials.as_str()),
            Action::Http {
                sign_with: Some(name),
                ..
            } => Some(name.as_str()),
            _ => None,
        })
    }

    fn trigger(raw: &Value) -> Result<Trigger, FlowError> {
        let at = "/trigger";
        let raw: RawTrigger = serde_json::from_value(raw.clone()).map_err(|e| FlowError::at(at, e))?;
        Ok(match raw {
            RawTrigger::SourceRequest { source } => Trigger::SourceRequest {
                source: app_key(source, "/trigger/source")?,
            },
            RawTrigger::MessageCreated {
                app,
                event_types,
                channels,
            } => Trigger::MessageCreated {
                app: app_key(app, "/trigger/app")?,
                event_types: event_types
                    .map(|l| {
                        l.iter()
                            .enumerate()
                            .map(|(i, t)| parsed(t, &format!("/trigger/eventTypes/{i}")))
                            .collect()
                    })
                    .transpose()?,
                channels: channels
                    .map(|l| {
                        l.iter()
                            .enumerate()
                            .map(|(i, c)| parsed(c, &format!("/trigger/channels/{i}")))
                            .collect()
                    })
                    .transpose()?,
            },
            RawTrigger::DocumentChanged { app, collection, on } => Trigger::DocumentChanged {
                app: app_key(app, "/trigger/app")?,
                collection: parsed(&collection, "/trigger/collection")?,
                on: match on {
                    None => [
                        DocumentEvent::Created,
                        DocumentEvent::Updated,
                        DocumentEvent::Deleted,
                    ]
                    .into(),
                    Some(l) if l.is_empty() => {
                        return Err(FlowError::at(
                            "/trigger/on",
                            "name at least one of created, updated, deleted",
                        ));
                    }
                    Some(l) => l.into_iter().collect(),
                },
            },
            RawTrigger::LeaderboardSubmitted { app, leaderboard } => Trigger::LeaderboardSubmitted {
                app: app_key(app, "/trigger/app")?,
                leaderboard: parsed(&leaderboard, "/trigger/leaderboard")?,
            },
            RawTrigger::Mode { app, mode } => Trigger::Mode {
                app: app_key(app, "/trigger/app")?,
                mode: parsed(&mode, "/trigger/mode")?,
            },
            RawTrigger::Cron { schedule, payload } => {
                hookd_core::ingest::verify::check_schedule(&schedule)
                    .map_err(|e| FlowError::at("/trigger/schedule", e))?;
                Trigger::Cron {
                    schedule,
                    payload: payload.unwrap_or(Value::Null),
                }
            }
            RawTrigger::Manual {} => Trigger::Manual,
        })
    }

    fn step(raw: &Value, at: &str) -> Result<Step, FlowError> {
        let Value::Object(object) = raw else {
            return Err(FlowError::at(at, "a step is a JSON object"));
        };
        let mut rest = object.clone();
        let name = match rest.remove("name") {
            Some(Value::String(n)) => parsed(&n, &format!("{at}/name"))?,
            _ => return Err(FlowError::at(format!("{at}/name"), "a step needs a name")),
        };
        let when = rest
            .remove("if")
            .filter(|v| !v.is_null())
            .map(|f| filter(&f, &format!("{at}/if")))
            .transpose()?;
        let raw: RawAction = serde_json::from_value(Value::Object(rest)).map_err(|e| FlowError::at(at, e))?;
        let action = Self::action(raw, at)?;
        Ok(Step { name, when, action })
    }

    fn action(raw: RawAction, at: &str) -> Result<Action, FlowError> {
        let f = |name: &str| format!("{at}/{name}");
        let document = |op, app: String, collection: String, key: String, body: Option<(&str, Value)>| {
            Ok(Action::Document {
                op,
                app: app_key(app, &f("app"))?,
                collection: parsed(&collection, &f("collection"))?,
                key: template(&key, Kind::Text, &f("key"))?,
                body: body.map(|(name, b)| mapping(&b, &f(name))).transpose()?,
            })
        };
        Ok(match raw {
            RawAction::Condition { filter: doc } => Action::Condition {
                filter: filter(&doc, &f("filter"))?,
            },
            RawAction::Transform { code } => {
                let chars = code.chars().count();
                if !(10..=MAX_CODE_CHARS).contains(&chars) {
                    return Err(FlowError::at(
                        f("code"),
                        format!("10 to {MAX_CODE_CHARS} characters"),
                    ));
                }
                Action::Transform { code }
            }
            RawAction::Validate { schema, data } => Action::Validate {
                schema: BodySchema::compile(&schema).map_err(|e| FlowError::at(f("schema"), e))?,
                data: data.map(|d| mapping(&d, &f("data"))).transpose()?,
            },
            RawAction::DocumentPut {
                app,
                collection,
                key,
                body,
            } => document(DocumentOp::Put, app, collection, key, Some(("body", body)))?,
            RawAction::DocumentPatch {
                app,
                collection,
                key,
                body,
            } => document(DocumentOp::Patch, app, collection, key, Some(("body", body)))?,
            RawAction::DocumentIncrement {
                app,
                collection,
                key,
                by,
            } => {
                if !by.is_object() {
                    return Err(FlowError::at(f("by"), "an object of fields to numbers"));
                }
                document(DocumentOp::Increment, app, collection, key, Some(("by", by)))?
            }
            RawAction::DocumentDelete { app, collection, key } => {
                document(DocumentOp::Delete, app, collection, key, None)?
            }
            RawAction::LeaderboardSubmit {
                app,
                leaderboard,
                player,
                score,
            } => Action::LeaderboardSubmit {
                app: app_key(app, &f("app"))?,
                leaderboard: parsed(&leaderboard, &f("leaderboard"))?,
                player: template(&player, Kind::Text, &f("player"))?,
                score: mapping(&score, &f("score"))?,
            },
            RawAction::MessagePublish {
                app,
                event_type,
                payload,
                channels,
            } => Action::MessagePublish {
                app: app_key(app, &f("app"))?,
                event_type: parsed(&event_type, &f("eventType"))?,
                payload: mapping(&payload, &f("payload"))?,
                channels: channels
                    .iter()
                    .enumerate()
                    .map(|(i, c)| template(c, Kind::Text, &f(&format!("channels/{i}"))))
                    .collect::<Result<_, _>>()?,
            },
            RawAction::Http {
                method,
                url,
                headers,
                body,
                sign_with,
            } => {
                if headers.len() > MAX_HEADERS {
                    return Err(FlowError::at(
                        f("headers"),
                        format!("at most {MAX_HEADERS} headers"),
                    ));
                }
                let headers = headers
                    .into_iter()
                    .map(|(name, value)| {
                        let at = f(&format!("headers/{name}"));
                        hookd_core::endpoint_headers::validate(&name, "x")
                            .map_err(|e| FlowError::at(&at, e))?;
                        Ok((name, template(&value, Kind::Text, &at)?))
                    })
                    .collect::<Result<_, FlowError>>()?;
                if body.is_some() && matches!(method, HttpMethod::Get) {
                    return Err(FlowError::at(f("body"), "a GET sends no body"));
                }
                Action::Http {
                    method,
                    url: template(&url, Kind::Text, &f("url"))?,
                    headers,
                    body: body.map(|b| mapping(&b, &f("body"))).transpose()?,
                    sign_with: sign_with.map(|s| secret_name(s, &f("signWith"))).transpose()?,
                }
            }
            RawAction::Email {
                to,
                cc,
                subject,
                text,
                html,
                credentials,
            } => {
                if to.is_empty() {
                    return Err(FlowError::at(f("to"), "at least one recipient"));
                }
                if to.len() + cc.len() > MAX_RECIPIENTS {
                    return Err(FlowError::at(
                        f("to"),
                        format!("at most {MAX_RECIPIENTS} recipients, cc included"),
                    ));
                }
                if text.is_none() && html.is_none() {
                    return Err(FlowError::at(f("text"), "an email needs text, html or both"));
                }
                let list = |l: Vec<String>, name: &str| -> Result<Vec<Template>, FlowError> {
                    l.iter()
                        .enumerate()
                        .map(|(i, a)| template(a, Kind::Text, &f(&format!("{name}/{i}"))))
                        .collect()
                };
                Action::Email {
                    to: list(to, "to")?,
                    cc: list(cc, "cc")?,
                    subject: template(&subject, Kind::Text, &f("subject"))?,
                    text: text.map(|t| template(&t, Kind::Text, &f("text"))).transpose()?,
                    html: html.map(|t| template(&t, Kind::Html, &f("html"))).transpose()?,
                    credentials: secret_name(credentials, &f("credentials"))?,
                }
            }
            RawAction::Sms {
                to,
                from,
                messaging_service_sid,
                body,
                credentials,
            } => Action::Sms {
                to: template(&to, Kind::Text, &f("to"))?,
                sender: match (from, messaging_service_sid) {
                    (Some(from), None) => SmsSender::From(template(&from, Kind::Text, &f("from"))?),
                    (None, Some(sid)) if sid.starts_with("MG") && sid.len() <= 64 => {
                        SmsSender::MessagingService(sid)
                    }
                    (None, Some(_)) => {
                        return Err(FlowError::at(
                            f("messagingServiceSid"),
                            "a Twilio messaging service SID (MG...)",
                        ));
                    }
                    _ => {
                        return Err(FlowError::at(
                            f("from"),
                            "give either from or messagingServiceSid",
                        ));
                    }
                },
                body: template(&body, Kind::Text, &f("body"))?,
                credentials: secret_name(credentials, &f("credentials"))?,
            },
            RawAction::Delay { duration } => {
                let d = humantime::parse_duration(&duration).map_err(|e| FlowError::at(f("duration"), e))?;
                if d.is_zero() || d > MAX_DELAY {
                    return Err(FlowError::at(f("duration"), "more than 0 and at most 30 days"));
                }
                Action::Delay { duration: d }
            }
            RawAction::FlowCall { flow, input } => Action::FlowCall {
                flow: app_key(flow, &f("flow"))?,
                input: input.map(|i| mapping(&i, &f("input"))).transpose()?,
            },
        })
    }
}

/// A secret is named like a collection (`twilio-main`).
fn secret_name(name: String, at: &str) -> Result<String, FlowError> {
    let _: DataName = parsed(&name, at)?;
    Ok(name)
}

/// The first cycle of `flow.call`s among flows, as the names along it, if any.
/// `calls` gives each flow's callees (flows that do not exist are not followed).
pub fn find_call_cycle<'a>(calls: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    fn visit<'a>(
        node: &'a str,
        calls: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = path.iter().position(|n| *n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in calls.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, calls, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in calls.keys() {
        if let Some(c) = visit(node, calls, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}
