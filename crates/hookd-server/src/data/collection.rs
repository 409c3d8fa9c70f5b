//! `/api/v1/app/{app_id}/collection`: an application's collections of JSON documents
//! and the documents themselves (versions with `ETag`/`If-Match`, merge-patch,
//! increments, listing by key prefix and field equality).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use hookd_store::{CollectionData, Definition, DefinitionKind, DefinitionSpec, Order};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::data::{DocumentOut, document_filter, etag, if_match, path_key, path_name, written_response};
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, double_option};
use crate::http::pagination::{ListResponse, Pagination};
use crate::service::Service;
use crate::service::data::{
    self, CollectionChange, DefinitionChange, DocumentOp, app_id, list_definitions, metered, write_document,
};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_collections, create_collection))
        .routes(routes!(get_collection, patch_collection, delete_collection))
        .routes(routes!(list_documents))
        .routes(routes!(
            get_document,
            put_document,
            patch_document,
            delete_document
        ))
        .routes(routes!(increment_document))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectionIn {
    #[schema(example = "players", max_length = 64, pattern = r"^[a-zA-Z0-9\-_]+$")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A JSON Schema every document must satisfy.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    /// Publish `document.created|updated|deleted` to the application's endpoints (on
    /// the channel named after the collection).
    #[serde(default)]
    pub publish_events: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectionPatch {
    pub description: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Option<Value>>,
    pub publish_events: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionOut {
    pub name: String,
    pub description: String,
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    pub publish_events: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CollectionOut {
    fn new(def: Definition) -> ApiResult<Self> {
        let DefinitionSpec::Collection(data) = def.spec else {
            return Err(ApiError::not_found("collection"));
        };
        Ok(Self {
            name: def.name,
            description: data.description,
            schema: data.schema,
            publish_events: data.publish_events,
            created_at: def.created_at,
            updated_at: def.updated_at,
        })
    }
}

const KIND: DefinitionKind = DefinitionKind::Collection;

/// List the application's collections, by name.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/collection", tag = "Data", params(Pagination),
    responses((status = 200, body = ListResponse<CollectionOut>)))]
async fn list_collections(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app): Path<String>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<CollectionOut>>> {
    Ok(Json(
        list_definitions(&state, &tenant.org, &app, KIND, &page, CollectionOut::new).await?,
    ))
}

/// Create a collection.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/collection", tag = "Data", request_body = CollectionIn,
    responses((status = 201, body = CollectionOut), (status = 409, body = crate::http::error::HttpErrorOut)))]
async fn create_collection(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<CollectionIn>,
) -> ApiResult<(StatusCode, Json<CollectionOut>)> {
    let name = crate::http::parse_field::<hookd_core::name::DataName>(&body.name, "name")?;
    let collection = CollectionData {
        description: body.description,
        schema: body.schema,
        publish_events: body.publish_events,
    };
    let def = data::create_collection(&state, &tenant.org, &app, &name, collection).await?;
    Ok((StatusCode::CREATED, Json(CollectionOut::new(def)?)))
}

/// Get a collection.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/collection/{name}", tag = "Data",
    responses((status = 200, body = CollectionOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn get_collection(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Json<CollectionOut>> {
    let app = app_id(&state, &tenant.org, &app).await?;
    let def = state.store.get_definition(&tenant.org, &app, KIND, &name).await?;
    Ok(Json(CollectionOut::new(def)?))
}

/// Change a collection (`schema: null` removes the schema). Documents already stored
/// are not re-checked against a new schema; their next write is.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/collection/{name}", tag = "Data", request_body = CollectionPatch,
    responses((status = 200, body = CollectionOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn patch_collection(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name)): Path<(String, String)>,
    ApiJson(patch): ApiJson<CollectionPatch>,
) -> ApiResult<Json<CollectionOut>> {
    let change = CollectionChange {
        description: patch.description,
        schema: patch.schema,
        publish_events: patch.publish_events,
    };
    let def = data::change_definition(
        &state,
        &tenant.org,
        &app,
        &name,
        DefinitionChange::Collection(change),
    )
    .await?;
    Ok(Json(CollectionOut::new(def)?))
}

/// Delete a collection with all its documents.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/collection/{name}", tag = "Data",
    responses((status = 204), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn delete_collection(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    data::delete_definition(&state, &tenant.org, &app, KIND, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List documents by key. Query: `prefix` (keys starting with it), and any other
/// parameter filters on a top-level field's equality (`team=red`, `level=3`,
/// `active=true`, `zip="01234"` for a string of digits).
#[utoipa::path(get, path = "/api/v1/app/{app_id}/collection/{name}/document", tag = "Data", params(Pagination),
    responses((status = 200, body = ListResponse<DocumentOut>)))]
async fn list_documents(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<Pagination>,
    ApiQuery(params): ApiQuery<BTreeMap<String, String>>,
) -> ApiResult<Json<ListResponse<DocumentOut>>> {
    let collection = path_name(&name, "name")?;
    let filter = document_filter(&params, &["limit", "iterator", "order"])?;
    let query = page.to_query(Order::Ascending)?;
    let app = app_id(&state, &tenant.org, &app).await?;
    let page = metered(
        &state,
        &tenant.org,
        false,
        state
            .store
            .list_documents(&tenant.org, &app, &collection, &query, &filter),
    )
    .await?;
    Ok(Json(ListResponse::from_page(
        page,
        |d| d.key.to_string(),
        DocumentOut::from,
    )))
}

/// Get a document; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/collection/{name}/document/{key}", tag = "Data",
    responses((status = 200, body = DocumentOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn get_document(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name, key)): Path<(String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    let (collection, key) = (path_name(&name, "name")?, path_key(&key, "key")?);
    let app = app_id(&state, &tenant.org, &app).await?;
    let doc = metered(
        &state,
        &tenant.org,
        false,
        state.store.get_document(&tenant.org, &app, &collection, &key),
    )
    .await?;
    Ok((etag(&doc), Json(DocumentOut::from(doc))))
}

/// Create or replace a document (the body is the document, a JSON object).
/// `If-Match: "<version>"` makes it conditional (412 when the version moved on).
#[utoipa::path(put, path = "/api/v1/app/{app_id}/collection/{name}/document/{key}", tag = "Data",
    request_body = Object,
    responses((status = 200, body = DocumentOut), (status = 201, body = DocumentOut),
        (status = 412, body = crate::http::error::HttpErrorOut), (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn put_document(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<axum::response::Response> {
    write(&state, &tenant, (app, name, key), &headers, DocumentOp::Put(body))
        .await
        .and_then(written_response)
}

/// Merge-patch a document (RFC 7386: `null` removes a field), creating it when
/// missing. `If-Match` as for PUT.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/collection/{name}/document/{key}", tag = "Data",
    request_body = Object,
    responses((status = 200, body = DocumentOut), (status = 201, description = "created (it was missing)", body = DocumentOut),
        (status = 412, body = crate::http::error::HttpErrorOut)))]
async fn patch_document(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<axum::response::Response> {
    write(
        &state,
        &tenant,
        (app, name, key),
        &headers,
        DocumentOp::Patch(body),
    )
    .await
    .and_then(written_response)
}

/// Add to numeric top-level fields atomically: `{"coins": 5, "lives": -1}` (missing
/// fields count from 0).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/collection/{name}/document/{key}/increment", tag = "Data",
    request_body = Object,
    responses((status = 200, body = DocumentOut), (status = 201, description = "created (it was missing)", body = DocumentOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn increment_document(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<axum::response::Response> {
    write(
        &state,
        &tenant,
        (app, name, key),
        &headers,
        DocumentOp::Increment(body),
    )
    .await
    .and_then(written_response)
}

/// Delete a document. `If-Match` as for PUT.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/collection/{name}/document/{key}", tag = "Data",
    responses((status = 204), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn delete_document(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    write(&state, &tenant, (app, name, key), &headers, DocumentOp::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A document write named by the path, conditional on `If-Match`.
async fn write(
    state: &Service,
    tenant: &Tenant,
    (app, name, key): (String, String, String),
    headers: &HeaderMap,
    op: DocumentOp,
) -> ApiResult<hookd_store::DocumentWritten> {
    let (collection, key) = (path_name(&name, "name")?, path_key(&key, "key")?);
    let required = if_match(headers)?;
    let app = app_id(state, &tenant.org, &app).await?;
    write_document(state, &tenant.org, &app, &collection, &key, op, required).await
}
