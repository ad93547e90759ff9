//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes and the wire types' schemas,
//! served at `GET /api/openapi.json`. Every operation requires the bearer token.

use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::handlers;
use super::model::{
    Activity, ActivityPage, Company, CompanyDetail, CompanyPage, Contact, ContactPage, DashboardStats, Deal,
    DealOwnerBody, DealPage, Engagement, ErrorBody, ErrorDetail, FailedRecord, NewActivityBody, NewContactBody, Owner,
    OwnerList, PipelineRow, RecentActivityRow, StageMoveBody, StageMoveResult, SyncConflict, SyncConflictPage,
    SyncHealthRow, SyncRunRow, TopCompanyRow, WinRateRow,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "crmsync dashboard API",
        description = "The local CRM's deals, companies, contacts and activities, the dashboard statistics, the \
                       sync's conflicts, and manual entry. Send `Authorization: Bearer <API_TOKEN or JWT>` on every \
                       request. Lists are keyset-paginated: pass a page's `next_cursor` as `cursor`. Errors are \
                       `{\"error\": {\"code\", \"message\", \"field\"}}`. Text cannot contain NUL characters \
                       (PostgreSQL text cannot store them).",
    ),
    paths(
        handlers::dashboard_stats,
        handlers::list_deals,
        handlers::get_deal,
        handlers::move_deal_stage,
        handlers::set_deal_owner,
        handlers::list_owners,
        handlers::list_companies,
        handlers::get_company,
        handlers::list_contacts,
        handlers::create_contact,
        handlers::list_activities,
        handlers::create_activity,
        handlers::list_conflicts,
    ),
    components(schemas(
        Activity, ActivityPage, Company, CompanyDetail, CompanyPage, Contact, ContactPage, DashboardStats, Deal,
        DealOwnerBody, DealPage, Engagement, Owner, OwnerList, ErrorBody, ErrorDetail, FailedRecord, NewActivityBody, NewContactBody, PipelineRow,
        RecentActivityRow, StageMoveBody, StageMoveResult, SyncConflict, SyncConflictPage, SyncHealthRow, SyncRunRow,
        TopCompanyRow, WinRateRow,
    )),
    modifiers(&BearerAuth, &ActivityTarget),
    security(("bearer" = [])),
    tags(
        (name = "dashboard", description = "Statistics for the dashboard"),
        (name = "deals", description = "Deals, their stage moves and owners"),
        (name = "companies", description = "Companies"),
        (name = "contacts", description = "Contacts and manual entry"),
        (name = "activities", description = "Activities and manual logging"),
        (name = "sync", description = "What the two-way sync with HubSpot could not settle on its own"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the document's global `security` refers to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API_TOKEN, or an HS256 JWT")
                    .description(Some(
                        "API_TOKEN, or a JWT signed with API_JWT_SECRET from API_JWT_ISSUER: role service_role, or a user on the \
                         allow-list (API_JWT_ALLOWED_EMAILS, API_JWT_REQUIRED_CLAIM); 401 when not genuine, 403 when \
                         not allowed",
                    ))
                    .build(),
            ),
        );
    }
}

/// States in the schema what `POST /api/activities` checks: at least one of deal_id, company_id and contact_id is
/// given (and not null). The derived object schema cannot say "one of these", so it is combined with an `anyOf`.
struct ActivityTarget;

impl Modify for ActivityTarget {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(body) = components.schemas.remove("NewActivityBody") else {
            return;
        };
        let target = |field: &str| {
            ObjectBuilder::new()
                .property(
                    field,
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
                )
                .required(field)
        };
        let any_target = AnyOfBuilder::new()
            .item(target("deal_id"))
            .item(target("company_id"))
            .item(target("contact_id"));
        components.schemas.insert(
            "NewActivityBody".to_owned(),
            AllOfBuilder::new()
                .item(body)
                .item(any_target)
                .description(Some(
                    "`POST /api/activities`: at least one of deal_id, company_id and contact_id, each naming an \
                     existing record.",
                ))
                .into(),
        );
    }
}
