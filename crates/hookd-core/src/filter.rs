//! Payload filters: a JSON document that a received request or a sent message either
//! matches or not, in the syntax Hookdeck and Convoy users know.
//!
//! The top level names **scopes** — `body`, `headers`, `query`, `path` for a received
//! request ([`FilterTarget::Received`]); `body`, `eventType`, `channels` for a sent
//! message ([`FilterTarget::Sent`]); `trigger`, `steps` for a flow's run
//! ([`FilterTarget::Flow`]) — or combines whole documents with `$and`, `$or` and
//! `$not`. Under a scope, a **pattern** is matched against a value:
//!
//! - a bare value means equal (numbers by value: `1` equals `1.0`);
//! - an object matches partially: each named field must match its pattern, other
//!   fields are ignored; `{}` is any object; a key made of digits also indexes an array;
//! - an array means "contains all of": each of its patterns matches some element;
//! - `{"$op": operand}` keys test the value itself: `$eq $neq` (deep equality),
//!   `$in $nin` (one of a list; an array value: any of its elements), `$gt $gte $lt
//!   $lte` (numbers, or strings in their byte order, e.g. RFC 3339 times),
//!   `$startsWith $endsWith` (strings), `$contains` (a substring, or an element of an
//!   array), `$exist` (true: the field is present, even as null), `$regex` (a string
//!   matching it, in the linear-time `regex` syntax), `$or $and` (a list of patterns),
//!   `$not` (a pattern); several keys in one object must all hold;
//! - an operand (or a bare value) may be `{"$ref": "body.order.total"}`: the value at
//!   that path of the same request or message (scope first, then field names or array
//!   indexes, separated by dots).
//!
//! A filter is parsed once ([`Filter::parse`]); what is wrong with it is named by the
//! JSON pointer of the bad part ([`FilterError`]), so nothing can fail at match time. A
//! value of the wrong type, or a missing one, simply does not match (except for `$neq`,
//! `$nin` and `$exist: false`, which a missing field satisfies, as in MongoDB). Depth,
//! clause count, list lengths and regular expressions are bounded.
//!
//! Header names are matched without regard to case: the filter's are lowered when it
//! is parsed, and a [`Subject`]'s headers are expected lowered ([`headers_value`]).

use std::cmp::Ordering;
use std::fmt;

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

/// How deep a filter may nest (objects and arrays, from its top level).
pub const MAX_DEPTH: usize = 16;
/// How many clauses (fields, operators, list elements) a filter may have.
pub const MAX_CLAUSES: usize = 256;
/// How many elements a list (`$in`, `$or`, an array pattern...) may have.
pub const MAX_LIST: usize = 64;
/// Longest `$regex`, in characters.
pub const MAX_REGEX_CHARS: usize = 512;
/// What a compiled `$regex` may take in memory.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// What a filter is matched against, which sets the scopes it may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterTarget {
    /// A request a source received: `body`, `headers`, `query`, `path`.
    Received,
    /// A message sent to endpoints: `body` (its payload), `eventType`, `channels`.
    Sent,
    /// A flow's run: `trigger` (what started it) and `steps` (each earlier step's
    /// output by the step's name).
    Flow,
}

impl FilterTarget {
    fn scope(self, name: &str) -> Option<Scope> {
        let scope = match name {
            "body" => Scope::Body,
            "headers" => Scope::Headers,
            "query" => Scope::Query,
            "path" => Scope::Path,
            "eventType" => Scope::EventType,
            "channels" => Scope::Channels,
            "trigger" => Scope::Trigger,
            "steps" => Scope::Steps,
            _ => return None,
        };
        self.scopes().contains(&scope).then_some(scope)
    }

    fn scopes(self) -> &'static [Scope] {
        match self {
            Self::Received => &[Scope::Body, Scope::Headers, Scope::Query, Scope::Path],
            Self::Sent => &[Scope::Body, Scope::EventType, Scope::Channels],
            Self::Flow => &[Scope::Trigger, Scope::Steps],
        }
    }

    fn scope_names(self) -> String {
        self.scopes()
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Body,
    Headers,
    Query,
    Path,
    EventType,
    Channels,
    Trigger,
    Steps,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Self::Body => "body",
            Self::Headers => "headers",
            Self::Query => "query",
            Self::Path => "path",
            Self::EventType => "eventType",
            Self::Channels => "channels",
            Self::Trigger => "trigger",
            Self::Steps => "steps",
        }
    }
}

/// What a filter is matched against; a scope the request or message does not have is
/// `None` (everything under it is missing).
#[derive(Debug, Default, Clone, Copy)]
pub struct Subject<'a> {
    /// The JSON body (a received body that is not JSON is `None`).
    pub body: Option<&'a Value>,
    /// An object of lowered header names to their values ([`headers_value`]).
    pub headers: Option<&'a Value>,
    /// An object of query parameters to their values.
    pub query: Option<&'a Value>,
    /// The path after the receiving URL, as a string.
    pub path: Option<&'a Value>,
    pub event_type: Option<&'a Value>,
    /// The message's channels, an array of strings.
    pub channels: Option<&'a Value>,
    /// A flow run's trigger data.
    pub trigger: Option<&'a Value>,
    /// A flow run's step outputs, an object by step name.
    pub steps: Option<&'a Value>,
}

impl<'a> Subject<'a> {
    fn scope(&self, scope: Scope) -> Option<&'a Value> {
        match scope {
            Scope::Body => self.body,
            Scope::Headers => self.headers,
            Scope::Query => self.query,
            Scope::Path => self.path,
            Scope::EventType => self.event_type,
            Scope::Channels => self.channels,
            Scope::Trigger => self.trigger,
            Scope::Steps => self.steps,
        }
    }
}

/// A received request's values as a filter sees them: built once, matched by as many
/// filters as need it.
#[derive(Debug, Clone)]
pub struct RequestValues {
    body: Option<Value>,
    headers: Value,
    query: Value,
    path: Value,
}

impl RequestValues {
    /// `path` after the receiving URL, the raw `query` string, the headers in arrival
    /// order and the body (matched as JSON when it is JSON, else missing).
    pub fn new<'h>(
        path: &str,
        query: &str,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        body: &[u8],
    ) -> Self {
        Self {
            body: serde_json::from_slice(body).ok(),
            headers: headers_value(headers),
            query: query_value(query),
            path: Value::String(path.to_owned()),
        }
    }

    /// The same values as one JSON object, `{body, headers, query, path}` (what a
    /// flow's run sees of the request); a body that is not JSON is its text (`raw`,
    /// the body the values were built from, decoded lossily).
    pub fn into_json(self, raw: &[u8]) -> Value {
        let body = self
            .body
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(raw).into_owned()));
        serde_json::json!({"body": body, "headers": self.headers, "query": self.query, "path": self.path})
    }

    pub fn subject(&self) -> Subject<'_> {
        Subject {
            body: self.body.as_ref(),
            headers: Some(&self.headers),
            query: Some(&self.query),
            path: Some(&self.path),
            ..Subject::default()
        }
    }
}

/// A filter document as an endpoint keeps it: its JSON text, checked for its target
/// when it was set. Reading an endpoint (each claimed delivery does) parses nothing;
/// fan-out parses the text once per process. Equal when the documents are.
#[derive(Debug, Clone)]
pub struct FilterText(String);

impl FilterText {
    /// Checks `document` for `target` and keeps its text.
    pub fn new(document: &Value, target: FilterTarget) -> Result<Self, FilterError> {
        Filter::parse(document, target)?;
        Ok(Self(document.to_string()))
    }

    /// Text stored by [`FilterText::new`] (read back from the database).
    pub fn from_trusted(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The document (`null` if the text is not JSON, which a stored one always is).
    pub fn document(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

impl PartialEq for FilterText {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || self.document() == other.document()
    }
}

impl Eq for FilterText {}

/// A filter of received requests as a source's options keep it: serialized as its
/// document, and parsed (for [`FilterTarget::Received`]) when deserialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFilter(pub Filter);

impl serde::Serialize for RequestFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.document.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for RequestFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let doc = Value::deserialize(d)?;
        Filter::parse(&doc, FilterTarget::Received)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// Headers as a [`Subject`] wants them: an object of lowered names; a header given
/// more than once is its values joined by `", "`, as HTTP allows.
pub fn headers_value<'h>(headers: impl IntoIterator<Item = (&'h str, &'h str)>) -> Value {
    Value::Object(
        crate::headers::joined(headers)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

/// A query string as an object: each name to its value, or to the list of its values
/// when it is given more than once.
pub fn query_value(query: &str) -> Value {
    let mut map = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
        let v = Value::String(v.into_owned());
        match map.get_mut(k.as_ref()) {
            Some(Value::Array(list)) => list.push(v),
            Some(first) => {
                let first = first.take();
                map.insert(k.into_owned(), Value::Array(vec![first, v]));
            }
            None => {
                map.insert(k.into_owned(), v);
            }
        }
    }
    Value::Object(map)
}

/// Why a filter was refused: the JSON pointer of the bad part (`""` is the whole
/// document) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {pointer:?})")]
pub struct FilterError {
    pub pointer: String,
    pub message: String,
}

/// Why a subject did not match: the pointer of the clause that failed, what it asked
/// for, and the value it found there (`None`: missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub pointer: String,
    pub expected: String,
    pub found: Option<Value>,
}

/// A parsed filter. It keeps the document it was parsed from, which is what is
/// stored and shown.
#[derive(Debug, Clone)]
pub struct Filter {
    document: Value,
    target: FilterTarget,
    root: Node,
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.target == other.target && self.document == other.document
    }
}

impl Eq for Filter {}

impl Filter {
    /// Parses `document` for `target`.
    pub fn parse(document: &Value, target: FilterTarget) -> Result<Self, FilterError> {
        let mut parser = Parser { target, clauses: 0 };
        let root = parser.top(document, String::new(), 0)?;
        Ok(Self {
            document: document.clone(),
            target,
            root,
        })
    }

    /// The document it was parsed from.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Whether `subject` matches.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        self.root.check(None, subject).is_ok()
    }

    /// `Ok` when `subject` matches, else the first clause that did not hold.
    pub fn explain(&self, subject: &Subject<'_>) -> Result<(), Mismatch> {
        self.root.check(None, subject).map_err(|(node, found)| Mismatch {
            pointer: node.at.to_string(),
            expected: node.test.to_string(),
            found: found.cloned(),
        })
    }
}

/// One clause, with the pointer it was parsed from.
#[derive(Debug, Clone)]
struct Node {
    at: Box<str>,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    /// Every one holds (an object pattern, `$and`, the top level).
    All(Vec<Node>),
    /// At least one holds (`$or`).
    Any(Vec<Node>),
    Not(Box<Node>),
    /// The pattern holds for a scope of the subject (top level only).
    Scope(Scope, Box<Node>),
    /// The pattern holds for a field (or an array index) of the value.
    Field(Key, Box<Node>),
    /// The value is an object (the pattern `{}`).
    Object,
    Equal(Operand),
    NotEqual(Operand),
    In(Vec<Operand>),
    NotIn(Vec<Operand>),
    Compare(Cmp, Operand),
    StartsWith(Operand),
    EndsWith(Operand),
    Contains(Operand),
    Exists(bool),
    Regex(Regex),
    /// The value is an array and each pattern holds for some element.
    ContainsAll(Vec<Node>),
}

#[derive(Debug, Clone)]
struct Key {
    name: Box<str>,
    index: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone)]
enum Operand {
    Value(Value),
    /// Another field of the same subject.
    Ref(Scope, Vec<Key>),
}

/// A failed clause and the value it looked at.
type Failed<'n, 'v> = (&'n Node, Option<&'v Value>);

impl Node {
    fn check<'n, 'v>(&'n self, v: Option<&'v Value>, s: &Subject<'v>) -> Result<(), Failed<'n, 'v>> {
        let fail = Err((self, v));
        let holds = match &self.test {
            Test::All(nodes) => {
                for node in nodes {
                    node.check(v, s)?;
                }
                true
            }
            Test::Any(nodes) => nodes.iter().any(|n| n.check(v, s).is_ok()),
            Test::Not(node) => node.check(v, s).is_err(),
            Test::Scope(scope, node) => return node.check(s.scope(*scope), s),
            Test::Field(key, node) => return node.check(v.and_then(|v| key.get(v)), s),
            Test::Object => v.is_some_and(Value::is_object),
            Test::Equal(op) => matches!((v, op.resolve(s)), (Some(v), Some(x)) if json_eq(v, x)),
            Test::NotEqual(op) => !matches!((v, op.resolve(s)), (Some(v), Some(x)) if json_eq(v, x)),
            Test::In(list) => v.is_some_and(|v| is_in(v, list, s)),
            Test::NotIn(list) => !v.is_some_and(|v| is_in(v, list, s)),
            Test::Compare(cmp, op) => match (v, op.resolve(s)) {
                (Some(v), Some(x)) => compare(v, x).is_some_and(|o| cmp.holds(o)),
                _ => false,
            },
            Test::StartsWith(op) => strings(v, op.resolve(s)).is_some_and(|(v, x)| v.starts_with(x)),
            Test::EndsWith(op) => strings(v, op.resolve(s)).is_some_and(|(v, x)| v.ends_with(x)),
            Test::Contains(op) => match (v, op.resolve(s)) {
                (Some(Value::String(v)), Some(Value::String(x))) => v.contains(x.as_str()),
                (Some(Value::Array(items)), Some(x)) => items.iter().any(|item| json_eq(item, x)),
                _ => false,
            },
            Test::Exists(want) => v.is_some() == *want,
            Test::Regex(re) => matches!(v, Some(Value::String(v)) if re.is_match(v)),
            Test::ContainsAll(nodes) => match v {
                Some(Value::Array(items)) => {
                    for node in nodes {
                        if !items.iter().any(|item| node.check(Some(item), s).is_ok()) {
                            return Err((node, v));
                        }
                    }
                    true
                }
                _ => false,
            },
        };
        if holds { Ok(()) } else { fail }
    }
}

impl Key {
    fn parse(name: &str) -> Self {
        Self {
            name: name.into(),
            index: name
                .parse()
                .ok()
                .filter(|_| name.bytes().all(|b| b.is_ascii_digit())),
        }
    }

    fn get<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        match v {
            Value::Object(map) => map.get(&*self.name),
            Value::Array(items) => self.index.and_then(|i| items.get(i)),
            _ => None,
        }
    }
}

impl Cmp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Self::Gt => o == Ordering::Greater,
            Self::Gte => o != Ordering::Less,
            Self::Lt => o == Ordering::Less,
            Self::Lte => o != Ordering::Greater,
        }
    }
}

impl Operand {
    fn resolve<'a, 'v>(&'a self, s: &Subject<'v>) -> Option<&'a Value>
    where
        'v: 'a,
    {
        match self {
            Self::Value(v) => Some(v),
            Self::Ref(scope, path) => path.iter().try_fold(s.scope(*scope)?, |v, key| key.get(v)),
        }
    }
}

fn is_in(v: &Value, list: &[Operand], s: &Subject<'_>) -> bool {
    let one = |v: &Value| list.iter().any(|op| op.resolve(s).is_some_and(|x| json_eq(v, x)));
    match v {
        Value::Array(items) => items.iter().any(one),
        v => one(v),
    }
}

fn strings<'a>(v: Option<&'a Value>, x: Option<&'a Value>) -> Option<(&'a str, &'a str)> {
    match (v?, x?) {
        (Value::String(v), Value::String(x)) => Some((v, x)),
        _ => None,
    }
}

/// JSON equality with numbers compared by value.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Ordering::Equal),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The order of two numbers or two strings; `None` for any other pair.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
                Some(a.cmp(&b))
            } else if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
                Some(a.cmp(&b))
            } else {
                a.as_f64()?.partial_cmp(&b.as_f64()?)
            }
        }
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All(_) | Self::Scope(..) | Self::Field(..) => f.write_str("every clause to hold"),
            Self::Any(_) => f.write_str("one of the alternatives ($or) to hold"),
            Self::Not(_) => f.write_str("the pattern under $not not to hold"),
            Self::Object => f.write_str("an object"),
            Self::Equal(x) => write!(f, "a value equal to {x}"),
            Self::NotEqual(x) => write!(f, "a value other than {x}"),
            Self::In(list) => write!(f, "one of {}", list_text(list)),
            Self::NotIn(list) => write!(f, "none of {}", list_text(list)),
            Self::Compare(cmp, x) => {
                let op = match cmp {
                    Cmp::Gt => ">",
                    Cmp::Gte => ">=",
                    Cmp::Lt => "<",
                    Cmp::Lte => "<=",
                };
                write!(f, "a number or string {op} {x}")
            }
            Self::StartsWith(x) => write!(f, "a string starting with {x}"),
            Self::EndsWith(x) => write!(f, "a string ending with {x}"),
            Self::Contains(x) => write!(f, "a string or array containing {x}"),
            Self::Exists(true) => f.write_str("the field to be present"),
            Self::Exists(false) => f.write_str("the field to be absent"),
            Self::Regex(re) => write!(f, "a string matching /{}/", re.as_str()),
            Self::ContainsAll(_) => f.write_str("an array with an element matching this pattern"),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(v) => write!(f, "{v}"),
            Self::Ref(scope, path) => {
                write!(f, "the value at {}", scope.name())?;
                for key in path {
                    write!(f, ".{}", key.name)?;
                }
                Ok(())
            }
        }
    }
}

fn list_text(list: &[Operand]) -> String {
    let items: Vec<String> = list.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// A JSON pointer one step below `at`.
fn below(at: &str, key: &str) -> String {
    format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn error(at: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        pointer: at.to_owned(),
        message: message.into(),
    }
}

struct Parser {
    target: FilterTarget,
    clauses: usize,
}

impl Parser {
    /// Counts one more clause, refused past [`MAX_CLAUSES`].
    fn count(&mut self, at: &str) -> Result<(), FilterError> {
        self.clauses += 1;
        if self.clauses > MAX_CLAUSES {
            return Err(error(at, format!("a filter has at most {MAX_CLAUSES} clauses")));
        }
        Ok(())
    }

    fn node(&mut self, at: String, depth: usize, test: Test) -> Result<Node, FilterError> {
        self.count(&at)?;
        if depth > MAX_DEPTH {
            return Err(error(
                &at,
                format!("a filter nests at most {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(Node { at: at.into(), test })
    }

    /// A whole document: scopes, or `$and`/`$or`/`$not` of whole documents.
    fn top(&mut self, doc: &Value, at: String, depth: usize) -> Result<Node, FilterError> {
        let Value::Object(map) = doc else {
            return Err(error(
                &at,
                format!(
                    "a filter is an object of scopes ({}) or $and, $or, $not",
                    self.target.scope_names()
                ),
            ));
        };
        let mut all = Vec::with_capacity(map.len());
        for (key, value) in map {
            let here = below(&at, key);
            let node = match key.as_str() {
                "$and" | "$or" => {
                    let items = self.list(value, &here)?;
                    let nodes = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.top(item, below(&here, &i.to_string()), depth + 2))
                        .collect::<Result<Vec<_>, _>>()?;
                    let test = if key == "$and" {
                        Test::All(nodes)
                    } else {
                        Test::Any(nodes)
                    };
                    self.node(here, depth + 1, test)?
                }
                "$not" => {
                    let inner = self.top(value, here.clone(), depth + 1)?;
                    self.node(here, depth + 1, Test::Not(Box::new(inner)))?
                }
                name => {
                    let Some(scope) = self.target.scope(name) else {
                        return Err(error(
                            &here,
                            format!(
                                "unknown scope {name:?}: one of {}, or $and, $or, $not",
                                self.target.scope_names()
                            ),
                        ));
                    };
                    let pattern = if scope == Scope::Headers {
                        self.pattern(&lower_keys(value), here.clone(), depth + 1)?
                    } else {
                        self.pattern(value, here.clone(), depth + 1)?
                    };
                    self.node(here, depth + 1, Test::Scope(scope, Box::new(pattern)))?
                }
            };
            all.push(node);
        }
        self.node(at, depth, Test::All(all))
    }

    /// A list operand: an array of at most [`MAX_LIST`] items.
    fn list<'v>(&self, value: &'v Value, at: &str) -> Result<&'v [Value], FilterError> {
        match value {
            Value::Array(items) if items.len() > MAX_LIST => {
                Err(error(at, format!("a list has at most {MAX_LIST} items")))
            }
            Value::Array(items) => Ok(items),
            _ => Err(error(at, "a list (an array) is expected")),
        }
    }

    fn pattern(&mut self, value: &Value, at: String, depth: usize) -> Result<Node, FilterError> {
        match value {
            Value::Object(map) => {
                if let Some(op) = self.reference(map, &at)? {
                    return self.node(at, depth, Test::Equal(op));
                }
                if map.is_empty() {
                    return self.node(at, depth, Test::Object);
                }
                let mut all = Vec::with_capacity(map.len());
                for (key, v) in map {
                    let here = below(&at, key);
                    let node = if key.starts_with('$') {
                        self.operator(key, v, here, depth + 1)?
                    } else {
                        let inner = self.pattern(v, here.clone(), depth + 1)?;
                        self.node(here, depth + 1, Test::Field(Key::parse(key), Box::new(inner)))?
                    };
                    all.push(node);
                }
                self.node(at, depth, Test::All(all))
            }
            Value::Array(items) => {
                if items.len() > MAX_LIST {
                    return Err(error(&at, format!("a list has at most {MAX_LIST} items")));
                }
                let nodes = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.pattern(item, below(&at, &i.to_string()), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                self.node(at, depth, Test::ContainsAll(nodes))
            }
            scalar => self.node(at, depth, Test::Equal(Operand::Value(scalar.clone()))),
        }
    }

    fn operator(&mut self, op: &str, v: &Value, at: String, depth: usize) -> Result<Node, FilterError> {
        let test = match op {
            "$eq" => Test::Equal(self.operand(v, &at)?),
            "$neq" => Test::NotEqual(self.operand(v, &at)?),
            "$in" | "$nin" => {
                let items = self.list(v, &at)?;
                let mut list = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let here = below(&at, &i.to_string());
                    self.count(&here)?;
                    list.push(self.operand(item, &here)?);
                }
                if op == "$in" {
                    Test::In(list)
                } else {
                    Test::NotIn(list)
                }
            }
            "$gt" | "$gte" | "$lt" | "$lte" => {
                let x = self.operand(v, &at)?;
                if let Operand::Value(x) = &x
                    && !(x.is_number() || x.is_string())
                {
                    return Err(error(&at, format!("{op} compares with a number or a string")));
                }
                let cmp = match op {
                    "$gt" => Cmp::Gt,
                    "$gte" => Cmp::Gte,
                    "$lt" => Cmp::Lt,
                    _ => Cmp::Lte,
                };
                Test::Compare(cmp, x)
            }
            "$startsWith" | "$endsWith" => {
                let x = self.operand(v, &at)?;
                if let Operand::Value(x) = &x
                    && !x.is_string()
                {
                    return Err(error(&at, format!("{op} takes a string")));
                }
                if op == "$startsWith" {
                    Test::StartsWith(x)
                } else {
                    Test::EndsWith(x)
                }
            }
            "$contains" => Test::Contains(self.operand(v, &at)?),
            "$exist" => match v {
                Value::Bool(b) => Test::Exists(*b),
                _ => return Err(error(&at, "$exist takes true or false")),
            },
            "$regex" => {
                let Value::String(pattern) = v else {
                    return Err(error(&at, "$regex takes a regular expression as a string"));
                };
                if pattern.chars().count() > MAX_REGEX_CHARS {
                    return Err(error(
                        &at,
                        format!("a $regex has at most {MAX_REGEX_CHARS} characters"),
                    ));
                }
                let re = RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| error(&at, format!("not a valid regular expression: {}", first_line(&e))))?;
                Test::Regex(re)
            }
            "$or" | "$and" => {
                let items = self.list(v, &at)?;
                let nodes = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.pattern(item, below(&at, &i.to_string()), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                if op == "$or" {
                    Test::Any(nodes)
                } else {
                    Test::All(nodes)
                }
            }
            "$not" => Test::Not(Box::new(self.pattern(v, at.clone(), depth + 1)?)),
            "$ref" => {
                return Err(error(&at, "$ref stands alone: {\"$ref\": \"body.field\"}"));
            }
            other => {
                return Err(error(
                    &at,
                    format!(
                        "unknown operator {other:?}: $eq $neq $in $nin $gt $gte $lt $lte $startsWith \
                         $endsWith $contains $exist $regex $or $and $not, or $ref"
                    ),
                ));
            }
        };
        self.node(at, depth, test)
    }

    /// A value to compare with: a JSON value, or `{"$ref": "scope.path"}`.
    fn operand(&self, v: &Value, at: &str) -> Result<Operand, FilterError> {
        if let Value::Object(map) = v
            && let Some(op) = self.reference(map, at)?
        {
            return Ok(op);
        }
        Ok(Operand::Value(v.clone()))
    }

    /// `Some` when `map` is `{"$ref": ...}`.
    fn reference(&self, map: &Map<String, Value>, at: &str) -> Result<Option<Operand>, FilterError> {
        let Some(path) = map.get("$ref") else {
            return Ok(None);
        };
        let at = below(at, "$ref");
        if map.len() != 1 {
            return Err(error(&at, "$ref stands alone in its object"));
        }
        let Value::String(path) = path else {
            return Err(error(&at, "$ref takes a path such as \"body.order.id\""));
        };
        let mut parts = path.split('.');
        let scope = parts.next().and_then(|s| self.target.scope(s)).ok_or_else(|| {
            error(
                &at,
                format!("a $ref path starts with a scope: {}", self.target.scope_names()),
            )
        })?;
        let keys: Vec<Key> = parts.map(Key::parse).collect();
        if keys.iter().any(|k| k.name.is_empty()) {
            return Err(error(&at, "a $ref path has no empty part"));
        }
        if keys.len() > MAX_DEPTH {
            return Err(error(&at, format!("a $ref path has at most {MAX_DEPTH} parts")));
        }
        let keys = if scope == Scope::Headers {
            keys.into_iter()
                .map(|k| Key::parse(&k.name.to_ascii_lowercase()))
                .collect()
        } else {
            keys
        };
        Ok(Some(Operand::Ref(scope, keys)))
    }
}

/// The headers pattern with its field names lowered (operators kept as they are).
fn lower_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let k = if k.starts_with('$') {
                        k.clone()
                    } else {
                        k.to_ascii_lowercase()
                    };
                    (k, v.clone())
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn first_line(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sent(filter: Value) -> Filter {
        Filter::parse(&filter, FilterTarget::Sent).unwrap()
    }

    fn body_matches(filter: Value, body: Value) -> bool {
        sent(filter).matches(&Subject {
            body: Some(&body),
            ..Subject::default()
        })
    }

    fn refused(filter: Value, target: FilterTarget) -> FilterError {
        Filter::parse(&filter, target).unwrap_err()
    }

    #[test]
    fn a_flow_filter_sees_the_trigger_and_earlier_steps_outputs() {
        let f = Filter::parse(
            &json!({"trigger": {"body": {"amount_paid": {"$gte": 1000}}},
                    "steps": {"customer": {"status": {"$ne": "closed"}}}}),
            FilterTarget::Flow,
        );
        // `$ne` is not an operator: refused at its pointer, like any other filter.
        assert_eq!(f.unwrap_err().pointer, "/steps/customer/status/$ne");
        let f = Filter::parse(
            &json!({"trigger": {"body": {"amount_paid": {"$gte": 1000}}},
                    "steps": {"customer": {"status": {"$ref": "trigger.body.status"}}}}),
            FilterTarget::Flow,
        )
        .unwrap();
        let trigger = json!({"body": {"amount_paid": 1500, "status": "active"}});
        let steps = json!({"customer": {"status": "active"}});
        let run = |trigger: &Value, steps: &Value| {
            f.explain(&Subject {
                trigger: Some(trigger),
                steps: Some(steps),
                ..Subject::default()
            })
        };
        assert_eq!(run(&trigger, &steps), Ok(()));
        let small = json!({"body": {"amount_paid": 999, "status": "active"}});
        assert_eq!(
            run(&small, &steps).unwrap_err().pointer,
            "/trigger/body/amount_paid/$gte"
        );
        assert!(
            run(&trigger, &json!({})).is_err(),
            "a step that did not run has no output"
        );
        // A flow filter names the flow's scopes only.
        assert_eq!(
            refused(json!({"body": {"a": 1}}), FilterTarget::Flow).pointer,
            "/body"
        );
        assert_eq!(
            refused(json!({"trigger": {}}), FilterTarget::Sent).pointer,
            "/trigger"
        );
    }

    #[test]
    fn query_strings_become_objects() {
        assert_eq!(
            query_value("?a=1&b=%20x&a=2&a=3"),
            json!({"a": ["1", "2", "3"], "b": " x"})
        );
        assert_eq!(query_value(""), json!({}));
    }

    #[test]
    fn bare_values_nested_objects_and_arrays() {
        let order = json!({"type": "order.paid", "total": 120, "customer": {"country": "NL", "vip": true},
            "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}], "tags": ["gift", "eu"]});
        assert!(body_matches(
            json!({"body": {"type": "order.paid"}}),
            order.clone()
        ));
        assert!(
            body_matches(json!({"body": {"total": 120.0}}), order.clone()),
            "numbers by value"
        );
        assert!(body_matches(
            json!({"body": {"customer": {"country": "NL"}}}),
            order.clone()
        ));
        assert!(!body_matches(
            json!({"body": {"customer": {"country": "DE"}}}),
            order.clone()
        ));
        assert!(
            body_matches(json!({"body": {"tags": ["eu"]}}), order.clone()),
            "contains all of"
        );
        assert!(!body_matches(
            json!({"body": {"tags": ["eu", "us"]}}),
            order.clone()
        ));
        assert!(body_matches(
            json!({"body": {"items": [{"sku": "b"}]}}),
            order.clone()
        ));
        assert!(
            body_matches(json!({"body": {"items": {"1": {"qty": 2}}}}), order.clone()),
            "an index"
        );
        assert!(
            body_matches(json!({"body": {"customer": {}}}), order.clone()),
            "an empty object is any object"
        );
        assert!(!body_matches(json!({"body": {"total": {}}}), order.clone()));
        assert!(
            !body_matches(json!({"body": {"missing": null}}), order.clone()),
            "null is not missing"
        );
        assert!(body_matches(json!({"body": {"x": null}}), json!({"x": null})));
        assert!(
            body_matches(json!({}), order),
            "an empty filter matches everything"
        );
    }

    #[test]
    fn operators() {
        let b = json!({"n": 5, "s": "invoice.paid", "at": "2026-12-01T10:00:00Z", "list": [1, 2, 3], "nul": null});
        let m = |f: Value| body_matches(json!({ "body": f }), b.clone());
        assert!(m(json!({"n": {"$gt": 4, "$lte": 5}})));
        assert!(!m(json!({"n": {"$gt": 5}})));
        assert!(m(json!({"n": {"$gte": 5.0, "$lt": 5.5}})));
        assert!(
            m(json!({"at": {"$gte": "2026-12-01", "$lt": "2026-12-02"}})),
            "strings in order"
        );
        assert!(!m(json!({"s": {"$gt": 1}})), "a wrong type does not match");
        assert!(m(json!({"n": {"$eq": 5}, "s": {"$neq": "invoice.failed"}})));
        assert!(m(json!({"missing": {"$neq": 1}})), "a missing field is not equal");
        assert!(m(json!({"n": {"$in": [1, 5]}, "list": {"$in": [3, 9]}})));
        assert!(!m(json!({"n": {"$nin": [5]}})));
        assert!(m(json!({"missing": {"$nin": [5]}})));
        assert!(m(
            json!({"s": {"$startsWith": "invoice.", "$endsWith": ".paid", "$contains": "ce.p"}})
        ));
        assert!(m(json!({"list": {"$contains": 2}})));
        assert!(!m(json!({"n": {"$startsWith": "5"}})));
        assert!(m(json!({"nul": {"$exist": true}, "missing": {"$exist": false}})));
        assert!(!m(json!({"n": {"$exist": false}})));
        assert!(m(json!({"s": {"$regex": "^invoice\\.(paid|failed)$"}})));
        assert!(!m(json!({"n": {"$regex": "5"}})));
        assert!(m(json!({"n": {"$or": [{"$lt": 0}, {"$gt": 4}]}})));
        assert!(!m(json!({"n": {"$and": [{"$gt": 0}, {"$gt": 6}]}})));
        assert!(m(json!({"n": {"$not": {"$gt": 6}}})));
        assert!(m(json!({"list": {"$eq": [1, 2, 3]}})), "$eq is exact on arrays");
        assert!(!m(json!({"list": {"$eq": [1, 2]}})));
    }

    #[test]
    fn refs_compare_with_another_field() {
        let b = json!({"paid": 100, "due": 100, "limit": 50, "id": "a1", "parent": {"id": "a1"}});
        let m = |f: Value| body_matches(json!({ "body": f }), b.clone());
        assert!(m(json!({"paid": {"$ref": "body.due"}})));
        assert!(m(json!({"paid": {"$gt": {"$ref": "body.limit"}}})));
        assert!(m(json!({"id": {"$eq": {"$ref": "body.parent.id"}}})));
        assert!(!m(json!({"paid": {"$ref": "body.limit"}})));
        assert!(
            !m(json!({"paid": {"$ref": "body.nothing"}})),
            "a missing ref does not match"
        );
        assert!(m(json!({"paid": {"$in": [1, {"$ref": "body.due"}]}})));
    }

    #[test]
    fn scopes_of_a_received_request_and_a_sent_message() {
        let headers = headers_value([("X-GitHub-Event", "push"), ("Accept", "a"), ("accept", "b")]);
        let query = json!({"shop": "acme"});
        let path = json!("/orders");
        let body = json!({"ref": "refs/heads/main"});
        let s = Subject {
            body: Some(&body),
            headers: Some(&headers),
            query: Some(&query),
            path: Some(&path),
            ..Subject::default()
        };
        let f = |v: Value| Filter::parse(&v, FilterTarget::Received).unwrap().matches(&s);
        assert!(f(json!({"headers": {"x-github-event": "push"}})));
        assert!(
            f(json!({"headers": {"X-GITHUB-EVENT": "push"}})),
            "names in any case"
        );
        assert!(
            f(json!({"headers": {"accept": "a, b"}})),
            "repeated headers joined"
        );
        assert!(f(
            json!({"query": {"shop": "acme"}, "path": {"$startsWith": "/ord"}})
        ));
        assert!(f(
            json!({"$or": [{"headers": {"x-github-event": "ping"}}, {"body": {"ref": {"$endsWith": "/main"}}}]})
        ));
        assert!(!f(json!({"$not": {"headers": {"x-github-event": "push"}}})));
        assert!(!f(
            json!({"body": {"ref": {"$contains": {"$ref": "query.nothing"}}}})
        ));

        let et = json!("invoice.paid");
        let ch = json!(["eu", "tenant-1"]);
        let msg = Subject {
            body: Some(&body),
            event_type: Some(&et),
            channels: Some(&ch),
            ..Subject::default()
        };
        assert!(sent(json!({"eventType": {"$startsWith": "invoice."}, "channels": ["eu"]})).matches(&msg));
        assert!(!sent(json!({"channels": {"$contains": "us"}})).matches(&msg));
        assert!(
            !sent(json!({"body": {"ref": "x"}})).matches(&Subject::default()),
            "no body: missing"
        );
    }

    #[test]
    fn errors_name_the_pointer_of_the_bad_part() {
        use FilterTarget::{Received, Sent};
        let e = refused(json!({"headers": {"a": 1}}), Sent);
        assert_eq!(e.pointer, "/headers");
        assert!(e.message.contains("eventType"), "{e}");
        assert_eq!(refused(json!([1]), Sent).pointer, "");
        assert_eq!(
            refused(json!({"body": {"a": {"$gt": true}}}), Received).pointer,
            "/body/a/$gt"
        );
        assert_eq!(
            refused(json!({"body": {"a": {"$nope": 1}}}), Received).pointer,
            "/body/a/$nope"
        );
        assert_eq!(
            refused(json!({"body": {"a": {"$in": 1}}}), Received).pointer,
            "/body/a/$in"
        );
        assert_eq!(
            refused(json!({"body": {"a": {"$exist": "yes"}}}), Received).pointer,
            "/body/a/$exist"
        );
        let e = refused(json!({"body": {"a/b": {"$regex": "("}}}), Received);
        assert_eq!(e.pointer, "/body/a~1b/$regex");
        assert!(e.message.starts_with("not a valid regular expression"), "{e}");
        let e = refused(json!({"body": {"a": {"$ref": "nowhere.x"}}}), Received);
        assert_eq!(e.pointer, "/body/a/$ref");
        assert_eq!(
            refused(json!({"body": {"a": {"$ref": "body.x", "b": 1}}}), Received).pointer,
            "/body/a/$ref"
        );
        assert_eq!(
            refused(json!({"$or": [{"body": 1}, {"nope": 1}]}), Received).pointer,
            "/$or/1/nope"
        );
        assert_eq!(
            refused(json!({"body": {"a": {"$startsWith": 1}}}), Received).pointer,
            "/body/a/$startsWith"
        );
    }

    #[test]
    fn hostile_filters_are_refused() {
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "a": deep });
        }
        let e = refused(json!({ "body": deep }), FilterTarget::Sent);
        assert!(e.message.contains("levels deep"), "{e}");
        assert!(e.pointer.starts_with("/body/a/a/a"), "{}", e.pointer);

        let wide: Map<String, Value> = (0..300).map(|i| (format!("f{i}"), json!(i))).collect();
        let e = refused(json!({ "body": wide }), FilterTarget::Sent);
        assert!(e.message.contains("clauses"), "{e}");

        let e = refused(
            json!({"body": {"a": {"$in": (0..1000).collect::<Vec<_>>()}}}),
            FilterTarget::Sent,
        );
        assert_eq!(e.pointer, "/body/a/$in");
        let e = refused(
            json!({"body": {"a": {"$regex": "a".repeat(600)}}}),
            FilterTarget::Sent,
        );
        assert!(e.message.contains("at most"), "{e}");
        let e = refused(
            json!({"body": {"a": {"$regex": "(\\w{100}){100}"}}}),
            FilterTarget::Sent,
        );
        assert_eq!(e.pointer, "/body/a/$regex", "too big once compiled");
    }

    #[test]
    fn explain_names_the_failing_clause() {
        let f = sent(json!({"body": {"total": {"$gt": 100}, "country": "NL"}}));
        let body = json!({"total": 50, "country": "NL"});
        let why = f
            .explain(&Subject {
                body: Some(&body),
                ..Subject::default()
            })
            .unwrap_err();
        assert_eq!(why.pointer, "/body/total/$gt");
        assert_eq!(why.expected, "a number or string > 100");
        assert_eq!(why.found, Some(json!(50)));
        let body = json!({"total": 150, "country": "NL"});
        assert!(
            f.explain(&Subject {
                body: Some(&body),
                ..Subject::default()
            })
            .is_ok()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i32>().prop_map(|n| json!(n)),
                (-1e6f64..1e6).prop_map(|n| json!(n)),
                "[a-z$]{0,6}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// Any JSON, including operator-shaped objects, as a candidate filter body.
        fn any_filter() -> impl Strategy<Value = Value> {
            let leaf = json_value();
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop::collection::btree_map(
                    prop_oneof![
                        "[a-z]{1,3}",
                        Just("$eq".to_owned()),
                        Just("$gt".to_owned()),
                        Just("$in".to_owned()),
                        Just("$or".to_owned()),
                        Just("$not".to_owned()),
                        Just("$regex".to_owned()),
                        Just("$contains".to_owned()),
                        Just("$ref".to_owned()),
                        Just("$exist".to_owned()),
                    ],
                    inner,
                    0..4,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect()))
            })
        }

        /// A document with no `$`-keyed objects (those would read as operators).
        fn plain_document() -> impl Strategy<Value = Value> {
            json_value().prop_filter("no operator keys", |v| !has_dollar_key(v))
        }

        fn has_dollar_key(v: &Value) -> bool {
            match v {
                Value::Object(m) => m.iter().any(|(k, v)| k.starts_with('$') || has_dollar_key(v)),
                Value::Array(a) => a.iter().any(has_dollar_key),
                _ => false,
            }
        }

        fn within_limits(v: &Value) -> bool {
            Filter::parse(&json!({ "body": v }), FilterTarget::Sent).is_ok()
        }

        proptest! {
            #[test]
            fn a_filter_made_of_a_document_matches_it(doc in plain_document()) {
                prop_assume!(within_limits(&doc));
                let f = sent(json!({ "body": doc.clone() }));
                let subject = Subject { body: Some(&doc), ..Subject::default() };
                prop_assert!(f.matches(&subject));
            }

            #[test]
            fn not_inverts(filter in any_filter(), doc in json_value()) {
                let Ok(f) = Filter::parse(&json!({ "body": filter.clone() }), FilterTarget::Sent) else {
                    return Ok(());
                };
                let Ok(not) = Filter::parse(&json!({"$not": { "body": filter }}), FilterTarget::Sent) else {
                    return Ok(());
                };
                let s = Subject { body: Some(&doc), ..Subject::default() };
                prop_assert_ne!(f.matches(&s), not.matches(&s));
            }

            #[test]
            fn no_filter_and_no_value_panics(filter in any_filter(), doc in json_value()) {
                if let Ok(f) = Filter::parse(&json!({ "body": filter }), FilterTarget::Received) {
                    let s = Subject { body: Some(&doc), headers: Some(&doc), query: Some(&doc), path: Some(&doc), ..Subject::default() };
                    let _ = f.matches(&s);
                    let _ = f.explain(&s);
                }
            }
        }
    }
}
