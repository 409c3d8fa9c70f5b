//! An endpoint's finer settings, as both UIs edit them: custom headers, the payload
//! filter, and the transformation with its simulation. Each change goes through the
//! same service call as the API's.

use std::collections::BTreeMap;

use hookd_core::endpoint_headers;
use hookd_core::id::OrgId;
use hookd_store::Endpoint;
use serde::Deserialize;

use crate::http::error::{ApiError, ApiResult};
use crate::service::Service;
use crate::service::endpoint::{self as endpoint_service, AppRef, EndpointHeadersPatchIn, EndpointPatch};
use crate::service::transformation::{self, EndpointTransformationPatch, TransformationSimulateIn};
use crate::ui::views::pretty_json;

/// What the settings partial (`shared/endpoint_settings.html`) shows.
#[derive(Debug, Default)]
pub struct Settings {
    /// `Name: value` lines of the headers whose values may be shown.
    pub headers: String,
    /// Credential headers: kept, their values never shown.
    pub sensitive: Vec<String>,
    pub filter: String,
    pub code: String,
    pub enabled: bool,
    pub simulated: Option<Simulated>,
}

/// A simulation's answer.
#[derive(Debug)]
pub struct Simulated {
    pub cancel: bool,
    pub method: String,
    pub url: String,
    pub payload: String,
}

/// The sample a simulation runs on, kept in the form.
#[derive(Debug, Default, Deserialize)]
pub struct SimulateForm {
    pub code: String,
    #[serde(default)]
    pub event_type: String,
    #[serde(default)]
    pub payload: String,
}

impl Settings {
    pub fn of(ep: &Endpoint) -> Self {
        let (sensitive, shown): (Vec<_>, Vec<_>) = ep
            .data
            .headers
            .iter()
            .partition(|(name, _)| endpoint_headers::is_sensitive(name));
        let t = ep.data.transformation.as_ref();
        Self {
            headers: shown
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            sensitive: sensitive.into_iter().map(|(k, _)| k.clone()).collect(),
            filter: ep
                .data
                .filter
                .as_ref()
                .map(|f| pretty_json(f.as_str()))
                .unwrap_or_default(),
            code: t.and_then(|t| t.code.clone()).unwrap_or_default(),
            enabled: t.is_some_and(|t| t.enabled),
            simulated: None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct HeadersForm {
    #[serde(default)]
    pub headers: String,
}

/// Sets the headers written as `Name: value` lines; shown headers left out are
/// removed, credential headers left out are kept.
pub async fn save_headers(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    ep: &Endpoint,
    form: HeadersForm,
) -> ApiResult<()> {
    let mut wanted = BTreeMap::new();
    for (i, line) in form.headers.lines().map(str::trim).enumerate() {
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ApiError::invalid(
                &["body", "headers"],
                format!("line {} is not `Name: value`", i + 1),
            ));
        };
        wanted.insert(name.trim().to_owned(), Some(value.trim().to_owned()));
    }
    let mut headers = wanted.clone();
    for name in ep.data.headers.keys() {
        if !endpoint_headers::is_sensitive(name) && !wanted.contains_key(name) {
            headers.insert(name.clone(), None);
        }
    }
    endpoint_service::patch_headers(
        state,
        org,
        app,
        ep.id.as_str(),
        EndpointHeadersPatchIn {
            headers,
            delete_headers: Vec::new(),
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct FilterForm {
    #[serde(default)]
    pub filter: String,
}

/// Sets the payload filter (a JSON document), or removes it when empty.
pub async fn save_filter(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    ep: &Endpoint,
    form: FilterForm,
) -> ApiResult<()> {
    let filter = match form.filter.trim() {
        "" => None,
        text => Some(
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| ApiError::invalid(&["body", "filter"], format!("not JSON: {e}")))?,
        ),
    };
    let patch = EndpointPatch {
        filter: Some(filter),
        ..EndpointPatch::default()
    };
    endpoint_service::change(state, org, app, ep.id.as_str(), patch).await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct TransformationForm {
    #[serde(default)]
    pub code: String,
    /// A checkbox: present when ticked.
    pub enabled: Option<String>,
}

/// Saves the transformation's code and whether it runs.
pub async fn save_transformation(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    ep: &Endpoint,
    form: TransformationForm,
) -> ApiResult<()> {
    let code = Some(form.code.trim().to_owned()).filter(|c| !c.is_empty());
    let patch = EndpointTransformationPatch {
        enabled: Some(form.enabled.is_some() && code.is_some()),
        code: Some(code),
        variables: None,
    };
    transformation::set(state, org, app, ep.id.as_str(), patch).await
}

/// Runs the code in the form on its sample (nothing is kept).
pub async fn simulate(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    ep: &Endpoint,
    form: &SimulateForm,
) -> ApiResult<Simulated> {
    let payload = match form.payload.trim() {
        "" => serde_json::json!({}),
        text => serde_json::from_str(text)
            .map_err(|e| ApiError::invalid(&["body", "payload"], format!("not JSON: {e}")))?,
    };
    let event_type = match form.event_type.trim() {
        "" => "example.event".to_owned(),
        t => t.to_owned(),
    };
    let out = transformation::simulate(
        state,
        org,
        app,
        ep.id.as_str(),
        TransformationSimulateIn {
            code: form.code.clone(),
            event_type,
            payload,
            channels: None,
            variables: ep.data.transformation.as_ref().and_then(|t| t.variables.clone()),
        },
    )
    .await?;
    Ok(Simulated {
        cancel: out.cancel,
        method: out.method.unwrap_or_else(|| "POST".into()),
        url: out.url,
        payload: pretty_json(&out.payload),
    })
}
