//! Which endpoints a new message goes to, decided once for both backends: the Svix
//! subscription (`hookd_core::matching`: disabled, event types, channels) and then the
//! endpoint's payload filter (`hookd_core::filter`). A backend reads the endpoints'
//! rows and asks [`Fanout::accepts`] for each; only those it accepts get a delivery
//! row, in the message's transaction.
//!
//! A sent message is matched as [`FilterTarget::Sent`] (its payload, event type and
//! channels); a message that forwards a received request as
//! [`FilterTarget::Received`] (that request's body, headers, query and path). The
//! subject is built at most once per message, and only when an endpoint has a filter.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use hookd_core::filter::{Filter, FilterTarget, RequestValues, Subject};
use hookd_core::id::IngestLogId;
use hookd_core::name::{ChannelName, EventTypeName};

use crate::{ForwardedRequest, Message};
use serde_json::Value;

/// Parsed filters by document text, one map per target, shared by every fan-out in
/// the process: a filter is read from its endpoint's row for each message, and parsing
/// it each time would cost ten times matching it (docs/benchmarks.md). Emptied when
/// full.
type Compiled = Mutex<HashMap<String, Arc<Filter>>>;
static COMPILED: LazyLock<[Compiled; 2]> = LazyLock::new(Default::default);
const COMPILED_MAX: usize = 4_096;

/// The filter stored as `text`, parsed for `target` (once per process and text);
/// `None` when it does not parse.
fn compiled(text: &str, target: FilterTarget) -> Option<Arc<Filter>> {
    let map = &COMPILED[usize::from(target == FilterTarget::Received)];
    if let Some(f) = map.lock().unwrap_or_else(|p| p.into_inner()).get(text) {
        return Some(Arc::clone(f));
    }
    let doc: Value = serde_json::from_str(text).ok()?;
    let filter = Arc::new(Filter::parse(&doc, target).ok()?);
    let mut cache = map.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= COMPILED_MAX {
        cache.clear();
    }
    cache.insert(text.to_owned(), Arc::clone(&filter));
    Some(filter)
}

/// Endpoints left out of a fan-out by their payload filter, since the process started:
/// [sent messages, forwarded requests]. Counted when the fan-out is decided, inside the
/// message's transaction, for `/metrics`.
static FILTERED_OUT: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// What [`FILTERED_OUT`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilteredOut {
    /// Application and operational endpoints a message did not go to.
    pub sent: u64,
    /// Ingest destinations a received request was not forwarded to.
    pub received: u64,
}

/// Endpoints left out by their payload filter in this process so far (a message whose
/// transaction then failed is counted too).
pub fn filtered_out() -> FilteredOut {
    FilteredOut {
        sent: FILTERED_OUT[0].load(Ordering::Relaxed),
        received: FILTERED_OUT[1].load(Ordering::Relaxed),
    }
}

/// A received request's parts, as a destination's filter sees them.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub path: &'a str,
    pub query: &'a str,
    /// Lower-case names, in arrival order.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The endpoints subscribed to a message (`hookd_core::matching`), each with its stored
/// filter text: what a backend reads, before the filters are matched.
#[derive(Debug, Default)]
pub struct Candidates(Vec<(String, Option<String>)>);

/// A logged request read back for a forward's filters (a replay).
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl LoggedRequest {
    pub fn view(&self) -> RequestView<'_> {
        RequestView {
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

impl Candidates {
    pub fn push(&mut self, endpoint: String, filter: Option<String>) {
        self.0.push((endpoint, filter));
    }

    /// The log entry a backend must read first: a forward's filters are matched on the
    /// request it forwards, and `request` (when the caller has it) is not at hand.
    pub fn needs_log<'f>(
        &self,
        forward: Option<&'f ForwardedRequest>,
        request: Option<RequestView<'_>>,
    ) -> Option<&'f IngestLogId> {
        let filtered = self.0.iter().any(|(_, f)| f.is_some());
        match (forward, request) {
            (Some(f), None) if filtered => Some(&f.log_id),
            _ => None,
        }
    }

    /// The endpoints that take `msg`: those whose filter (if any) it passes. A forward
    /// is matched on `request`, or else on `logged` (read as [`needs_log`](Self::needs_log) said).
    pub fn keep(
        self,
        msg: &Message,
        forward: Option<&ForwardedRequest>,
        request: Option<RequestView<'_>>,
        logged: Option<&LoggedRequest>,
    ) -> Vec<String> {
        if self.0.iter().all(|(_, f)| f.is_none()) {
            return self.0.into_iter().map(|(id, _)| id).collect();
        }
        let fanout = match (forward, request.or(logged.map(LoggedRequest::view))) {
            (None, _) => Fanout::sent(
                &msg.event_type,
                msg.channels.as_ref(),
                msg.payload.as_deref().unwrap_or(""),
            ),
            (Some(_), Some(view)) => Fanout::forward(&msg.event_type, view),
            // The logged request is gone (deleted with the log): nothing to match, so
            // nothing is dropped.
            (Some(_), None) => return self.0.into_iter().map(|(id, _)| id).collect(),
        };
        let candidates = self.0.len();
        let kept: Vec<String> = self
            .0
            .into_iter()
            .filter(|(_, filter)| filter.as_deref().is_none_or(|f| fanout.passes(f)))
            .map(|(id, _)| id)
            .collect();
        let counter = &FILTERED_OUT[usize::from(forward.is_some())];
        counter.fetch_add((candidates - kept.len()) as u64, Ordering::Relaxed);
        kept
    }
}

/// The fan-out of one message.
#[derive(Debug)]
pub struct Fanout<'a> {
    event_type: &'a EventTypeName,
    channels: Option<&'a BTreeSet<ChannelName>>,
    payload: &'a str,
    /// `Some` for a message that forwards a received request.
    request: Option<RequestView<'a>>,
    subject: OnceLock<Values>,
}

/// The subject's values, owned (parsed once per message).
#[derive(Debug)]
enum Values {
    Sent {
        body: Option<Value>,
        event_type: Value,
        channels: Option<Value>,
    },
    Received(RequestValues),
}

impl<'a> Fanout<'a> {
    /// The fan-out of a message sent with `payload` (JSON text).
    pub fn sent(
        event_type: &'a EventTypeName,
        channels: Option<&'a BTreeSet<ChannelName>>,
        payload: &'a str,
    ) -> Self {
        Self {
            event_type,
            channels,
            payload,
            request: None,
            subject: OnceLock::new(),
        }
    }

    /// The fan-out of a message of `event_type` forwarding `request`.
    pub fn forward(event_type: &'a EventTypeName, request: RequestView<'a>) -> Self {
        Self {
            event_type,
            channels: None,
            payload: "",
            request: Some(request),
            subject: OnceLock::new(),
        }
    }

    /// What a filter of these endpoints is parsed for.
    fn target(&self) -> FilterTarget {
        if self.request.is_some() {
            FilterTarget::Received
        } else {
            FilterTarget::Sent
        }
    }

    /// Whether the message passes the stored filter document `filter` (its JSON text).
    pub fn passes(&self, filter: &str) -> bool {
        match compiled(filter, self.target()) {
            Some(filter) => filter.matches(&self.subject()),
            // Stored filters were checked when they were set; one that no longer
            // parses is not allowed to drop messages silently.
            None => true,
        }
    }

    fn subject(&self) -> Subject<'_> {
        match self.subject.get_or_init(|| self.values()) {
            Values::Sent {
                body,
                event_type,
                channels,
            } => Subject {
                body: body.as_ref(),
                event_type: Some(event_type),
                channels: channels.as_ref(),
                ..Subject::default()
            },
            Values::Received(request) => request.subject(),
        }
    }

    fn values(&self) -> Values {
        match self.request {
            None => Values::Sent {
                body: serde_json::from_str(self.payload).ok(),
                event_type: Value::String(self.event_type.as_str().to_owned()),
                channels: self
                    .channels
                    .map(|c| Value::Array(c.iter().map(|c| Value::String(c.as_str().to_owned())).collect())),
            },
            Some(r) => Values::Received(RequestValues::new(
                r.path,
                r.query,
                r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                r.body,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(event_type: &str, channels: &[&str], payload: &str) -> Message {
        Message {
            id: hookd_core::id::MessageId::generate(),
            app_id: hookd_core::id::ApplicationId::generate(),
            event_type: event_type.parse().unwrap(),
            event_id: None,
            channels: Some(channels.iter().map(|c| c.parse().unwrap()).collect()),
            tags: BTreeSet::new(),
            payload: Some(payload.into()),
            created_at: chrono::Utc::now(),
            deliver_at: None,
        }
    }

    fn kept(
        filters: &[(&str, Option<&str>)],
        msg: &Message,
        forward: Option<&ForwardedRequest>,
        request: Option<RequestView<'_>>,
    ) -> Vec<String> {
        let mut c = Candidates::default();
        for (id, f) in filters {
            c.push((*id).to_owned(), f.map(str::to_owned));
        }
        c.keep(msg, forward, request, None)
    }

    #[test]
    fn a_sent_message_is_matched_on_its_payload_type_and_channels() {
        let msg = message("invoice.paid", &["eu"], r#"{"amount": 120, "currency": "EUR"}"#);
        let got = kept(
            &[
                ("none", None),
                ("amount", Some(r#"{"body": {"amount": {"$gte": 100}}}"#)),
                ("usd", Some(r#"{"body": {"currency": "USD"}}"#)),
                (
                    "type",
                    Some(r#"{"eventType": {"$startsWith": "invoice."}, "channels": ["eu"]}"#),
                ),
                ("unreadable", Some(r#"{"nope": 1}"#)),
            ],
            &msg,
            None,
            None,
        );
        assert_eq!(
            got,
            ["none", "amount", "type", "unreadable"],
            "an unreadable stored filter drops nothing"
        );
        let text = message("a.b", &[], "not json");
        assert_eq!(
            kept(
                &[("body", Some(r#"{"body": {}}"#)), ("none", None)],
                &text,
                None,
                None
            ),
            ["none"]
        );
    }

    #[test]
    fn a_forward_is_matched_on_the_received_request() {
        let msg = message("ingest.github", &[], "");
        let forward = ForwardedRequest {
            log_id: IngestLogId::generate(),
            headers: Vec::new(),
        };
        let headers = vec![("x-github-event".to_owned(), "push".to_owned())];
        let view = RequestView {
            path: "/hooks",
            query: "a=1&a=2&b=x",
            headers: &headers,
            body: br#"{"ref": "refs/heads/main"}"#,
        };
        let filters = [
            ("push", Some(r#"{"headers": {"X-GitHub-Event": "push"}}"#)),
            ("issues", Some(r#"{"headers": {"x-github-event": "issues"}}"#)),
            (
                "query",
                Some(r#"{"query": {"a": ["2"], "b": "x"}, "path": "/hooks"}"#),
            ),
            ("ref", Some(r#"{"body": {"ref": {"$endsWith": "/main"}}}"#)),
        ];
        let mut c = Candidates::default();
        for (id, f) in &filters {
            c.push((*id).to_owned(), f.map(str::to_owned));
        }
        assert_eq!(
            c.needs_log(Some(&forward), None),
            Some(&forward.log_id),
            "a replay reads the log"
        );
        assert_eq!(c.needs_log(Some(&forward), Some(view)), None);
        assert_eq!(
            kept(&filters, &msg, Some(&forward), Some(view)),
            ["push", "query", "ref"]
        );
        let logged = LoggedRequest {
            path: "/hooks".into(),
            query: "a=2&b=x".into(),
            headers: headers.clone(),
            body: br#"{"ref": "refs/heads/dev"}"#.to_vec(),
        };
        let mut c = Candidates::default();
        for (id, f) in &filters {
            c.push((*id).to_owned(), f.map(str::to_owned));
        }
        assert_eq!(
            c.keep(&msg, Some(&forward), None, Some(&logged)),
            ["push"],
            "matched on the logged request"
        );
    }
}
