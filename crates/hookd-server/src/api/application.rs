//! `/api/v1/app`: applications, addressed by id or uid.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::id::ApplicationId;
use hookd_core::name::Uid;
use hookd_store::{Application, ApplicationData, ApplicationFilter, Order, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{Created, check_metadata, parse_field, upsert};
use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, double_option};
use crate::pagination::{ListResponse, Pagination};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_applications, create_application))
        .routes(routes!(
            get_application,
            upsert_application,
            patch_application,
            delete_application
        ))
}

#[derive(Debug, Deserialize, ToSchema)]
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
            throttle_rate: a.data.throttle_rate,
            metadata: a.data.metadata,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// Sends an `app.*` operational webhook (a hookd extension).
async fn app_event(state: &AppState, tenant: &Tenant, kind: &'static str, app: &Application) {
    let event = hookd_dispatch::events::OperationalEvent::app(kind, &app.id, app.data.uid.as_ref());
    crate::api::emit_event(state, &tenant.org, event).await;
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
        if self.throttle_rate == Some(0) {
            return Err(ApiError::invalid(
                &["body", "throttleRate"],
                "throttleRate must be at least 1",
            ));
        }
        let metadata = self.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        Ok(ApplicationData {
            uid: self.uid.as_deref().map(|u| parse_field(u, "uid")).transpose()?,
            name: self.name,
            throttle_rate: self.throttle_rate,
            metadata,
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
    State(state): State<AppState>,
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
        (status = 409, body = crate::error::HttpErrorOut), (status = 422, body = crate::error::ValidationErrorOut)))]
async fn create_application(
    tenant: Tenant,
    State(state): State<AppState>,
    ApiQuery(options): ApiQuery<CreateOptions>,
    ApiJson(body): ApiJson<ApplicationIn>,
) -> ApiResult<Created<ApplicationOut>> {
    let data = body.into_data()?;
    let store = &state.store;
    let existing = async |uid: &Option<Uid>| match uid {
        Some(uid) if options.get_if_exists => match store.get_application(&tenant.org, uid.as_str()).await {
            Ok(app) => Ok(Some(app)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(ApiError::from(e)),
        },
        _ => Ok(None),
    };
    if let Some(app) = existing(&data.uid).await? {
        return Ok(Created::existing(app.into()));
    }
    let uid = data.uid.clone();
    match store.create_application(&tenant.org, data).await {
        Ok(app) => {
            app_event(&state, &tenant, "app.created", &app).await;
            Ok(Created::new(app.into()))
        }
        // Created concurrently by someone else between our look-up and insert.
        Err(StoreError::Conflict(m)) => match existing(&uid).await? {
            Some(app) => Ok(Created::existing(app.into())),
            None => Err(ApiError::Conflict(m)),
        },
        Err(e) => Err(e.into()),
    }
}

/// Get an application by id or uid.
#[utoipa::path(get, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    responses((status = 200, body = ApplicationOut), (status = 404, body = crate::error::HttpErrorOut)))]
async fn get_application(
    tenant: Tenant,
    State(state): State<AppState>,
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
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    ApiJson(body): ApiJson<ApplicationIn>,
) -> ApiResult<Created<ApplicationOut>> {
    let data = body.into_data()?;
    let store = &state.store;
    let org = &tenant.org;
    let replace = |d: ApplicationData| {
        store.update_application(
            org,
            &app_id,
            Box::new(move |cur: &mut ApplicationData| {
                // A PUT without a uid keeps the one the application has.
                let uid = d.uid.or_else(|| cur.uid.take());
                *cur = ApplicationData { uid, ..d };
                Ok(())
            }),
        )
    };
    let mut create_data = data.clone();
    if create_data.uid.is_none() && !ApplicationId::is_valid(&app_id) {
        create_data.uid = Some(parse_field(&app_id, "uid")?);
    }
    let (app, created) = upsert(
        || replace(data.clone()),
        || async {
            if ApplicationId::is_valid(&app_id) {
                // Ids are made by the server: a missing id cannot be created.
                return Err(StoreError::NotFound("application"));
            }
            store.create_application(org, create_data).await
        },
    )
    .await?;
    state.lookups.apps.clear();
    app_event(
        &state,
        &tenant,
        if created { "app.created" } else { "app.updated" },
        &app,
    )
    .await;
    Ok(Created::new_if(created, app.into()))
}

/// Change some fields of an application.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    request_body = ApplicationPatch, responses((status = 200, body = ApplicationOut)))]
async fn patch_application(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    ApiJson(patch): ApiJson<ApplicationPatch>,
) -> ApiResult<Json<ApplicationOut>> {
    if let Some(name) = &patch.name {
        check_name(name)?;
    }
    if let Some(m) = &patch.metadata {
        check_metadata(m)?;
    }
    let uid = match patch.uid {
        Some(Some(u)) => Some(Some(parse_field::<Uid>(&u, "uid")?)),
        Some(None) => Some(None),
        None => None,
    };
    let app = state
        .store
        .update_application(
            &tenant.org,
            &app_id,
            Box::new(move |d| {
                if let Some(name) = patch.name {
                    d.name = name;
                }
                if let Some(rate) = patch.throttle_rate {
                    d.throttle_rate = rate.filter(|r| *r > 0);
                }
                if let Some(uid) = uid {
                    d.uid = uid;
                }
                if let Some(m) = patch.metadata {
                    d.metadata = m;
                }
                Ok(())
            }),
        )
        .await?;
    state.lookups.apps.clear();
    app_event(&state, &tenant, "app.updated", &app).await;
    Ok(Json(app.into()))
}

/// Delete an application with its endpoints.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    responses((status = 204), (status = 404, body = crate::error::HttpErrorOut)))]
async fn delete_application(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(app_id): Path<String>,
) -> ApiResult<StatusCode> {
    let app = state.store.get_application(&tenant.org, &app_id).await?;
    state
        .store
        .delete_application(&tenant.org, app.id.as_str())
        .await?;
    state.lookups.apps.clear();
    app_event(&state, &tenant, "app.deleted", &app).await;
    Ok(StatusCode::NO_CONTENT)
}
