//! Flows' secrets: per-organisation values (SMTP and Twilio credentials) that flows
//! name and never hold. A secret is sealed with `secret_key`
//! (`hookd_core::sealed`, bound to its organisation and name) before it reaches the
//! store, and opened only by the runner that uses it. The API can put, list and
//! delete secrets; nothing reads one back.

use hookd_core::id::OrgId;
use hookd_core::name::DataName;
use hookd_store::{FlowSecret, ListQuery, Page, StoreError};
use serde_json::Value;

use crate::http::error::{ApiError, ApiResult};
use crate::service::Service;

/// Largest secret value (JSON text).
pub const MAX_SECRET_BYTES: usize = 8 * 1024;

fn context(org: &OrgId, name: &str) -> String {
    hookd_store::sealing::Sealed::FlowSecret.place(&format!("{org}/{name}"))
}

/// Creates or replaces secret `name` with `value` (a JSON object); answers it and
/// whether it was created.
pub async fn put(
    state: &Service,
    org: &OrgId,
    name: &DataName,
    value: &Value,
) -> ApiResult<(FlowSecret, bool)> {
    if !value.is_object() {
        return Err(ApiError::invalid(
            &["body", "value"],
            "a secret's value is a JSON object",
        ));
    }
    let text = value.to_string();
    if text.len() > MAX_SECRET_BYTES {
        return Err(ApiError::invalid(
            &["body", "value"],
            format!("at most {MAX_SECRET_BYTES} bytes of JSON"),
        ));
    }
    let sealed = state.store.keyring().seal(&text, &context(org, name.as_str()));
    Ok(state.store.put_flow_secret(org, name, sealed).await?)
}

pub async fn list(state: &Service, org: &OrgId, query: &ListQuery) -> ApiResult<Page<FlowSecret>> {
    Ok(state.store.list_flow_secrets(org, query).await?)
}

pub async fn delete(state: &Service, org: &OrgId, name: &str) -> ApiResult<()> {
    Ok(state.store.delete_flow_secret(org, name).await?)
}

/// Why a step could not use a secret (never its value).
#[derive(Debug)]
pub enum OpenFailure {
    /// It is not there, or does not open: the step fails.
    Missing(String),
    /// The database did not answer: the step is tried again.
    Unavailable(String),
}

/// Opens secret `name` of `org` for a step.
pub(crate) async fn open(state: &Service, org: &OrgId, name: &str) -> Result<Value, OpenFailure> {
    let secret = match state.store.get_flow_secret(org, name).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => {
            return Err(OpenFailure::Missing(format!("there is no secret {name:?}")));
        }
        Err(e) => return Err(OpenFailure::Unavailable(e.to_string())),
    };
    let plain = state
        .store
        .keyring()
        .open(&secret.sealed, &context(org, name))
        .map_err(|e| OpenFailure::Missing(format!("secret {name:?}: {e}")))?;
    serde_json::from_str(&plain).map_err(|_| OpenFailure::Missing(format!("secret {name:?} is not JSON")))
}
