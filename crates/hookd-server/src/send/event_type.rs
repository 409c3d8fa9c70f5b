//! `/api/v1/event-type`: the organisation's catalogue of event types, by name.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::name::{EventTypeName, FeatureFlag, GroupName};
use hookd_store::{EventType, EventTypeData, Order};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, double_option};
use crate::http::pagination::{ListResponse, Pagination};
use crate::http::{Created, parse_field};
use crate::service::Service;
use crate::service::event_type::{self, EventTypeChange};
use crate::service::event_type_openapi;

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_event_types, create_event_type))
        .routes(routes!(
            get_event_type,
            upsert_event_type,
            patch_event_type,
            delete_event_type
        ))
        .routes(routes!(import_openapi))
        .routes(routes!(export_openapi))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypeImportOpenApiIn {
    /// The OpenAPI document, parsed. Give this or `specRaw`.
    #[schema(value_type = Option<Object>)]
    pub spec: Option<serde_json::Value>,
    /// The OpenAPI document as YAML or JSON text.
    pub spec_raw: Option<String>,
    /// Archive every event type the document does not name.
    #[serde(default)]
    pub replace_all: bool,
    /// Change nothing; answer what would change in `to_modify`.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeImportOpenApiOutData {
    /// The event types created, changed, unarchived or archived.
    pub modified: Vec<String>,
    /// A dry run's event types that would be created or changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub to_modify: Option<Vec<crate::service::event_type_openapi::ImportedEventType>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeImportOpenApiOut {
    pub data: EventTypeImportOpenApiOutData,
}

/// Create or update event types from an OpenAPI document's `webhooks` (or
/// `x-webhooks`): one per webhook, named by its key, with its description, request
/// body schema and examples (docs/api.md).
#[utoipa::path(post, path = "/api/v1/event-type/import/openapi", tag = "Event Type",
    operation_id = "v1.event-type.import-openapi", request_body = EventTypeImportOpenApiIn,
    responses((status = 200, body = EventTypeImportOpenApiOut),
        (status = 400, body = crate::http::error::HttpErrorOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn import_openapi(
    tenant: Tenant,
    State(state): State<Service>,
    ApiJson(body): ApiJson<EventTypeImportOpenApiIn>,
) -> ApiResult<Json<EventTypeImportOpenApiOut>> {
    let spec = event_type_openapi::parse_spec(body.spec, body.spec_raw.as_deref())?;
    let types = event_type_openapi::read(&spec)?;
    let done = event_type::import(&state, &tenant.org, types, body.replace_all, body.dry_run).await?;
    Ok(Json(EventTypeImportOpenApiOut {
        data: EventTypeImportOpenApiOutData {
            modified: done.modified,
            to_modify: body.dry_run.then_some(done.to_modify),
        },
    }))
}

/// The event-type catalogue (archived ones left out) as an OpenAPI 3.1 document whose
/// `webhooks` import back to the same catalogue.
#[utoipa::path(get, path = "/api/v1/event-type/export/openapi", tag = "Event Type",
    operation_id = "v1.event-type.export-openapi",
    responses((status = 200, description = "An OpenAPI 3.1 document", body = Object)))]
async fn export_openapi(tenant: Tenant, State(state): State<Service>) -> ApiResult<Json<serde_json::Value>> {
    let all = event_type::all(&state, &tenant.org, false).await?;
    Ok(Json(event_type_openapi::write(&all)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeIn {
    #[schema(example = "user.signup", max_length = 256, pattern = r"^[a-zA-Z0-9\-_.]+$")]
    pub name: String,
    #[schema(example = "A user has signed up")]
    pub description: String,
    #[serde(flatten)]
    pub rest: EventTypeFields,
}

/// The body of `PUT /api/v1/event-type/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeUpsertIn {
    pub description: String,
    #[serde(flatten)]
    pub rest: EventTypeFields,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeFields {
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub deprecated: bool,
    /// JSON Schemas by version, e.g. `{"1": {...}}`.
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Value>,
    pub group_name: Option<String>,
    pub feature_flags: Option<Vec<String>>,
    /// Deprecated single-flag form of `featureFlags`.
    pub feature_flag: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypePatch {
    pub description: Option<String>,
    pub archived: Option<bool>,
    pub deprecated: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub feature_flags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub feature_flag: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub group_name: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeOut {
    #[schema(value_type = String)]
    pub name: EventTypeName,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Value>,
    #[schema(value_type = Option<String>)]
    pub group_name: Option<GroupName>,
    #[schema(value_type = Option<Vec<String>>)]
    pub feature_flags: Option<BTreeSet<FeatureFlag>>,
    /// The flag when there is exactly one (older clients read this).
    #[schema(value_type = Option<String>)]
    pub feature_flag: Option<FeatureFlag>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EventTypeOut {
    fn new(et: EventType, with_content: bool) -> Self {
        let d = et.data;
        Self {
            name: et.name,
            description: d.description,
            archived: d.archived,
            deprecated: d.deprecated,
            schemas: if with_content { d.schemas } else { None },
            group_name: d.group_name,
            feature_flag: (d.feature_flags.len() == 1)
                .then(|| d.feature_flags.iter().next().cloned())
                .flatten(),
            feature_flags: (!d.feature_flags.is_empty()).then_some(d.feature_flags),
            created_at: et.created_at,
            updated_at: et.updated_at,
        }
    }
}

impl From<EventType> for EventTypeOut {
    fn from(et: EventType) -> Self {
        Self::new(et, true)
    }
}

fn check_schemas(schemas: &Option<serde_json::Value>) -> ApiResult<()> {
    match schemas {
        None | Some(serde_json::Value::Object(_)) => Ok(()),
        Some(_) => Err(ApiError::invalid(
            &["body", "schemas"],
            "schemas must be an object of JSON Schemas by version",
        )),
    }
}

fn parse_flags(flags: Option<Vec<String>>, single: Option<String>) -> ApiResult<BTreeSet<FeatureFlag>> {
    let (list, field) = match (flags, single) {
        (Some(list), _) => (list, "featureFlags"),
        (None, Some(one)) => (vec![one], "featureFlag"),
        (None, None) => (Vec::new(), "featureFlags"),
    };
    list.iter().map(|f| parse_field(f, field)).collect()
}

impl EventTypeFields {
    fn into_data(self, description: String) -> ApiResult<EventTypeData> {
        check_schemas(&self.schemas)?;
        Ok(EventTypeData {
            description,
            archived: self.archived,
            deprecated: self.deprecated,
            schemas: self.schemas,
            group_name: self
                .group_name
                .as_deref()
                .map(|g| parse_field(g, "groupName"))
                .transpose()?,
            feature_flags: parse_flags(self.feature_flags, self.feature_flag)?,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEventTypesFilter {
    /// Include archived (deleted but not expunged) event types.
    #[serde(default)]
    include_archived: bool,
    /// Include each event type's schemas.
    #[serde(default)]
    with_content: bool,
}

/// List event types, by name.
#[utoipa::path(get, path = "/api/v1/event-type", tag = "Event Type", params(Pagination, ListEventTypesFilter),
    responses((status = 200, body = ListResponse<EventTypeOut>)))]
async fn list_event_types(
    tenant: Tenant,
    State(state): State<Service>,
    ApiQuery(page): ApiQuery<Pagination>,
    ApiQuery(filter): ApiQuery<ListEventTypesFilter>,
) -> ApiResult<Json<ListResponse<EventTypeOut>>> {
    let query = page.to_query(Order::Ascending)?;
    let page = state
        .store
        .list_event_types(&tenant.org, &query, filter.include_archived)
        .await?;
    Ok(Json(ListResponse::from_page(
        page,
        |e| e.name.to_string(),
        |e| EventTypeOut::new(e, filter.with_content),
    )))
}

/// Create an event type.
#[utoipa::path(post, path = "/api/v1/event-type", tag = "Event Type", request_body = EventTypeIn,
    responses((status = 201, body = EventTypeOut), (status = 409, body = crate::http::error::HttpErrorOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn create_event_type(
    tenant: Tenant,
    State(state): State<Service>,
    ApiJson(body): ApiJson<EventTypeIn>,
) -> ApiResult<Created<EventTypeOut>> {
    let name: EventTypeName = parse_field(&body.name, "name")?;
    let data = body.rest.into_data(body.description)?;
    let et = event_type::create(&state, &tenant.org, &name, data).await?;
    Ok(Created::new(et.into()))
}

/// Get an event type.
#[utoipa::path(get, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = String, Path)), responses((status = 200, body = EventTypeOut)))]
async fn get_event_type(
    tenant: Tenant,
    State(state): State<Service>,
    Path(name): Path<String>,
) -> ApiResult<Json<EventTypeOut>> {
    Ok(Json(state.store.get_event_type(&tenant.org, &name).await?.into()))
}

/// Create or replace an event type.
#[utoipa::path(put, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = String, Path)), request_body = EventTypeUpsertIn,
    responses((status = 200, body = EventTypeOut), (status = 201, body = EventTypeOut)))]
async fn upsert_event_type(
    tenant: Tenant,
    State(state): State<Service>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<EventTypeUpsertIn>,
) -> ApiResult<Created<EventTypeOut>> {
    let name: EventTypeName = name
        .parse()
        .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(&["path", "event_type_name"], e.message))?;
    let data = body.rest.into_data(body.description)?;
    let (et, created) = event_type::replace(&state, &tenant.org, &name, data).await?;
    Ok(Created::new_if(created, et.into()))
}

/// Change some fields of an event type.
#[utoipa::path(patch, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = String, Path)), request_body = EventTypePatch,
    responses((status = 200, body = EventTypeOut)))]
async fn patch_event_type(
    tenant: Tenant,
    State(state): State<Service>,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<EventTypePatch>,
) -> ApiResult<Json<EventTypeOut>> {
    if let Some(schemas) = &patch.schemas {
        check_schemas(schemas)?;
    }
    let flags = match (patch.feature_flags, patch.feature_flag) {
        (None, None) => None,
        (Some(list), _) => Some(parse_flags(list, None)?),
        (None, Some(one)) => Some(parse_flags(None, one)?),
    };
    let group = match patch.group_name {
        Some(Some(g)) => Some(Some(parse_field::<GroupName>(&g, "groupName")?)),
        Some(None) => Some(None),
        None => None,
    };
    let change = EventTypeChange {
        description: patch.description,
        archived: patch.archived,
        deprecated: patch.deprecated,
        schemas: patch.schemas,
        feature_flags: flags,
        group_name: group,
    };
    let et = event_type::change(&state, &tenant.org, &name, change).await?;
    Ok(Json(et.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteOptions {
    /// Remove the event type for good instead of archiving it.
    #[serde(default)]
    expunge: bool,
}

/// Archive an event type (or remove it with `expunge=true`).
#[utoipa::path(delete, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = String, Path), DeleteOptions), responses((status = 204)))]
async fn delete_event_type(
    tenant: Tenant,
    State(state): State<Service>,
    Path(name): Path<String>,
    ApiQuery(options): ApiQuery<DeleteOptions>,
) -> ApiResult<StatusCode> {
    event_type::delete(&state, &tenant.org, &name, options.expunge).await?;
    Ok(StatusCode::NO_CONTENT)
}
