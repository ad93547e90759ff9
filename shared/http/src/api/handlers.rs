//! The API's handlers: decode the request, call one use case from [`service`](super::service), encode the answer.
//! Their `#[utoipa::path]` attributes are the OpenAPI document.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::ApiState;
use super::cache::Lookup;
use super::extract::{ApiJson, ApiQuery, IdPath};
use super::model::{
    Activity, ActivityPage, ActivityQuery, CompanyDetail, CompanyPage, CompanyQuery, ConflictQuery, Contact,
    ContactPage, ContactQuery, DashboardStats, Deal, DealOwnerBody, DealPage, DealQuery, ErrorBody, NewActivityBody,
    NewContactBody, OwnerList, OwnerQuery, StageMoveBody, StageMoveResult, SyncConflictPage,
};
use super::openapi::ApiDoc;
use super::service;
use crate::auth::Principal;
use crate::error::HttpError;

/// Any path that names no route (under `/api`, behind the bearer check): the API's JSON error, not an empty 404.
pub async fn no_such_route(uri: axum::http::Uri) -> Response {
    crate::error::HttpError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {}; the API's routes are listed in /api/openapi.json",
            uri.path()
        ),
    )
    .into_response()
}

/// A method a route does not take: the API's JSON error, not an empty 405. axum adds the `Allow` header naming the
/// methods it does take.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    crate::error::HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; the Allow header lists what is",
            uri.path()
        ),
    )
    .into_response()
}

/// `GET /api/openapi.json`: this API's OpenAPI 3.1 document.
pub async fn openapi_json() -> Response {
    use utoipa::OpenApi;
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        ApiDoc::openapi().to_json().unwrap_or_default(),
    )
        .into_response()
}

#[utoipa::path(
    get, path = "/api/dashboard/stats", tag = "dashboard",
    summary = "Dashboard statistics",
    description = "The guide's four dashboard queries (pipeline overview, top companies, recent activities, win rate) \
                   and the outbound sync's health. Each query is cached for 5 minutes; writes through this API clear \
                   the cache. The Cache-Status header says whether every part came from the cache.",
    responses(
        (status = 200, description = "The statistics", body = DashboardStats,
         headers(("cache-status" = String, description = "`crmsync; hit`, or `crmsync; fwd=miss` when any query ran"))),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn dashboard_stats(State(state): State<ApiState>) -> Result<Response, HttpError> {
    let (stats, lookup) = service::dashboard_stats(&state).await?;
    let cache_status = match lookup {
        Lookup::Hit => "crmsync; hit",
        Lookup::Miss => "crmsync; fwd=miss",
    };
    Ok((
        [(
            axum::http::HeaderName::from_static("cache-status"),
            HeaderValue::from_static(cache_status),
        )],
        Json(stats),
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/api/deals", tag = "deals",
    summary = "List deals",
    params(DealQuery),
    responses(
        (status = 200, description = "A page of deals in id order", body = DealPage),
        (status = 400, description = "A malformed parameter (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list_deals(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<DealQuery>,
) -> Result<Json<DealPage>, HttpError> {
    let page = service::list_deals(&state, query).await?;
    Ok(Json(DealPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    get, path = "/api/deals/{id}", tag = "deals",
    summary = "One deal",
    params(("id" = uuid::Uuid, Path, description = "The deal's id")),
    responses(
        (status = 200, description = "The deal", body = Deal),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "No such deal", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn get_deal(State(state): State<ApiState>, IdPath(id): IdPath) -> Result<Json<Deal>, HttpError> {
    Ok(Json(service::get_deal(&state, id).await?))
}

#[utoipa::path(
    post, path = "/api/deals/{id}/stage", tag = "deals",
    summary = "Move a deal to another stage",
    description = "Moving to closed_won or closed_lost sets closed_at; moving to an open stage clears it. The move is \
                   logged as a stage_change activity and queued for HubSpot. Moving a deal to its current stage \
                   changes nothing.",
    params(("id" = uuid::Uuid, Path, description = "The deal's id")),
    request_body = StageMoveBody,
    responses(
        (status = 200, description = "The deal after the move", body = StageMoveResult),
        (status = 400, description = "An unknown stage, a malformed id or body (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "No such deal", body = ErrorBody),
        (status = 409, description = "The deal was deleted in HubSpot (restore it there first)", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn move_deal_stage(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<StageMoveBody>,
) -> Result<Json<StageMoveResult>, HttpError> {
    let (moved, activity) = service::move_deal_stage(&state, id, &body.stage, &principal).await?;
    Ok(Json(StageMoveResult {
        changed: moved.changed(),
        previous_stage: moved.previous_stage,
        deal: moved.deal,
        activity,
    }))
}

#[utoipa::path(
    put, path = "/api/deals/{id}/owner", tag = "deals",
    summary = "Assign a deal to a HubSpot owner",
    description = "The owner is one of HubSpot's active owners (`GET /api/owners`); null clears it. The change is queued \
                   for HubSpot as `hubspot_owner_id` (field policy `two_way` by default: the later assignment, here \
                   or in HubSpot, wins). Assigning the current owner changes nothing.",
    params(("id" = uuid::Uuid, Path, description = "The deal's id")),
    request_body = DealOwnerBody,
    responses(
        (status = 200, description = "The deal with its owner", body = Deal),
        (status = 400, description = "A malformed id or body (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "No such deal (`id`), or no such HubSpot owner (`owner_id`)", body = ErrorBody),
        (status = 409, description = "The owner is deactivated in HubSpot (`owner_id`), or the deal was deleted in HubSpot \
                                      (`id`; restore it there first)", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn set_deal_owner(
    State(state): State<ApiState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<DealOwnerBody>,
) -> Result<Json<Deal>, HttpError> {
    Ok(Json(service::set_deal_owner(&state, id, body).await?))
}

#[utoipa::path(
    get, path = "/api/owners", tag = "deals",
    summary = "HubSpot's owners",
    description = "The owners deals can be assigned to, by name, as last read from HubSpot (`crmsync owners refresh`, \
                   every reconciliation, and serve's schedule).",
    params(OwnerQuery),
    responses(
        (status = 200, description = "The owners", body = OwnerList),
        (status = 400, description = "A malformed parameter (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list_owners(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<OwnerQuery>,
) -> Result<Json<OwnerList>, HttpError> {
    Ok(Json(OwnerList {
        items: service::list_owners(&state, query).await?,
    }))
}

#[utoipa::path(
    get, path = "/api/companies", tag = "companies",
    summary = "List companies",
    params(CompanyQuery),
    responses(
        (status = 200, description = "A page of companies by name", body = CompanyPage),
        (status = 400, description = "A malformed parameter (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list_companies(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<CompanyQuery>,
) -> Result<Json<CompanyPage>, HttpError> {
    let page = service::list_companies(&state, query).await?;
    Ok(Json(CompanyPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    get, path = "/api/companies/{id}", tag = "companies",
    summary = "One company with its engagement",
    params(("id" = uuid::Uuid, Path, description = "The company's id")),
    responses(
        (status = 200, description = "The company", body = CompanyDetail),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "No such company", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn get_company(State(state): State<ApiState>, IdPath(id): IdPath) -> Result<Json<CompanyDetail>, HttpError> {
    Ok(Json(service::get_company(&state, id).await?.into()))
}

#[utoipa::path(
    get, path = "/api/contacts", tag = "contacts",
    summary = "List contacts",
    params(ContactQuery),
    responses(
        (status = 200, description = "A page of contacts by name", body = ContactPage),
        (status = 400, description = "A malformed parameter (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list_contacts(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<ContactQuery>,
) -> Result<Json<ContactPage>, HttpError> {
    let page = service::list_contacts(&state, query).await?;
    Ok(Json(ContactPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    post, path = "/api/contacts", tag = "contacts",
    summary = "Add a contact by hand",
    description = "The contact is stored and queued for HubSpot.",
    request_body = NewContactBody,
    responses(
        (status = 201, description = "The contact", body = Contact),
        (status = 400, description = "An invalid field (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "company_id names no company", body = ErrorBody),
        (status = 409, description = "A contact with this email already exists", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn create_contact(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<NewContactBody>,
) -> Result<(StatusCode, Json<Contact>), HttpError> {
    let contact = service::create_contact(&state, body).await?;
    Ok((StatusCode::CREATED, Json(contact)))
}

#[utoipa::path(
    get, path = "/api/activities", tag = "activities",
    summary = "List activities",
    params(ActivityQuery),
    responses(
        (status = 200, description = "A page of activities, newest first", body = ActivityPage),
        (status = 400, description = "A malformed parameter (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list_activities(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<ActivityQuery>,
) -> Result<Json<ActivityPage>, HttpError> {
    let page = service::list_activities(&state, query).await?;
    Ok(Json(ActivityPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    post, path = "/api/activities", tag = "activities",
    summary = "Log an activity",
    description = "The activity is stored and queued for HubSpot as an engagement. Without a company_id, the deal's \
                   (or else the contact's) company is used.",
    request_body = NewActivityBody,
    responses(
        (status = 201, description = "The activity", body = Activity),
        (status = 400, description = "An invalid field, or no target (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "deal_id, company_id or contact_id names nothing", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn create_activity(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<NewActivityBody>,
) -> Result<(StatusCode, Json<Activity>), HttpError> {
    let activity = service::create_activity(&state, body, &principal).await?;
    Ok((StatusCode::CREATED, Json(activity)))
}

#[utoipa::path(
    get, path = "/api/sync/conflicts", tag = "sync",
    summary = "List sync conflicts",
    description = "Every decision of the sync that dropped one side's value: a HubSpot change that lost to the local \
                   value, or a local value a HubSpot change replaced. Each has both values, both change times, the \
                   field policy that decided and the winner. Newest first.",
    params(ConflictQuery),
    responses(
        (status = 200, description = "A page of conflicts, newest first", body = SyncConflictPage),
        (status = 400, description = "A malformed parameter (named in `field`)", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn list_conflicts(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<ConflictQuery>,
) -> Result<Json<SyncConflictPage>, HttpError> {
    let page = service::list_conflicts(&state, query).await?;
    Ok(Json(SyncConflictPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}
