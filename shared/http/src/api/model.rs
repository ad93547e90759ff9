//! The API's wire types: query parameters, request bodies and responses, with their OpenAPI schemas. Money and
//! scores are decimal strings (`"1250000.00"`), so no precision is lost in JavaScript; times are RFC 3339 in UTC.

use chrono::{DateTime, Utc};
use crmsync_db::crm;
pub use crmsync_domain::crm::{Activity, Company, Contact, Deal, Engagement, FailedRecord, SyncConflict, stage_schema};
pub use crmsync_domain::owner::Owner;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The activity types a person can log; `stage_change` and `system` are crmsync's own.
pub const ACTIVITY_TYPES: [&str; 5] = ["note", "call", "email", "meeting", "task"];
/// The kinds of record that sync with HubSpot (the schema's sync_queue_entity_type_check).
pub const ENTITY_TYPES: [&str; 4] = ["company", "contact", "deal", "activity"];
/// Deal priorities (the schema's deals_priority_check).
pub const PRIORITIES: [&str; 3] = ["low", "medium", "high"];
/// Company qualification (the schema's companies_qualification_status_check).
pub const QUALIFICATION_STATUSES: [&str; 2] = ["qualified", "unqualified"];
/// What an email address must look like: the domain's `crmsync_domain::email::is_email`, as a regular expression.
pub const EMAIL_PATTERN: &str = r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$";
/// Non-blank text: at least one character that is not white space.
pub const NOT_BLANK_PATTERN: &str = r"\S";

fn string_enum(values: impl IntoIterator<Item = &'static str>, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .build()
}

fn activity_type_schema() -> Object {
    string_enum(
        ACTIVITY_TYPES,
        "note, call, email, meeting or task (a HubSpot engagement type).",
    )
}

fn entity_type_schema() -> Object {
    string_enum(ENTITY_TYPES, "The kind of record: company, contact, deal or activity.")
}

fn priority_schema() -> Object {
    string_enum(PRIORITIES, "A deal priority.")
}

fn qualification_schema() -> Object {
    string_enum(QUALIFICATION_STATUSES, "Qualified: readiness score of at least 80.")
}

/// `GET /api/deals` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DealQuery {
    /// Only deals in this stage.
    #[param(schema_with = stage_schema, required = false)]
    pub stage: Option<String>,
    /// Only deals with this priority.
    #[param(schema_with = priority_schema, required = false)]
    pub priority: Option<String>,
    /// Only deals of this company.
    pub company_id: Option<Uuid>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor` (the last deal id it held).
    pub cursor: Option<Uuid>,
}

/// `GET /api/companies` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompanyQuery {
    /// Only companies with this qualification.
    #[param(schema_with = qualification_schema, required = false)]
    pub qualification_status: Option<String>,
    /// A case-insensitive part of the company name.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor` (the last company id it held).
    pub cursor: Option<Uuid>,
}

/// `GET /api/contacts` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Only contacts of this company.
    pub company_id: Option<Uuid>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor` (the last contact id it held).
    pub cursor: Option<Uuid>,
}

/// `GET /api/activities` parameters: every target given must match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    pub deal_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor` (the last activity id it held).
    pub cursor: Option<Uuid>,
}

/// `GET /api/sync/conflicts` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConflictQuery {
    /// Only conflicts on records of this kind.
    #[param(schema_with = entity_type_schema, required = false)]
    pub entity_type: Option<String>,
    /// Only conflicts on this record.
    pub entity_id: Option<Uuid>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor` (the last conflict id it held).
    #[param(minimum = 1)]
    pub cursor: Option<i64>,
}

/// `POST /api/contacts`: a contact entered by hand. Blank optional fields are stored as absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContactBody {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub full_name: String,
    #[schema(max_length = 100)]
    pub first_name: Option<String>,
    #[schema(max_length = 100)]
    pub last_name: Option<String>,
    /// Unique across contacts, case-insensitively (409 otherwise).
    #[schema(max_length = 254, pattern = r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")]
    pub email: Option<String>,
    #[schema(max_length = 50)]
    pub phone: Option<String>,
    #[schema(max_length = 200)]
    pub job_title: Option<String>,
    /// An existing company (404 otherwise).
    pub company_id: Option<Uuid>,
    pub is_primary: Option<bool>,
    #[schema(max_length = 10000)]
    pub notes: Option<String>,
}

/// `POST /api/activities`: at least one of deal_id, company_id and contact_id, each naming an existing record.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActivityBody {
    #[schema(schema_with = activity_type_schema)]
    pub activity_type: String,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub subject: String,
    #[schema(max_length = 20000)]
    pub body: Option<String>,
    pub deal_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    /// When it happened (default: now).
    pub occurred_at: Option<DateTime<Utc>>,
}

/// `POST /api/deals/{id}/stage`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageMoveBody {
    #[schema(schema_with = stage_schema)]
    pub stage: String,
}

/// `PUT /api/deals/{id}/owner`: one of HubSpot's active owners (an id from `GET /api/owners`), or null to clear it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealOwnerBody {
    /// The HubSpot owner id (`hubspot_owner_id`); null clears the deal's owner.
    pub owner_id: Option<String>,
}

/// `GET /api/owners` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OwnerQuery {
    /// Include owners deactivated in HubSpot (default false: only those a deal can be assigned to).
    pub include_archived: Option<bool>,
}

/// `GET /api/owners`: HubSpot's owners as last refreshed, by name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OwnerList {
    pub items: Vec<Owner>,
}

/// `GET /api/companies/{id}`: the company and its engagement.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompanyDetail {
    pub company: Company,
    pub engagement: Engagement,
}

impl From<(Company, Engagement)> for CompanyDetail {
    fn from((company, engagement): (Company, Engagement)) -> Self {
        Self { company, engagement }
    }
}

macro_rules! page {
    ($name:ident, $item:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Serialize, ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` to get the next page; null on the last page.
            pub next_cursor: Option<Uuid>,
        }
    };
}

page!(DealPage, Deal, "A page of deals, in id order.");
page!(CompanyPage, Company, "A page of companies, by name.");
page!(ContactPage, Contact, "A page of contacts, by name.");
page!(ActivityPage, Activity, "A page of activities, newest first.");

/// `GET /api/sync/conflicts`: a page of conflicts, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncConflictPage {
    pub items: Vec<SyncConflict>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<i64>,
}

/// `POST /api/deals/{id}/stage`: the deal after the move.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageMoveResult {
    pub deal: Deal,
    #[schema(schema_with = stage_schema)]
    pub previous_stage: String,
    /// False when the deal was already in that stage (nothing was written or queued).
    pub changed: bool,
    /// The stage_change activity logged for the move.
    pub activity: Option<Activity>,
}

/// Pipeline overview: open deals per stage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PipelineRow {
    #[schema(schema_with = stage_schema)]
    pub stage: String,
    pub count: i64,
    pub total_value: Option<Decimal>,
}

/// Top companies by open pipeline value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopCompanyRow {
    pub name: String,
    pub readiness_score: Option<Decimal>,
    pub active_deals: i64,
    pub pipeline_value: Option<Decimal>,
}

/// One of the 20 most recent activities.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecentActivityRow {
    pub activity_type: String,
    pub subject: String,
    pub company_name: Option<String>,
    pub contact_name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Where it was logged: `local` (here) or `hubspot`.
    pub logged_in: String,
    /// The HubSpot owner's name, for an activity logged in HubSpot.
    pub owner_name: Option<String>,
}

/// Deals won and lost in one month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WinRateRow {
    /// The month's first instant.
    pub month: DateTime<Utc>,
    pub won: i64,
    pub lost: i64,
    /// won / (won + lost) × 100, to 2 places.
    pub win_rate_pct: Option<Decimal>,
}

/// A run of the outbound sync.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncRunRow {
    pub id: Uuid,
    /// schedule, retry_queue, cli or serve.
    pub trigger: String,
    /// running, succeeded, partial or failed.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What the run did, by kind.
    #[schema(value_type = Object)]
    pub counts: Value,
}

/// The outbound queue's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncHealthRow {
    /// Changes waiting for HubSpot.
    pub pending: i64,
    /// Changes that failed and will be retried.
    pub failed: i64,
    /// Changes that ran out of attempts.
    pub dead: i64,
    /// The latest sync run; null before the first.
    pub last_run: Option<SyncRunRow>,
    /// Records whose sync item is dead (`hubspot_sync_status` failed).
    pub failed_record_count: i64,
    /// The 10 that failed last, newest first, with their errors.
    pub failed_records: Vec<FailedRecord>,
}

/// `GET /api/dashboard/stats`: the guide's four dashboard queries and the sync's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DashboardStats {
    pub pipeline: Vec<PipelineRow>,
    pub top_companies: Vec<TopCompanyRow>,
    pub recent_activities: Vec<RecentActivityRow>,
    pub win_rate: Vec<WinRateRow>,
    pub sync_health: SyncHealthRow,
}

impl From<&crm::PipelineStage> for PipelineRow {
    fn from(row: &crm::PipelineStage) -> Self {
        Self {
            stage: row.stage.clone(),
            count: row.count,
            total_value: row.total_value,
        }
    }
}

impl From<&crm::TopCompany> for TopCompanyRow {
    fn from(row: &crm::TopCompany) -> Self {
        Self {
            name: row.name.clone(),
            readiness_score: row.readiness_score,
            active_deals: row.active_deals,
            pipeline_value: row.pipeline_value,
        }
    }
}

impl From<&crm::RecentActivity> for RecentActivityRow {
    fn from(row: &crm::RecentActivity) -> Self {
        Self {
            activity_type: row.activity_type.clone(),
            subject: row.subject.clone(),
            company_name: row.company_name.clone(),
            contact_name: row.contact_name.clone(),
            created_at: row.created_at,
            logged_in: row.logged_in.clone(),
            owner_name: row.owner_name.clone(),
        }
    }
}

impl From<&crm::WinRateMonth> for WinRateRow {
    fn from(row: &crm::WinRateMonth) -> Self {
        Self {
            month: row.month,
            won: row.won,
            lost: row.lost,
            win_rate_pct: row.win_rate_pct,
        }
    }
}

impl From<&crm::SyncHealth> for SyncHealthRow {
    fn from(health: &crm::SyncHealth) -> Self {
        Self {
            pending: health.pending,
            failed: health.failed,
            dead: health.dead,
            last_run: health.last_run.as_ref().map(|run| SyncRunRow {
                id: run.id,
                trigger: run.trigger.clone(),
                status: run.status.clone(),
                started_at: run.started_at,
                finished_at: run.finished_at,
                counts: run.counts.clone(),
            }),
            failed_record_count: health.failed_record_count,
            failed_records: health.failed_records.clone(),
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: invalid_parameter, invalid_body, unsupported_media_type, unauthorized,
    /// not_found, conflict, unavailable.
    pub code: String,
    /// For people: names the field and the reason.
    pub message: String,
    /// The parameter or body field at fault, when there is one.
    pub field: Option<String>,
}
