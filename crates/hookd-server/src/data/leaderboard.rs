//! `/api/v1/app/{app_id}/leaderboard`: an application's leaderboards and their scores
//! (submit under a policy, top N, a player's rank and neighbours, reset).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::data::{PeriodKey, ResetPeriod, ScoreOrder, ScorePolicy};
use hookd_store::{Definition, DefinitionKind, DefinitionSpec, LeaderboardData, Period};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::data::{ScoreIn, ScoreSubmittedOut, ScoresOut, path_key, path_name};
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{ListResponse, Pagination};
use crate::service::Service;
use crate::service::data::{self, DefinitionChange, LeaderboardChange, app_id, list_definitions, metered};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_leaderboards, create_leaderboard))
        .routes(routes!(get_leaderboard, patch_leaderboard, delete_leaderboard))
        .routes(routes!(top_scores))
        .routes(routes!(submit_score, player_rank))
        .routes(routes!(reset_leaderboard))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderboardIn {
    #[schema(example = "weekly-points", max_length = 64, pattern = r"^[a-zA-Z0-9\-_]+$")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `best` (default), `latest` or `sum`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub policy: ScorePolicy,
    /// `desc` (default: higher is better) or `asc` (lower is better, e.g. times).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub order: ScoreOrder,
    /// `never` (default), `daily`, `weekly` or `monthly` (UTC calendar periods).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub reset: ResetPeriod,
}

/// What may change on a leaderboard (its order may not: ranks are kept in it).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderboardPatch {
    pub description: Option<String>,
    #[schema(value_type = Option<String>)]
    pub policy: Option<ScorePolicy>,
    #[schema(value_type = Option<String>)]
    pub reset: Option<ResetPeriod>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderboardOut {
    pub name: String,
    pub description: String,
    #[schema(value_type = String)]
    pub policy: ScorePolicy,
    #[schema(value_type = String)]
    pub order: ScoreOrder,
    #[schema(value_type = String)]
    pub reset: ResetPeriod,
    /// The key of the period now counting.
    pub current_period: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl LeaderboardOut {
    fn new(def: Definition) -> ApiResult<Self> {
        let DefinitionSpec::Leaderboard(data) = def.spec else {
            return Err(ApiError::not_found("leaderboard"));
        };
        Ok(Self {
            name: def.name,
            current_period: hookd_core::data::period_key(data.reset, Utc::now()),
            description: data.description,
            policy: data.policy,
            order: data.order,
            reset: data.reset,
            created_at: def.created_at,
            updated_at: def.updated_at,
        })
    }
}

const KIND: DefinitionKind = DefinitionKind::Leaderboard;

/// List the application's leaderboards, by name.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/leaderboard", tag = "Data", params(Pagination),
    responses((status = 200, body = ListResponse<LeaderboardOut>)))]
async fn list_leaderboards(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app): Path<String>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<LeaderboardOut>>> {
    Ok(Json(
        list_definitions(&state, &tenant.org, &app, KIND, &page, LeaderboardOut::new).await?,
    ))
}

/// Create a leaderboard.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/leaderboard", tag = "Data", request_body = LeaderboardIn,
    responses((status = 201, body = LeaderboardOut), (status = 409, body = crate::http::error::HttpErrorOut)))]
async fn create_leaderboard(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<LeaderboardIn>,
) -> ApiResult<(StatusCode, Json<LeaderboardOut>)> {
    let name = crate::http::parse_field::<hookd_core::name::DataName>(&body.name, "name")?;
    let board = LeaderboardData {
        description: body.description,
        policy: body.policy,
        order: body.order,
        reset: body.reset,
    };
    let def = data::create_leaderboard(&state, &tenant.org, &app, &name, board).await?;
    Ok((StatusCode::CREATED, Json(LeaderboardOut::new(def)?)))
}

/// Get a leaderboard.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/leaderboard/{name}", tag = "Data",
    responses((status = 200, body = LeaderboardOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn get_leaderboard(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Json<LeaderboardOut>> {
    let app = app_id(&state, &tenant.org, &app).await?;
    let def = state.store.get_definition(&tenant.org, &app, KIND, &name).await?;
    Ok(Json(LeaderboardOut::new(def)?))
}

/// Change a leaderboard's description, policy (applies to later submissions) or reset
/// period (scores of the old periods stay readable by their period key).
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/leaderboard/{name}", tag = "Data", request_body = LeaderboardPatch,
    responses((status = 200, body = LeaderboardOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn patch_leaderboard(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name)): Path<(String, String)>,
    ApiJson(patch): ApiJson<LeaderboardPatch>,
) -> ApiResult<Json<LeaderboardOut>> {
    let change = LeaderboardChange {
        description: patch.description,
        policy: patch.policy,
        reset: patch.reset,
    };
    let def = data::change_definition(
        &state,
        &tenant.org,
        &app,
        &name,
        DefinitionChange::Leaderboard(change),
    )
    .await?;
    Ok(Json(LeaderboardOut::new(def)?))
}

/// Delete a leaderboard with all its scores.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/leaderboard/{name}", tag = "Data",
    responses((status = 204), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn delete_leaderboard(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    data::delete_definition(&state, &tenant.org, &app, KIND, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScoreQuery {
    /// Entries to answer (top: 1 to 1000, default 10).
    pub limit: Option<usize>,
    /// Entries above and below the player (rank: 0 to 50, default 2).
    pub neighbours: Option<usize>,
    /// A past period's key (e.g. `2026-11-22`, `2026-W47`, `2026-10`); default: now.
    pub period: Option<String>,
}

impl ScoreQuery {
    pub fn period(&self) -> ApiResult<Period> {
        match &self.period {
            None => Ok(Period::At(Utc::now())),
            Some(p) => p
                .parse::<PeriodKey>()
                .map(Period::Named)
                .map_err(|e| ApiError::invalid(&["query", "period"], e.message)),
        }
    }

    pub fn limit(&self) -> ApiResult<usize> {
        match self.limit.unwrap_or(10) {
            n @ 1..=1000 => Ok(n),
            _ => Err(ApiError::invalid(
                &["query", "limit"],
                "limit must be between 1 and 1000",
            )),
        }
    }

    pub fn neighbours(&self) -> ApiResult<usize> {
        match self.neighbours.unwrap_or(2) {
            n @ 0..=50 => Ok(n),
            _ => Err(ApiError::invalid(
                &["query", "neighbours"],
                "neighbours must be between 0 and 50",
            )),
        }
    }
}

/// The best scores of the current (or a named) period, best first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/leaderboard/{name}/top", tag = "Data", params(ScoreQuery),
    responses((status = 200, body = ScoresOut)))]
async fn top_scores(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<ScoreQuery>,
) -> ApiResult<Json<ScoresOut>> {
    let board = path_name(&name, "name")?;
    let (period, limit) = (q.period()?, q.limit()?);
    let app = app_id(&state, &tenant.org, &app).await?;
    let top = metered(
        &state,
        &tenant.org,
        false,
        state.store.top_scores(&tenant.org, &app, &board, &period, limit),
    )
    .await?;
    Ok(Json(ScoresOut::new(top)))
}

/// Submit a player's score; the board's policy decides what is kept.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/leaderboard/{name}/score/{player}", tag = "Data",
    request_body = ScoreIn,
    responses((status = 200, body = ScoreSubmittedOut), (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn submit_score(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name, player)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<ScoreIn>,
) -> ApiResult<Json<ScoreSubmittedOut>> {
    let (board, player) = (path_name(&name, "name")?, path_key(&player, "player")?);
    let app = app_id(&state, &tenant.org, &app).await?;
    let submitted =
        crate::service::data::submit_score(&state, &tenant.org, &app, &board, &player, body.score).await?;
    Ok(Json(submitted.into()))
}

/// A player's rank with `neighbours` entries above and below, best first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/leaderboard/{name}/score/{player}", tag = "Data",
    params(ScoreQuery),
    responses((status = 200, body = ScoresOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn player_rank(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name, player)): Path<(String, String, String)>,
    ApiQuery(q): ApiQuery<ScoreQuery>,
) -> ApiResult<Json<ScoresOut>> {
    let (board, player) = (path_name(&name, "name")?, path_key(&player, "player")?);
    let (period, neighbours) = (q.period()?, q.neighbours()?);
    let app = app_id(&state, &tenant.org, &app).await?;
    let window = metered(
        &state,
        &tenant.org,
        false,
        state
            .store
            .scores_around(&tenant.org, &app, &board, &player, neighbours, &period),
    )
    .await?;
    Ok(Json(ScoresOut::new(window)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetOut {
    /// Scores deleted.
    pub deleted: u64,
}

/// Start the leaderboard over: every score of every period is deleted.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/leaderboard/{name}/reset", tag = "Data",
    responses((status = 200, body = ResetOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn reset_leaderboard(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Json<ResetOut>> {
    let board = path_name(&name, "name")?;
    let deleted = data::reset_leaderboard(&state, &tenant.org, &app, &board).await?;
    Ok(Json(ResetOut { deleted }))
}
