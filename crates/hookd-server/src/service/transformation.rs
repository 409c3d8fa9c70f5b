//! Endpoints' transformations (docs/transformations.md): get, set and simulate. The
//! code runs in `hookd_sandbox` at each attempt (`hookd_dispatch::transform`); here it
//! is checked when it is saved (size, syntax — nothing of it runs) and tried on a
//! sample.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hookd_core::id::OrgId;
use hookd_core::name::EventTypeName;
use hookd_sandbox::ScriptError;
use hookd_sandbox::transform::{self, Method, Webhook};
use hookd_store::Transformation;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::double_option;
use crate::http::parse_field;
use crate::service::Service;
use crate::service::endpoint::{self, AppRef};

/// Most variables a transformation may have.
const MAX_VARIABLES: usize = 64;
const MAX_VARIABLE_NAME: usize = 128;
const MAX_VARIABLE_VALUE: usize = 8_192;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointTransformationOut {
    pub code: Option<String>,
    pub enabled: bool,
    pub variables: Option<BTreeMap<String, String>>,
    /// When it was last set (absent on a destination's, as in the Svix contract).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The body of `PATCH .../transformation`: fields given change, `null` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointTransformationPatch {
    /// `function handler(webhook) { ...; return webhook }`, 10 to 51,200 characters.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub code: Option<Option<String>>,
    pub enabled: Option<bool>,
    /// Values the code reads as `webhook.variables`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub variables: Option<Option<BTreeMap<String, String>>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransformationSimulateIn {
    pub code: String,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub channels: Option<Vec<String>>,
    pub variables: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransformationSimulateOut {
    pub url: String,
    /// The body that would be sent.
    pub payload: String,
    /// `POST`, `PUT` or `PATCH`.
    pub method: Option<String>,
    pub cancel: bool,
}

fn out(t: Option<Transformation>, with_updated_at: bool) -> EndpointTransformationOut {
    match t {
        Some(t) => EndpointTransformationOut {
            code: t.code,
            enabled: t.enabled,
            variables: t.variables,
            updated_at: with_updated_at.then_some(t.updated_at),
        },
        None => EndpointTransformationOut {
            code: None,
            enabled: false,
            variables: None,
            updated_at: None,
        },
    }
}

/// The endpoint's transformation (off, with no code, until one is set).
pub async fn get(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
) -> ApiResult<EndpointTransformationOut> {
    let ep = endpoint::get(state, org, app, endpoint).await?;
    Ok(out(ep.data.transformation, !matches!(app, AppRef::Source(_))))
}

/// A script refused at `loc`: the engine's message, line and column included.
fn script_error(loc: &[&str], e: &ScriptError) -> ApiError {
    ApiError::invalid(loc, e.to_string())
}

fn check_variables(v: &BTreeMap<String, String>) -> ApiResult<()> {
    if v.len() > MAX_VARIABLES {
        return Err(ApiError::invalid(
            &["body", "variables"],
            format!("at most {MAX_VARIABLES} variables are allowed"),
        ));
    }
    for (name, value) in v {
        if name.is_empty() || name.len() > MAX_VARIABLE_NAME {
            return Err(ApiError::invalid(
                &["body", "variables"],
                format!("a variable's name must be 1 to {MAX_VARIABLE_NAME} bytes"),
            ));
        }
        if value.len() > MAX_VARIABLE_VALUE {
            return Err(ApiError::invalid(
                &["body", "variables", name],
                format!("a variable's value must be at most {MAX_VARIABLE_VALUE} bytes"),
            ));
        }
    }
    Ok(())
}

/// Checks code before it is kept: its size and that it parses (nothing of it runs).
async fn check_code(state: &Service, code: &str) -> ApiResult<()> {
    state.sandbox.check(code).await.map_err(|e| match e {
        ScriptError::Unavailable => ApiError::Unavailable("the transformation sandbox is not running".into()),
        e => script_error(&["body", "code"], &e),
    })
}

/// Changes the fields given. Enabling needs code (given now or kept from before).
/// Raises `endpoint.updated` for an application's endpoint.
pub async fn set(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
    patch: EndpointTransformationPatch,
) -> ApiResult<()> {
    if let Some(Some(code)) = &patch.code {
        check_code(state, code).await?;
    }
    if let Some(Some(v)) = &patch.variables {
        check_variables(v)?;
    }
    let now = Utc::now();
    let change = move |d: &mut hookd_store::EndpointData| {
        let mut t = d.transformation.take().unwrap_or(Transformation {
            code: None,
            enabled: false,
            variables: None,
            updated_at: now,
        });
        if let Some(code) = patch.code {
            t.code = code;
        }
        if let Some(enabled) = patch.enabled {
            t.enabled = enabled;
        }
        if let Some(variables) = patch.variables {
            t.variables = variables;
        }
        if t.enabled && t.code.is_none() {
            return Err(hookd_store::StoreError::Rejected {
                field: "enabled".into(),
                message: "a transformation cannot be enabled without code".into(),
            });
        }
        t.updated_at = now;
        d.transformation = Some(t);
        Ok(())
    };
    endpoint::update_with(state, org, app, endpoint, Box::new(change)).await?;
    Ok(())
}

/// Runs `code` on a sample message for the endpoint (its URL, the sample's event type,
/// channels and payload), keeping nothing: what would be sent, or 400 with the
/// script's error.
pub async fn simulate(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
    body: TransformationSimulateIn,
) -> ApiResult<TransformationSimulateOut> {
    let ep = endpoint::get(state, org, app, endpoint).await?;
    let event_type: EventTypeName = parse_field(&body.event_type, "eventType")?;
    let channels = endpoint::parse_channel_list(body.channels)?;
    if !body.payload.is_object() {
        return Err(ApiError::invalid(
            &["body", "payload"],
            "the payload must be a JSON object",
        ));
    }
    if let Some(v) = &body.variables {
        check_variables(v)?;
    }
    hookd_sandbox::check_size(&body.code).map_err(|e| script_error(&["body", "code"], &e))?;
    let webhook = Webhook {
        method: Method::Post,
        url: ep.data.url.as_str().to_owned(),
        payload: body.payload,
        event_type: event_type.to_string(),
        channels: channels.iter().map(ToString::to_string).collect(),
        headers: BTreeMap::new(),
        cancel: false,
        variables: body.variables.unwrap_or_default(),
        request: None,
    };
    match transform::run(&state.sandbox, None, &body.code, &webhook).await {
        Ok(out) => Ok(TransformationSimulateOut {
            url: out.url.to_string(),
            payload: String::from_utf8_lossy(&out.body).into_owned(),
            method: Some(out.method.as_str().to_owned()),
            cancel: out.cancel,
        }),
        Err(ScriptError::Unavailable) => Err(ApiError::Unavailable(
            "the transformation sandbox is not running".into(),
        )),
        Err(e) => Err(ApiError::BadRequest {
            code: "transformation_failed",
            detail: e.to_string(),
        }),
    }
}
