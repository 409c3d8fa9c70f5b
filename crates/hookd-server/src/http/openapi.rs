//! The served OpenAPI document, finished: the document `utoipa` generates from the
//! handlers, then made whole where per-handler annotations would repeat themselves —
//! Svix's `v1.*` operation ids where the operation is Svix's (the others get a unique
//! `hookd.*` id from their method and path), every path parameter declared, and the
//! error answers every operation can give, each with its body. CI checks the result
//! with `openapi-spec-validator`, generates a client from it, and fuzzes the running
//! server from it with schemathesis (docs/api.md).

use serde_json::{Map, Value, json};

/// Svix's operation ids by method and path (`../shared/reference/svix-openapi.json`).
const SVIX_OPERATIONS: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/app", "v1.application.list"),
    ("POST", "/api/v1/app", "v1.application.create"),
    ("GET", "/api/v1/app/{app_id}", "v1.application.get"),
    ("PUT", "/api/v1/app/{app_id}", "v1.application.upsert"),
    ("PATCH", "/api/v1/app/{app_id}", "v1.application.patch"),
    ("DELETE", "/api/v1/app/{app_id}", "v1.application.delete"),
    (
        "GET",
        "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}",
        "v1.message-attempt.list-by-endpoint",
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/attempt/msg/{msg_id}",
        "v1.message-attempt.list-by-msg",
    ),
    ("GET", "/api/v1/app/{app_id}/endpoint", "v1.endpoint.list"),
    ("POST", "/api/v1/app/{app_id}/endpoint", "v1.endpoint.create"),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
        "v1.endpoint.get",
    ),
    (
        "PUT",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
        "v1.endpoint.upsert",
    ),
    (
        "PATCH",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
        "v1.endpoint.patch",
    ),
    (
        "DELETE",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}",
        "v1.endpoint.delete",
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
        "v1.endpoint.get-headers",
    ),
    (
        "PUT",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
        "v1.endpoint.set-headers",
    ),
    (
        "PATCH",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers",
        "v1.endpoint.patch-headers",
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg",
        "v1.message-attempt.list-attempted-messages",
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
        "v1.endpoint.recover",
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret",
        "v1.endpoint.get-secret",
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
        "v1.endpoint.rotate-secret",
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example",
        "v1.endpoint.send-example",
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats",
        "v1.endpoint.get-stats",
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation",
        "v1.endpoint.transformation.get",
    ),
    (
        "PATCH",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation",
        "v1.endpoint.transformation.patch",
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation/simulate",
        "v1.endpoint.transformation.simulate",
    ),
    ("GET", "/api/v1/app/{app_id}/msg", "v1.message.list"),
    ("POST", "/api/v1/app/{app_id}/msg", "v1.message.create"),
    ("GET", "/api/v1/app/{app_id}/msg/{msg_id}", "v1.message.get"),
    (
        "GET",
        "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}",
        "v1.message-attempt.get",
    ),
    (
        "DELETE",
        "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content",
        "v1.message-attempt.expunge-content",
    ),
    (
        "DELETE",
        "/api/v1/app/{app_id}/msg/{msg_id}/content",
        "v1.message.expunge-content",
    ),
    (
        "GET",
        "/api/v1/app/{app_id}/msg/{msg_id}/endpoint",
        "v1.message-attempt.list-attempted-destinations",
    ),
    (
        "POST",
        "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
        "v1.message-attempt.resend",
    ),
    (
        "POST",
        "/api/v1/auth/app-portal-access/{app_id}",
        "v1.authentication.app-portal-access",
    ),
    ("POST", "/api/v1/auth/logout", "v1.authentication.logout"),
    ("GET", "/api/v1/event-type", "v1.event-type.list"),
    ("POST", "/api/v1/event-type", "v1.event-type.create"),
    ("GET", "/api/v1/event-type/{event_type_name}", "v1.event-type.get"),
    (
        "PUT",
        "/api/v1/event-type/{event_type_name}",
        "v1.event-type.upsert",
    ),
    (
        "PATCH",
        "/api/v1/event-type/{event_type_name}",
        "v1.event-type.patch",
    ),
    (
        "DELETE",
        "/api/v1/event-type/{event_type_name}",
        "v1.event-type.delete",
    ),
    ("GET", "/api/v1/health", "v1.health.get"),
    (
        "GET",
        "/api/v1/operational-webhook/endpoint",
        "v1.operational-webhook.endpoint.list",
    ),
    (
        "POST",
        "/api/v1/operational-webhook/endpoint",
        "v1.operational-webhook.endpoint.create",
    ),
    (
        "GET",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}",
        "v1.operational-webhook.endpoint.get",
    ),
    (
        "PUT",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}",
        "v1.operational-webhook.endpoint.upsert",
    ),
    (
        "DELETE",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}",
        "v1.operational-webhook.endpoint.delete",
    ),
    (
        "GET",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers",
        "v1.operational-webhook.endpoint.get-headers",
    ),
    (
        "PUT",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers",
        "v1.operational-webhook.endpoint.set-headers",
    ),
    (
        "GET",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret",
        "v1.operational-webhook.endpoint.get-secret",
    ),
    (
        "POST",
        "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret/rotate",
        "v1.operational-webhook.endpoint.rotate-secret",
    ),
    ("GET", "/ingest/api/v1/source", "v1.ingest.source.list"),
    ("POST", "/ingest/api/v1/source", "v1.ingest.source.create"),
    ("GET", "/ingest/api/v1/source/{source_id}", "v1.ingest.source.get"),
    (
        "PUT",
        "/ingest/api/v1/source/{source_id}",
        "v1.ingest.source.upsert",
    ),
    (
        "PATCH",
        "/ingest/api/v1/source/{source_id}",
        "v1.ingest.source.patch",
    ),
    (
        "DELETE",
        "/ingest/api/v1/source/{source_id}",
        "v1.ingest.source.delete",
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint",
        "v1.ingest.endpoint.list",
    ),
    (
        "POST",
        "/ingest/api/v1/source/{source_id}/endpoint",
        "v1.ingest.endpoint.create",
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
        "v1.ingest.endpoint.get",
    ),
    (
        "PUT",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
        "v1.ingest.endpoint.upsert",
    ),
    (
        "DELETE",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}",
        "v1.ingest.endpoint.delete",
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers",
        "v1.ingest.endpoint.get-headers",
    ),
    (
        "PUT",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers",
        "v1.ingest.endpoint.set-headers",
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret",
        "v1.ingest.endpoint.get-secret",
    ),
    (
        "POST",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret/rotate",
        "v1.ingest.endpoint.rotate-secret",
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/transformation",
        "v1.ingest.endpoint.transformation.get",
    ),
    (
        "PATCH",
        "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/transformation",
        "v1.ingest.endpoint.transformation.patch",
    ),
    (
        "GET",
        "/ingest/api/v1/source/{source_id}/log",
        "v1.ingest.log.list",
    ),
    (
        "POST",
        "/ingest/api/v1/source/{source_id}/token/rotate",
        "v1.ingest.source.rotate-token",
    ),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// The generated document (as JSON) finished as the module says.
pub fn finish(mut doc: Value) -> Value {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for method in METHODS {
            if let Some(Value::Object(op)) = item.get_mut(*method) {
                finish_operation(path, method, op);
            }
        }
    }
    doc
}

fn finish_operation(path: &str, method: &str, op: &mut Map<String, Value>) {
    let svix = SVIX_OPERATIONS
        .iter()
        .find(|(m, p, _)| m.eq_ignore_ascii_case(method) && *p == path)
        .map(|(_, _, id)| *id);
    let given = op.get("operationId").and_then(Value::as_str).unwrap_or_default();
    let id = match svix {
        Some(id) => id.to_owned(),
        None if given.starts_with("v1.") => given.to_owned(),
        None => hookd_operation_id(path, method),
    };
    op.insert("operationId".into(), Value::String(id));

    let params = op.entry("parameters").or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(params) = params {
        for name in path_params(path) {
            let declared = params.iter().any(|p| p["in"] == "path" && p["name"] == name);
            if !declared {
                params.push(
                    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}),
                );
            }
        }
        if params.is_empty() {
            op.remove("parameters");
        }
    }

    let has_body = op.contains_key("requestBody");
    let has_query = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let authenticated = op.get("security").is_none_or(|s| s != &json!([{}]));
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else {
        return;
    };
    let error = |description: &str| {
        json!({"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HttpErrorOut"}}}})
    };
    let mut add = |status: &str, response: Value| {
        responses.entry(status.to_owned()).or_insert(response);
    };
    if has_body {
        add("400", error("The body is not valid JSON (`invalid_json`)."));
        add(
            "413",
            error("The body is over the size limit (`payload_too_large`)."),
        );
        add("415", error("The body is not JSON (`unsupported_media_type`)."));
    }
    if has_body || has_query || !path_params(path).is_empty() {
        add(
            "422",
            json!({"description": "A field of the wrong type or value (`validation`).",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationErrorOut"}}}}),
        );
    }
    if authenticated {
        add(
            "401",
            error("No, a malformed, an unknown or a revoked token (`authentication_failed`)."),
        );
    }
    if !path_params(path).is_empty() || has_query {
        add(
            "404",
            error(
                "No such object (named in the path or a filter) in the token's organisation (`not_found`).",
            ),
        );
    }
    if matches!(method, "post" | "put" | "patch") {
        add(
            "409",
            error(
                "A uid or name is taken, the object's state refuses the change, or an `Idempotency-Key` was used for another request (`conflict`).",
            ),
        );
    }
    add(
        "503",
        json!({"description": "The database is unavailable (`unavailable`), or its writes are queueing past what it commits and the request was refused before any work (`overloaded`); nothing was committed. Retry after `Retry-After` seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HttpErrorOut"}}}}),
    );
    for response in responses.values_mut() {
        if let Value::Object(r) = response
            && r.get("description").is_none_or(|d| d == "")
        {
            r.insert("description".into(), Value::String("OK".into()));
        }
    }
}

/// The `{name}` segments of a path.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// A unique id for an operation of hookd's own: `hookd.` + the path's fixed segments
/// (after `/api/v1`) + the method (`list`/`create` for a collection's GET/POST), e.g.
/// `hookd.app.collection.document.get`.
fn hookd_operation_id(path: &str, method: &str) -> String {
    let rest = path
        .strip_prefix("/api/v1")
        .map(str::to_owned)
        .or_else(|| path.strip_prefix("/ingest/api/v1").map(|r| format!("/ingest{r}")))
        .unwrap_or_else(|| path.to_owned());
    let fixed: Vec<&str> = rest
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .collect();
    // A collection's GET lists and its POST creates; an item's keep their method.
    let verb = match (path.ends_with('}'), method) {
        (false, "get") => "list",
        (false, "post") => "create",
        (_, other) => other,
    };
    format!("hookd.{}.{verb}", fixed.join("."))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ids_params_and_errors_are_filled_in() {
        let doc = json!({"paths": {
            "/api/v1/app/{app_id}": {"get": {"operationId": "get", "responses": {"200": {"description": ""}}}},
            "/api/v1/app/{app_id}/collection/{name}": {"delete": {"operationId": "delete", "responses": {}}},
            "/api/v1/health": {"get": {"operationId": "health", "security": [{}], "responses": {}}}
        }});
        let done = finish(doc);
        let app = &done["paths"]["/api/v1/app/{app_id}"]["get"];
        assert_eq!(app["operationId"], "v1.application.get");
        assert_eq!(app["parameters"][0]["name"], "app_id");
        assert_eq!(app["responses"]["200"]["description"], "OK");
        assert!(app["responses"]["404"].is_object() && app["responses"]["401"].is_object());
        let coll = &done["paths"]["/api/v1/app/{app_id}/collection/{name}"]["delete"];
        assert_eq!(coll["operationId"], "hookd.app.collection.delete");
        assert_eq!(hookd_operation_id("/api/v1/flow", "get"), "hookd.flow.list");
        assert_eq!(
            hookd_operation_id("/api/v1/flow/{flow_id}/run", "post"),
            "hookd.flow.run.create"
        );
        assert_eq!(coll["parameters"].as_array().unwrap().len(), 2);
        let health = &done["paths"]["/api/v1/health"]["get"];
        assert!(health["responses"]["401"].is_null() && health["responses"]["404"].is_null());
        assert!(health.get("parameters").is_none());
    }
}
