//! `/api/v1/auth/...`: the consumer portal's access, as Svix's API gives it — a magic
//! link (and its token) that signs a customer in to `/portal` for one application,
//! logging that token out, and expiring an application's portal sessions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hookd_store::UiSessionKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJsonOrDefault;
use crate::send::application::ApplicationIn;
use crate::send::message::resolve_or_create_app;
use crate::service::Service;
use crate::service::ui_session::{self, PortalGrant};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(app_portal_access))
        .routes(routes!(logout))
        .routes(routes!(expire_all))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPortalAccessIn {
    /// Creates the application when the path's id or uid does not exist yet.
    pub application: Option<ApplicationIn>,
    /// `ViewBase`, `ViewEndpointSecret`, `ManageEndpointSecret`,
    /// `ManageTransformations`, `CreateAttempts`, `ManageEndpoint`; all when absent.
    pub capabilities: Option<Vec<String>>,
    /// Seconds the access lasts: 3600 to 604800 (the default).
    #[schema(minimum = 3600, maximum = 604800)]
    pub expiry: Option<u64>,
    /// Event types with one of these feature flags show in the portal (others with
    /// feature flags stay hidden).
    pub feature_flags: Option<Vec<String>>,
    /// Deprecated: only `ViewBase` (read-only).
    pub read_only: Option<bool>,
    /// Lets `expire-all` end only this caller's sessions.
    #[schema(max_length = 64, pattern = r"^[a-zA-Z0-9@_-]+$")]
    pub session_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppPortalAccessOut {
    /// Opens the portal signed in (`/portal/sign-in?token=...`); the token leaves the
    /// address bar at once.
    pub url: String,
    /// The portal session's token (`hks_...`); `POST /api/v1/auth/logout` with it as
    /// the bearer token ends it.
    pub token: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationTokenExpireIn {
    /// Seconds until the sessions end (default 0: now).
    pub expiry: Option<u64>,
    /// Only sessions created with one of these `sessionId`s.
    pub session_ids: Option<Vec<String>>,
}

fn check_session_id(id: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &["body", "sessionId"],
            "1 to 64 characters of a-z, A-Z, 0-9, @, _ and -",
        ))
    }
}

fn check_feature_flags(flags: &[String]) -> ApiResult<()> {
    let ok = flags.len() <= 25
        && flags.iter().all(|f| {
            (1..=256).contains(&f.len())
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &["body", "featureFlags"],
            "at most 25 flags of 1 to 256 characters of a-z, A-Z, 0-9, -, _ and .",
        ))
    }
}

/// A link (and its token) that opens the consumer portal for one application.
#[utoipa::path(post, path = "/api/v1/auth/app-portal-access/{app_id}", tag = "Authentication",
    params(("app_id" = String, Path)), request_body = Option<AppPortalAccessIn>,
    responses((status = 200, body = AppPortalAccessOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn app_portal_access(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app_key): Path<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<AppPortalAccessIn>,
) -> ApiResult<Json<AppPortalAccessOut>> {
    if let Some(id) = &body.session_id {
        check_session_id(id)?;
    }
    let feature_flags = body.feature_flags.unwrap_or_default();
    check_feature_flags(&feature_flags)?;
    // Checked even when the application exists and it is not used.
    if let Some(app) = &body.application {
        app.clone().into_data()?;
    }
    let app = resolve_or_create_app(&state, &tenant, &app_key, body.application).await?;
    let (url, token) = ui_session::portal_access(
        &state,
        &tenant.org,
        &app,
        PortalGrant {
            capabilities: body.capabilities,
            read_only: body.read_only.unwrap_or(false),
            feature_flags,
            session_id: body.session_id,
            expiry: body.expiry,
        },
    )
    .await?;
    Ok(Json(AppPortalAccessOut { url, token }))
}

/// The portal token presented as `Authorization: Bearer hks_...`.
struct PortalBearer(ui_session::SignedIn);

impl axum::extract::FromRequestParts<Service> for PortalBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Service) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                let (scheme, token) = h.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_owned())
            })
            .ok_or_else(|| ApiError::Unauthorized("missing `Authorization: Bearer <portal token>`".into()))?;
        Ok(Self(
            ui_session::authenticate(state, &presented, UiSessionKind::Portal).await?,
        ))
    }
}

/// Ends the portal session whose token is the bearer token.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "Authentication",
    responses((status = 204), (status = 401, body = crate::http::error::HttpErrorOut)))]
async fn logout(State(state): State<Service>, PortalBearer(session): PortalBearer) -> ApiResult<StatusCode> {
    ui_session::sign_out(&state, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends an application's portal sessions (or only those of some `sessionIds`), now or
/// after `expiry` seconds.
#[utoipa::path(post, path = "/api/v1/auth/app/{app_id}/expire-all", tag = "Authentication",
    params(("app_id" = String, Path)), request_body = Option<ApplicationTokenExpireIn>,
    responses((status = 204), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn expire_all(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app_key): Path<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<ApplicationTokenExpireIn>,
) -> ApiResult<StatusCode> {
    if let Some(ids) = &body.session_ids {
        ids.iter().try_for_each(|id| check_session_id(id))?;
    }
    let app = state.store.get_application(&tenant.org, &app_key).await?.id;
    ui_session::expire_portal_sessions(
        &state,
        &tenant.org,
        &app,
        body.session_ids.as_deref(),
        body.expiry,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
