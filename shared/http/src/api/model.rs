//! The API's wire types: query parameters, request bodies and responses, with their OpenAPI schemas. Money and
//! scores are decimal strings (`"1250000.00"`), so no precision is lost in JavaScript; times are RFC 3339 in UTC.

use chrono::{DateTime, NaiveDate, Utc};
use crmsync_db::crm;
use crmsync_domain::stage::DealStage;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The activity types a person can log; `stage_change` and `system` are crmsync's own.
pub const ACTIVITY_TYPES: [&str; 5] = ["note", "call", "email", "meeting", "task"];
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

/// The guide's eight deal stages, in pipeline order.
pub fn stage_schema() -> Object {
    string_enum(
        DealStage::ALL.map(DealStage::as_str),
        "A deal stage of the B2G pipeline.",
    )
}

fn activity_type_schema() -> Object {
    string_enum(
        ACTIVITY_TYPES,
        "note, call, email, meeting or task (a HubSpot engagement type).",
    )
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

/// A deal.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deal {
    pub id: Uuid,
    pub deal_name: String,
    #[schema(schema_with = stage_schema)]
    pub stage: String,
    pub priority: String,
    pub pipeline: String,
    pub deal_value: Option<Decimal>,
    pub expected_close_date: Option<NaiveDate>,
    pub match_score: Option<Decimal>,
    pub win_probability: Option<i32>,
    pub company_id: Option<Uuid>,
    pub company_name: Option<String>,
    pub opportunity_id: Option<Uuid>,
    pub hubspot_deal_id: Option<String>,
    pub hubspot_sync_status: String,
    /// Set exactly when the stage is closed_won or closed_lost.
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<crm::Deal> for Deal {
    fn from(d: crm::Deal) -> Self {
        Self {
            id: d.id,
            deal_name: d.deal_name,
            stage: d.stage,
            priority: d.priority,
            pipeline: d.pipeline,
            deal_value: d.deal_value,
            expected_close_date: d.expected_close_date,
            match_score: d.match_score,
            win_probability: d.win_probability,
            company_id: d.company_id,
            company_name: d.company_name,
            opportunity_id: d.opportunity_id,
            hubspot_deal_id: d.hubspot_deal_id,
            hubspot_sync_status: d.hubspot_sync_status,
            closed_at: d.closed_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A company.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Company {
    pub id: Uuid,
    pub name: String,
    pub source: String,
    pub uei: Option<String>,
    pub cage_code: Option<String>,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub primary_naics: Option<String>,
    pub sam_registered: Option<bool>,
    pub readiness_score: Option<Decimal>,
    pub qualification_status: String,
    pub lifecycle_stage: String,
    pub hubspot_company_id: Option<String>,
    pub hubspot_sync_status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<crm::Company> for Company {
    fn from(c: crm::Company) -> Self {
        Self {
            id: c.id,
            name: c.name,
            source: c.source,
            uei: c.uei,
            cage_code: c.cage_code,
            website: c.website,
            phone: c.phone,
            address: c.address,
            city: c.city,
            state: c.state,
            zip: c.zip,
            primary_naics: c.primary_naics,
            sam_registered: c.sam_registered,
            readiness_score: c.readiness_score,
            qualification_status: c.qualification_status,
            lifecycle_stage: c.lifecycle_stage,
            hubspot_company_id: c.hubspot_company_id,
            hubspot_sync_status: c.hubspot_sync_status,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A company's engagement: the guide's v_company_engagement view.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Engagement {
    pub total_deals: i64,
    pub active_deals: i64,
    pub won_deals: i64,
    /// The value of its open deals.
    pub pipeline_value: Decimal,
    pub contacts: i64,
    pub activities: i64,
    pub last_activity_at: Option<DateTime<Utc>>,
}

/// `GET /api/companies/{id}`: the company and its engagement.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CompanyDetail {
    pub company: Company,
    pub engagement: Engagement,
}

impl From<(crm::Company, crm::Engagement)> for CompanyDetail {
    fn from((company, e): (crm::Company, crm::Engagement)) -> Self {
        Self {
            company: company.into(),
            engagement: Engagement {
                total_deals: e.total_deals,
                active_deals: e.active_deals,
                won_deals: e.won_deals,
                pipeline_value: e.pipeline_value,
                contacts: e.contacts,
                activities: e.activities,
                last_activity_at: e.last_activity_at,
            },
        }
    }
}

/// A contact.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Contact {
    pub id: Uuid,
    pub company_id: Option<Uuid>,
    pub full_name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub job_title: Option<String>,
    pub is_primary: bool,
    pub source: String,
    pub lifecycle_stage: String,
    pub notes: Option<String>,
    pub hubspot_contact_id: Option<String>,
    pub hubspot_sync_status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<crm::Contact> for Contact {
    fn from(c: crm::Contact) -> Self {
        Self {
            id: c.id,
            company_id: c.company_id,
            full_name: c.full_name,
            first_name: c.first_name,
            last_name: c.last_name,
            email: c.email,
            phone: c.phone,
            job_title: c.job_title,
            is_primary: c.is_primary,
            source: c.source,
            lifecycle_stage: c.lifecycle_stage,
            notes: c.notes,
            hubspot_contact_id: c.hubspot_contact_id,
            hubspot_sync_status: c.hubspot_sync_status,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// An activity.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Activity {
    pub id: Uuid,
    /// note, call, email, meeting, task, or crmsync's own stage_change and system.
    pub activity_type: String,
    pub subject: String,
    pub body: Option<String>,
    pub deal_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
    /// Who logged it: `api_token`, or `user:<JWT subject>`.
    pub created_by: Option<String>,
    pub hubspot_engagement_id: Option<String>,
    /// `pending` until HubSpot has it; `local_only` for entries HubSpot never gets.
    pub hubspot_sync_status: String,
    pub created_at: DateTime<Utc>,
}

impl From<crm::Activity> for Activity {
    fn from(a: crm::Activity) -> Self {
        Self {
            id: a.id,
            activity_type: a.activity_type,
            subject: a.subject,
            body: a.body,
            deal_id: a.deal_id,
            company_id: a.company_id,
            contact_id: a.contact_id,
            occurred_at: a.occurred_at,
            created_by: a.created_by,
            hubspot_engagement_id: a.hubspot_engagement_id,
            hubspot_sync_status: a.hubspot_sync_status,
            created_at: a.created_at,
        }
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
