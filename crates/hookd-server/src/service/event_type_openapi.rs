//! The event-type catalogue as an OpenAPI document's webhooks, both ways: an import
//! reads the `webhooks` (OpenAPI 3.1) or `x-webhooks` (3.0 tools) section — one event
//! type per webhook, named by its key — and an export writes the catalogue as such a
//! document, so an export imports back to the same catalogue.
//!
//! Per webhook, the operation (`post`, else the first method given) yields:
//! `description` (or `summary`), `deprecated`, the `application/json` request body's
//! schema as schema version `"1"` (local `$ref`s resolved), its media type's
//! `example`/`examples` added to that schema's `examples` (what send-example sends),
//! and hookd/Svix extensions `x-svix-group-name` and `x-svix-feature-flags`.

use std::collections::{BTreeMap, BTreeSet};

use hookd_core::name::{EventTypeName, FeatureFlag, GroupName};
use hookd_store::{EventType, EventTypeData};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::http::error::{ApiError, ApiResult};

/// How deep `$ref`s may nest (a cycle ends here as an error).
const MAX_REF_DEPTH: usize = 32;
/// Webhooks one import may hold.
pub const MAX_WEBHOOKS: usize = 1_000;

const METHODS: &[&str] = &[
    "post", "put", "patch", "get", "delete", "head", "options", "trace",
];

/// One event type as an import read it (Svix's `EventTypeFromOpenApi`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportedEventType {
    pub name: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Value>,
    pub deprecated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_flags: Option<BTreeSet<String>>,
}

impl ImportedEventType {
    /// The checked name and stored fields (not archived: an import unarchives).
    pub fn to_data(&self) -> ApiResult<(EventTypeName, EventTypeData)> {
        let loc = |field: &str| ["body", "spec", "webhooks", self.name.as_str(), field].map(str::to_owned);
        let invalid = |field: &str, message: String| {
            let loc = loc(field);
            ApiError::invalid(&loc.iter().map(String::as_str).collect::<Vec<_>>(), message)
        };
        let name: EventTypeName = self
            .name
            .parse()
            .map_err(|e: hookd_core::InvalidValue| invalid("name", e.message))?;
        let group_name = self
            .group_name
            .as_deref()
            .map(|g| g.parse::<GroupName>())
            .transpose()
            .map_err(|e| invalid("x-svix-group-name", e.message))?;
        let feature_flags = self
            .feature_flags
            .iter()
            .flatten()
            .map(|f| f.parse::<FeatureFlag>())
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(|e| invalid("x-svix-feature-flags", e.message))?;
        Ok((
            name,
            EventTypeData {
                description: self.description.clone(),
                archived: false,
                deprecated: self.deprecated,
                schemas: self.schemas.clone(),
                group_name,
                feature_flags,
            },
        ))
    }

    /// Whether storing it would change `current`.
    pub fn changes(&self, current: &EventTypeData) -> bool {
        match self.to_data() {
            Ok((_, data)) => data != *current,
            Err(_) => true,
        }
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::invalid(&["body", "spec"], message)
}

/// The spec from `spec` (an object) or `specRaw` (YAML or JSON text): exactly one.
pub fn parse_spec(spec: Option<Value>, raw: Option<&str>) -> ApiResult<Value> {
    match (spec, raw) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::BadRequest {
            code: "bad_request",
            detail: "give the OpenAPI document as exactly one of spec or specRaw".into(),
        }),
        (Some(spec), None) => Ok(spec),
        (None, Some(raw)) => {
            // JSON is YAML too, but serde_json's errors name the place better.
            if raw.trim_start().starts_with('{') {
                serde_json::from_str(raw)
                    .map_err(|e| ApiError::invalid(&["body", "specRaw"], format!("not a JSON document: {e}")))
            } else {
                yaml_serde::from_str(raw).map_err(|e| {
                    ApiError::invalid(&["body", "specRaw"], format!("not a YAML or JSON document: {e}"))
                })
            }
        }
    }
}

/// The event types an OpenAPI document's webhooks describe, by name.
pub fn read(spec: &Value) -> ApiResult<Vec<ImportedEventType>> {
    let Some(root) = spec.as_object() else {
        return Err(bad("the OpenAPI document must be an object"));
    };
    let webhooks = match (root.get("webhooks"), root.get("x-webhooks")) {
        (Some(Value::Object(w)), _) | (None, Some(Value::Object(w))) => w,
        (Some(_), _) | (None, Some(_)) => return Err(bad("webhooks must be an object")),
        (None, None) => return Err(bad("the document has no webhooks (or x-webhooks) section")),
    };
    if webhooks.len() > MAX_WEBHOOKS {
        return Err(bad(format!("at most {MAX_WEBHOOKS} webhooks per import")));
    }
    let mut out = Vec::with_capacity(webhooks.len());
    for (name, item) in webhooks {
        let item = resolve(item, spec, 0).map_err(|e| bad(format!("webhook {name}: {e}")))?;
        let Some(op) = METHODS
            .iter()
            .find_map(|m| item.get(*m))
            .and_then(Value::as_object)
        else {
            return Err(bad(format!("webhook {name} has no operation (post, ...)")));
        };
        let text = |key: &str| op.get(key).and_then(Value::as_str).map(str::to_owned);
        let media = op
            .get("requestBody")
            .and_then(|b| b.get("content"))
            .and_then(|c| {
                c.get("application/json")
                    .or_else(|| c.as_object()?.values().next())
            });
        let schema = media.and_then(|m| m.get("schema")).cloned();
        let mut examples: Vec<Value> = Vec::new();
        if let Some(m) = media {
            if let Some(e) = m.get("example") {
                examples.push(e.clone());
            }
            if let Some(Value::Object(named)) = m.get("examples") {
                examples.extend(named.values().filter_map(|e| e.get("value").cloned()));
            }
        }
        let schemas = match (schema, examples.is_empty()) {
            (None, true) => None,
            (schema, _) => {
                let mut schema = match schema {
                    Some(Value::Object(s)) => s,
                    Some(_) => {
                        return Err(bad(format!(
                            "webhook {name}: the request body's schema must be an object"
                        )));
                    }
                    None => Map::new(),
                };
                if !examples.is_empty() {
                    let list = schema.entry("examples").or_insert_with(|| json!([]));
                    if let Value::Array(list) = list {
                        for e in examples {
                            if !list.contains(&e) {
                                list.push(e);
                            }
                        }
                    }
                }
                Some(json!({ "1": Value::Object(schema) }))
            }
        };
        let feature_flags = match op.get("x-svix-feature-flags") {
            None | Some(Value::Null) => None,
            Some(Value::Array(flags)) => Some(
                flags
                    .iter()
                    .map(|f| f.as_str().map(str::to_owned))
                    .collect::<Option<BTreeSet<_>>>()
                    .ok_or_else(|| bad(format!("webhook {name}: x-svix-feature-flags must be strings")))?,
            ),
            Some(_) => {
                return Err(bad(format!(
                    "webhook {name}: x-svix-feature-flags must be a list"
                )));
            }
        };
        out.push(ImportedEventType {
            name: name.clone(),
            description: text("description")
                .or_else(|| text("summary"))
                .unwrap_or_default(),
            schemas,
            deprecated: op.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
            group_name: text("x-svix-group-name"),
            feature_flags: feature_flags.filter(|f| !f.is_empty()),
        });
    }
    Ok(out)
}

/// `value` with every local `$ref` (`#/...`) replaced by what it points at in `root`.
fn resolve(value: &Value, root: &Value, depth: usize) -> Result<Value, String> {
    if depth > MAX_REF_DEPTH {
        return Err("$ref nests too deep (a cycle?)".into());
    }
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let pointer = target
                    .strip_prefix('#')
                    .ok_or_else(|| format!("only local $refs are read, not {target}"))?;
                let found = root
                    .pointer(pointer)
                    .ok_or_else(|| format!("$ref {target} points at nothing"))?;
                return resolve(found, root, depth + 1);
            }
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, root, depth + 1)?)))
                .collect::<Result<Map<_, _>, String>>()
                .map(Value::Object)
        }
        Value::Array(items) => items
            .iter()
            .map(|v| resolve(v, root, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// The catalogue as an OpenAPI 3.1 document whose `webhooks` hold one `post` per event
/// type, its newest schema version as the request body, with its examples.
pub fn write(event_types: &[EventType]) -> Value {
    let mut webhooks = BTreeMap::new();
    for et in event_types {
        let d = &et.data;
        let newest = d
            .schemas
            .as_ref()
            .and_then(Value::as_object)
            .and_then(|versions| {
                versions
                    .iter()
                    .max_by_key(|(v, _)| v.parse::<u64>().unwrap_or(0))
                    .map(|(_, s)| s.clone())
            });
        let mut op = Map::new();
        op.insert("operationId".into(), json!(et.name.as_str()));
        op.insert("description".into(), json!(d.description));
        if d.deprecated {
            op.insert("deprecated".into(), json!(true));
        }
        if let Some(schema) = newest {
            op.insert(
                "requestBody".into(),
                json!({"content": {"application/json": {"schema": schema}}}),
            );
        }
        op.insert(
            "responses".into(),
            json!({"2XX": {"description": "Return any 2XX status to show the webhook was received"}}),
        );
        if let Some(g) = &d.group_name {
            op.insert("x-svix-group-name".into(), json!(g.as_str()));
        }
        if !d.feature_flags.is_empty() {
            op.insert("x-svix-feature-flags".into(), json!(d.feature_flags));
        }
        webhooks.insert(et.name.to_string(), json!({ "post": op }));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Webhooks", "version": "1.0.0"},
        "webhooks": webhooks,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec() -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "webhooks": {
                "pet.new": {"post": {
                    "summary": "A pet was added",
                    "x-svix-group-name": "pets",
                    "x-svix-feature-flags": ["beta"],
                    "requestBody": {"content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Pet"},
                        "example": {"name": "Rex"}
                    }}}
                }},
                "pet.gone": {"post": {"description": "removed", "deprecated": true}}
            },
            "components": {"schemas": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}}}
        })
    }

    #[test]
    fn webhooks_become_event_types_with_resolved_schemas_and_examples() {
        let read = read(&spec()).unwrap();
        assert_eq!(read.len(), 2);
        let gone = &read[0];
        assert_eq!(
            (gone.name.as_str(), gone.deprecated, gone.schemas.as_ref()),
            ("pet.gone", true, None)
        );
        let new = &read[1];
        assert_eq!(new.description, "A pet was added");
        assert_eq!(new.group_name.as_deref(), Some("pets"));
        assert_eq!(
            new.schemas,
            Some(
                json!({"1": {"type": "object", "properties": {"name": {"type": "string"}}, "examples": [{"name": "Rex"}]}})
            )
        );
    }

    #[test]
    fn x_webhooks_yaml_and_bad_documents() {
        let yaml = "openapi: 3.0.3\nx-webhooks:\n  user.signup:\n    post:\n      description: hi\n";
        let spec = parse_spec(None, Some(yaml)).unwrap();
        assert_eq!(read(&spec).unwrap()[0].name, "user.signup");
        assert!(parse_spec(None, None).is_err());
        assert!(parse_spec(Some(json!({})), Some("{}")).is_err());
        assert!(parse_spec(None, Some("{not json")).is_err());
        assert!(read(&json!({"openapi": "3.1.0"})).is_err(), "no webhooks");
        let cycle = json!({"webhooks": {"a": {"$ref": "#/x"}}, "x": {"$ref": "#/x"}});
        assert!(read(&cycle).is_err());
        let remote = json!({"webhooks": {"a": {"post": {"requestBody": {"$ref": "https://example.com/x"}}}}});
        assert!(read(&remote).is_err());
    }

    #[test]
    fn an_export_reads_back_as_the_same_catalogue() {
        let read_back = read(&spec()).unwrap();
        let now = chrono::Utc::now();
        let stored: Vec<EventType> = read_back
            .iter()
            .map(|e| {
                let (name, data) = e.to_data().unwrap();
                EventType {
                    name,
                    created_at: now,
                    updated_at: now,
                    data,
                }
            })
            .collect();
        let again = read(&write(&stored)).unwrap();
        assert_eq!(again, read_back);
    }
}
