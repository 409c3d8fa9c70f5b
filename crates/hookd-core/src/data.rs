//! The data API's domain: JSON merge-patch and increments of documents, body schemas,
//! leaderboard policies and periods, and the operations a portal mode can bind.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike as _, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::InvalidValue;

/// Applies a JSON merge patch (RFC 7386) to `target`: object members are merged
/// recursively, `null` removes a member, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Adds each of `deltas` (`{"field": number}`) to the document's top-level numeric
/// fields; a missing field counts from 0. Integers stay exact (an overflow is refused);
/// a float on either side makes the result a float.
pub fn increment(document: &mut Map<String, Value>, deltas: &Map<String, Value>) -> Result<(), InvalidValue> {
    if deltas.is_empty() {
        return Err(InvalidValue::new("name at least one field to increment"));
    }
    for (field, delta) in deltas {
        let Value::Number(delta) = delta else {
            return Err(InvalidValue::new(format!(
                "the increment of `{field}` must be a number"
            )));
        };
        let current = match document.get(field) {
            None | Some(Value::Null) => serde_json::Number::from(0),
            Some(Value::Number(n)) => n.clone(),
            Some(_) => {
                return Err(InvalidValue::new(format!(
                    "`{field}` holds something other than a number; it cannot be incremented"
                )));
            }
        };
        let sum = match (current.as_i64(), delta.as_i64()) {
            (Some(a), Some(b)) => a
                .checked_add(b)
                .map(serde_json::Number::from)
                .ok_or_else(|| InvalidValue::new(format!("incrementing `{field}` would overflow")))?,
            _ => {
                let total = current.as_f64().unwrap_or(0.0) + delta.as_f64().unwrap_or(0.0);
                serde_json::Number::from_f64(total).ok_or_else(|| {
                    InvalidValue::new(format!("incrementing `{field}` gives no finite number"))
                })?
            }
        };
        document.insert(field.clone(), Value::Number(sum));
    }
    Ok(())
}

/// A compiled JSON Schema that request bodies or documents must satisfy. References
/// are resolved only within the schema itself: nothing is fetched.
pub struct BodySchema {
    validator: jsonschema::Validator,
}

impl fmt::Debug for BodySchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodySchema(..)")
    }
}

impl BodySchema {
    pub fn compile(schema: &Value) -> Result<Self, InvalidValue> {
        if !(schema.is_object() || schema.is_boolean()) {
            return Err(InvalidValue::new("a JSON Schema is an object (or a boolean)"));
        }
        jsonschema::validator_for(schema)
            .map(|validator| Self { validator })
            .map_err(|e| InvalidValue::new(format!("not a usable JSON Schema: {e}")))
    }

    /// `Err` with one message per violation (at most ten), each naming where.
    pub fn check(&self, instance: &Value) -> Result<(), Vec<String>> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(instance)
            .take(10)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

/// How a new score combines with a player's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScorePolicy {
    /// Keep the better of the two (by the board's order).
    #[default]
    Best,
    /// Keep the newest.
    Latest,
    /// Add them up.
    Sum,
}

/// Which scores rank first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreOrder {
    /// Higher is better (points).
    #[default]
    Desc,
    /// Lower is better (times).
    Asc,
}

impl ScoreOrder {
    /// Whether `a` ranks strictly before `b`.
    pub fn better(self, a: i64, b: i64) -> bool {
        match self {
            Self::Desc => a > b,
            Self::Asc => a < b,
        }
    }
}

/// When a leaderboard starts over by itself (calendar periods in UTC; weeks start on
/// Monday, as ISO 8601).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResetPeriod {
    #[default]
    Never,
    Daily,
    Weekly,
    Monthly,
}

/// The largest score magnitude: integers a JavaScript client reads exactly (2^53 - 1).
pub const MAX_SCORE: i64 = (1 << 53) - 1;

/// Checks a submitted score's magnitude.
pub fn check_score(score: i64) -> Result<i64, InvalidValue> {
    // Not `abs()`: `i64::MIN` has none.
    if !(-MAX_SCORE..=MAX_SCORE).contains(&score) {
        Err(InvalidValue::new(format!(
            "a score is an integer within ±{MAX_SCORE}"
        )))
    } else {
        Ok(score)
    }
}

/// The score a player has after submitting `new` under `policy`, or `None` when the
/// current score stays (a worse score under `best`).
pub fn combine_score(
    policy: ScorePolicy,
    order: ScoreOrder,
    current: Option<i64>,
    new: i64,
) -> Result<Option<i64>, InvalidValue> {
    check_score(new)?;
    match (policy, current) {
        (_, None) | (ScorePolicy::Latest, _) => Ok(Some(new)),
        (ScorePolicy::Best, Some(old)) => Ok(order.better(new, old).then_some(new)),
        (ScorePolicy::Sum, Some(old)) => check_score(old + new)
            .map(Some)
            .map_err(|_| InvalidValue::new(format!("the sum of scores would pass ±{MAX_SCORE}"))),
    }
}

impl ScoreOrder {
    /// A key that sorts ascending in rank order (best first), for indexes.
    pub fn rank_key(self, score: i64) -> i64 {
        match self {
            Self::Desc => -score,
            Self::Asc => score,
        }
    }
}

/// A leaderboard period as a caller names it: a key [`period_key`] makes (`all`,
/// `2026-11-23`, `2026-W48`, `2026-11`), 1 to 16 letters, digits and `-`. A key of a
/// period that never had a score is valid; it simply has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeriodKey(String);

impl PeriodKey {
    /// Longest key accepted.
    pub const MAX_LEN: usize = 16;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PeriodKey {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty()
            || s.len() > Self::MAX_LEN
            || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(InvalidValue::new(
                "a period key such as 2026-11-22, 2026-W47, 2026-10 or all",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for PeriodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key of the period a score submitted at `at` belongs to: `all` on a board that
/// never resets by itself, else the calendar period: `2026-11-23`, `2026-W48`,
/// `2026-11`.
pub fn period_key(reset: ResetPeriod, at: DateTime<Utc>) -> String {
    match reset {
        ResetPeriod::Never => "all".into(),
        ResetPeriod::Daily => at.format("%Y-%m-%d").to_string(),
        ResetPeriod::Weekly => {
            let week = at.iso_week();
            format!("{}-W{:02}", week.year(), week.week())
        }
        ResetPeriod::Monthly => at.format("%Y-%m").to_string(),
    }
}

/// What a portal mode does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModeOperation {
    /// Answers the document `{data}` of the collection.
    #[serde(rename = "document.get")]
    DocumentGet,
    /// Creates or replaces the document `{data}` with the body.
    #[serde(rename = "document.put")]
    DocumentPut,
    /// Merge-patches the document `{data}` with the body (creating it when missing).
    #[serde(rename = "document.patch")]
    DocumentPatch,
    /// Adds the body's numbers (`{"coins": 5}`) to the document `{data}`.
    #[serde(rename = "document.increment")]
    DocumentIncrement,
    #[serde(rename = "document.delete")]
    DocumentDelete,
    /// Lists documents whose key starts with `{data}` (query: `limit`, `iterator`,
    /// and `field=value` equality filters).
    #[serde(rename = "document.list")]
    DocumentList,
    /// Submits the body's `score` for player `{data}`.
    #[serde(rename = "leaderboard.submit")]
    LeaderboardSubmit,
    /// The top `limit` (query) of the current period.
    #[serde(rename = "leaderboard.top")]
    LeaderboardTop,
    /// Player `{data}`'s rank and `neighbours` (query) above and below.
    #[serde(rename = "leaderboard.rank")]
    LeaderboardRank,
    /// Publishes the body as a message of event type `{data}` to the application's
    /// endpoints.
    #[serde(rename = "message.publish")]
    MessagePublish,
    /// Keeps the raw request (method, headers, query, body) as a new document.
    #[serde(rename = "capture")]
    Capture,
    /// Runs the flows whose trigger is this mode (`{"type": "mode"}`), with the body
    /// (JSON, or a form) as the run's `trigger.body`; answers the flow's `response`.
    #[serde(rename = "flow.run")]
    FlowRun,
}

/// What a mode's target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeTarget {
    Collection,
    Leaderboard,
    /// The application itself (publishing a message).
    Application,
}

impl ModeOperation {
    pub const ALL: [Self; 12] = [
        Self::DocumentGet,
        Self::DocumentPut,
        Self::DocumentPatch,
        Self::DocumentIncrement,
        Self::DocumentDelete,
        Self::DocumentList,
        Self::LeaderboardSubmit,
        Self::LeaderboardTop,
        Self::LeaderboardRank,
        Self::MessagePublish,
        Self::Capture,
        Self::FlowRun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DocumentGet => "document.get",
            Self::DocumentPut => "document.put",
            Self::DocumentPatch => "document.patch",
            Self::DocumentIncrement => "document.increment",
            Self::DocumentDelete => "document.delete",
            Self::DocumentList => "document.list",
            Self::LeaderboardSubmit => "leaderboard.submit",
            Self::LeaderboardTop => "leaderboard.top",
            Self::LeaderboardRank => "leaderboard.rank",
            Self::MessagePublish => "message.publish",
            Self::Capture => "capture",
            Self::FlowRun => "flow.run",
        }
    }

    /// Whether the operation changes data (needs the `write` scope and costs a write).
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            Self::DocumentGet | Self::DocumentList | Self::LeaderboardTop | Self::LeaderboardRank
        )
    }

    pub fn target(self) -> ModeTarget {
        match self {
            Self::LeaderboardSubmit | Self::LeaderboardTop | Self::LeaderboardRank => ModeTarget::Leaderboard,
            Self::MessagePublish | Self::FlowRun => ModeTarget::Application,
            _ => ModeTarget::Collection,
        }
    }

    /// Whether the URL may name something after the mode (`{data}`): a key, a player,
    /// an event type, or a key prefix (`document.list`). The operations that need one
    /// say so when it is missing.
    pub fn takes_data(self) -> bool {
        !matches!(self, Self::LeaderboardTop | Self::Capture | Self::FlowRun)
    }

    /// Whether the operation reads a request body.
    pub fn takes_body(self) -> bool {
        matches!(
            self,
            Self::DocumentPut
                | Self::DocumentPatch
                | Self::DocumentIncrement
                | Self::LeaderboardSubmit
                | Self::MessagePublish
                | Self::FlowRun
        )
    }
}

impl fmt::Display for ModeOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModeOperation {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|op| op.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|op| op.as_str()).collect();
            InvalidValue::new(format!("unknown operation {s:?}; one of {}", names.join(", ")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The examples of RFC 7386, appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected, "patch {patch}");
        }
    }

    #[test]
    fn increments_are_exact_and_refuse_what_is_not_a_number() {
        let mut doc = json!({"coins": 10, "name": "x"}).as_object().unwrap().clone();
        increment(&mut doc, json!({"coins": 5, "gems": 2}).as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(doc.clone()),
            json!({"coins": 15, "gems": 2, "name": "x"})
        );
        increment(&mut doc, json!({"coins": -20}).as_object().unwrap()).unwrap();
        assert_eq!(doc["coins"], json!(-5));
        increment(&mut doc, json!({"coins": 0.5}).as_object().unwrap()).unwrap();
        assert_eq!(doc["coins"], json!(-4.5));
        assert!(increment(&mut doc, json!({"name": 1}).as_object().unwrap()).is_err());
        assert!(increment(&mut doc, json!({"gems": "1"}).as_object().unwrap()).is_err());
        assert!(increment(&mut doc, &Map::new()).is_err());
        let mut big = json!({"n": i64::MAX}).as_object().unwrap().clone();
        assert!(increment(&mut big, json!({"n": 1}).as_object().unwrap()).is_err());
        assert_eq!(big["n"], json!(i64::MAX), "a refused increment changes nothing");
    }

    #[test]
    fn schemas_name_what_is_wrong() {
        let schema = BodySchema::compile(&json!({
            "type": "object",
            "required": ["score"],
            "properties": {"score": {"type": "integer", "minimum": 0}}
        }))
        .unwrap();
        assert!(schema.check(&json!({"score": 10})).is_ok());
        let errors = schema.check(&json!({"score": -1})).unwrap_err();
        assert!(errors[0].starts_with("/score"), "{errors:?}");
        assert!(schema.check(&json!({})).is_err());
        assert!(BodySchema::compile(&json!({"type": 12})).is_err());
        assert!(BodySchema::compile(&json!("object")).is_err());
        // Remote references are never fetched.
        assert!(BodySchema::compile(&json!({"$ref": "http://169.254.169.254/schema.json"})).is_err());
    }

    #[test]
    fn policies_combine_scores() {
        use ScoreOrder::*;
        use ScorePolicy::*;
        assert_eq!(combine_score(Best, Desc, None, 5).unwrap(), Some(5));
        assert_eq!(combine_score(Best, Desc, Some(7), 5).unwrap(), None);
        assert_eq!(combine_score(Best, Desc, Some(3), 5).unwrap(), Some(5));
        assert_eq!(combine_score(Best, Asc, Some(3), 5).unwrap(), None);
        assert_eq!(combine_score(Latest, Desc, Some(7), 5).unwrap(), Some(5));
        assert_eq!(combine_score(Sum, Desc, Some(7), 5).unwrap(), Some(12));
        assert!(combine_score(Sum, Desc, Some(MAX_SCORE), 1).is_err());
        assert!(combine_score(Best, Desc, None, MAX_SCORE + 1).is_err());
        assert!(check_score(i64::MIN).is_err() && check_score(i64::MAX).is_err());
        assert_eq!(check_score(-MAX_SCORE), Ok(-MAX_SCORE));
        assert!(ScoreOrder::Desc.rank_key(5) < ScoreOrder::Desc.rank_key(3));
    }

    #[test]
    fn periods_follow_the_calendar_in_utc() {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 23, 59, 59).unwrap();
        for made in ["all", "2026-11-23", "2026-W48", "2026-11"] {
            assert_eq!(
                made.parse::<PeriodKey>().map(|k| k.to_string()).as_deref(),
                Ok(made)
            );
        }
        for bad in ["", "2026/11", "x".repeat(17).as_str(), "2026 W48"] {
            assert!(bad.parse::<PeriodKey>().is_err(), "{bad:?}");
        }
        assert_eq!(period_key(ResetPeriod::Never, at), "all");
        assert_eq!(period_key(ResetPeriod::Daily, at), "2026-11-23");
        assert_eq!(period_key(ResetPeriod::Weekly, at), "2026-W48");
        assert_eq!(period_key(ResetPeriod::Monthly, at), "2026-11");
        // 2027-01-01 is a Friday of ISO week 53 of 2026.
        let new_year = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(period_key(ResetPeriod::Weekly, new_year), "2026-W53");
    }

    #[test]
    fn operations_round_trip_by_name() {
        for op in ModeOperation::ALL {
            assert_eq!(op.as_str().parse::<ModeOperation>().unwrap(), op);
            assert_eq!(serde_json::to_value(op).unwrap(), json!(op.as_str()));
        }
        assert!("document.nuke".parse::<ModeOperation>().is_err());
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_patch_is_idempotent(mut target in json_value(), patch in json_value()) {
            merge_patch(&mut target, &patch);
            let once = target.clone();
            merge_patch(&mut target, &patch);
            prop_assert_eq!(target, once);
        }
    }
}
