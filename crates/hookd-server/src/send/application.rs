//! `/api/v1/app`: applications, addressed by id or uid.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::id::ApplicationId;
use hookd_core::name::Uid;
use hookd_core::throttle::ThrottleRate;
use hookd_store::{Application, ApplicationData, ApplicationFilter, Order};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, double_option};
use crate::http::pagination::{ListResponse, Pagination};
use crate::http::{Created, check_metadata, parse_field, parse_throttle_rate, patch_throttle_rate};
use crate::service::Service;
use crate::service::application::{self, ApplicationChange};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_applications, create_application))
        .routes(routes!(
            get_application,
            upsert_application,
            patch_application,
            delete_application
        ))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationIn {
    /// Application name for human consumption.
    #[schema(min_length = 1, example = "My first application")]
    pub name: String,
    /// Maximum messages per second to send to this application.
    #[schema(minimum = 1)]
    pub throttle_rate: Option<u16>,
    /// Optional unique identifier for the application.
    #[schema(max_length = 256, pattern = r"^[a-zA-Z0-9\-_.]+$")]
    pub uid: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPatch {
    pub name: Option<String>,
    /// `null` or 0 removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u16>)]
    pub throttle_rate: Option<Option<u16>>,
    /// `null` removes the uid.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub uid: Option<Option<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationOut {
    #[schema(value_type = String, example = "app_1srOrx2ZWZBpBUvZwXKQmoEYga2")]
    pub id: ApplicationId,
    #[schema(value_type = Option<String>)]
    pub uid: Option<Uid>,
    pub name: String,
    pub throttle_rate: Option<u16>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Application> for ApplicationOut {
    fn from(a: Application) -> Self {
        Self {
            id: a.id,
            uid: a.data.uid,
            name: a.data.name,
            throttle_rate: a.data.throttle_rate.map(ThrottleRate::get),
            metadata: a.data.metadata,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 512 {
        return Err(ApiError::invalid(
            &["body", "name"],
            "the name must be 1 to 512 characters",
        ));
    }
    Ok(())
}

impl ApplicationIn {
    pub(crate) fn into_data(self) -> ApiResult<ApplicationData> {
        check_name(&self.name)?;
        let throttle_rate = parse_throttle_rate(self.throttle_rate)?;
        let metadata = self.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        Ok(ApplicationData {
            uid: self.uid.as_deref().map(|u| parse_field(u, "uid")).transpose()?,
            name: self.name,
            throttle_rate,
            metadata,
        })
    }
}

impl ApplicationPatch {
    /// Checks every field given, naming the failing one.
    fn parse(self) -> ApiResult<ApplicationChange> {
        if let Some(name) = &self.name {
            check_name(name)?;
        }
        if let Some(m) = &self.metadata {
            check_metadata(m)?;
        }
        Ok(ApplicationChange {
            name: self.name,
            throttle_rate: patch_throttle_rate(self.throttle_rate),
            uid: self
                .uid
                .map(|u| u.map(|u| parse_field::<Uid>(&u, "uid")).transpose())
                .transpose()?,
            metadata: self.metadata,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListApplicationsFilter {
    /// Leave out applications that have no endpoint.
    #[serde(default)]
    exclude_apps_with_no_endpoints: bool,
    /// Leave out applications whose endpoints are all disabled.
    #[serde(default)]
    exclude_apps_with_disabled_endpoints: bool,
}

/// List the organisation's applications.
#[utoipa::path(get, path = "/api/v1/app", tag = "Application",
    params(Pagination, ListApplicationsFilter),
    responses((status = 200, body = ListResponse<ApplicationOut>)))]
async fn list_applications(
    tenant: Tenant,
    State(state): State<Service>,
    ApiQuery(page): ApiQuery<Pagination>,
    ApiQuery(filter): ApiQuery<ListApplicationsFilter>,
) -> ApiResult<Json<ListResponse<ApplicationOut>>> {
    let query = page.to_query(Order::Ascending)?;
    let filter = ApplicationFilter {
        exclude_without_endpoints: filter.exclude_apps_with_no_endpoints,
        exclude_all_endpoints_disabled: filter.exclude_apps_with_disabled_endpoints,
    };
    let page = state.store.list_applications(&tenant.org, &query, filter).await?;
    Ok(Json(ListResponse::from_page(
        page,
        |a| a.id.to_string(),
        ApplicationOut::from,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateOptions {
    /// Answer 200 with the existing application when one has this `uid`.
    #[serde(default)]
    get_if_exists: bool,
}

/// Create an application.
#[utoipa::path(post, path = "/api/v1/app", tag = "Application", params(CreateOptions),
    request_body = ApplicationIn,
    responses((status = 201, body = ApplicationOut), (status = 200, description = "existing (get_if_exists)", body = ApplicationOut),
        (status = 409, body = crate::http::error::HttpErrorOut), (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn create_application(
    tenant: Tenant,
    State(state): State<Service>,
    ApiQuery(options): ApiQuery<CreateOptions>,
    ApiJson(body): ApiJson<ApplicationIn>,
) -> ApiResult<Created<ApplicationOut>> {
    let data = body.into_data()?;
    let (app, created) = application::create(&state, &tenant.org, data, options.get_if_exists).await?;
    Ok(Created::new_if(created, app.into()))
}

/// Get an application by id or uid.
#[utoipa::path(get, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    responses((status = 200, body = ApplicationOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn get_application(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app_id): Path<String>,
) -> ApiResult<Json<ApplicationOut>> {
    Ok(Json(
        state.store.get_application(&tenant.org, &app_id).await?.into(),
    ))
}

/// Create or replace an application. Creating by a uid-shaped key gives it that uid.
#[utoipa::path(put, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    request_body = ApplicationIn,
    responses((status = 200, body = ApplicationOut), (status = 201, body = ApplicationOut)))]
async fn upsert_application(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app_id): Path<String>,
    ApiJson(body): ApiJson<ApplicationIn>,
) -> ApiResult<Created<ApplicationOut>> {
    let data = body.into_data()?;
    let (app, created) = application::replace(&state, &tenant.org, &app_id, data).await?;
    Ok(Created::new_if(created, app.into()))
}

/// Change some fields of an application.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    request_body = ApplicationPatch, responses((status = 200, body = ApplicationOut)))]
async fn patch_application(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app_id): Path<String>,
    ApiJson(patch): ApiJson<ApplicationPatch>,
) -> ApiResult<Json<ApplicationOut>> {
    let app = application::change(&state, &tenant.org, &app_id, patch.parse()?).await?;
    Ok(Json(app.into()))
}

/// Delete an application with its endpoints.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    responses((status = 204), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn delete_application(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app_id): Path<String>,
) -> ApiResult<StatusCode> {
    application::delete(&state, &tenant.org, &app_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
