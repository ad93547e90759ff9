//! The CRM's read models: a deal, a company and its engagement, a contact, an activity, as the database returns them
//! and the API serves them (one definition for both). With the `openapi` feature they also describe themselves for
//! the API's OpenAPI document.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::hubspot_status::HubSpotSyncStatus;
use crate::stage::StageChangeActivity;

#[cfg(feature = "openapi")]
use crate::stage::DealStage;

/// The guide's eight deal stages, in pipeline order, as an OpenAPI string enum.
#[cfg(feature = "openapi")]
pub fn stage_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(DealStage::ALL.map(DealStage::as_str)))
        .description(Some("A deal stage of the B2G pipeline."))
        .build()
}

/// A deal.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deal {
    pub id: Uuid,
    pub deal_name: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = stage_schema))]
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
    /// `pending` until HubSpot has its latest change, `synced`, `failed` when its sync item is dead, or `deleted` in
    /// HubSpot.
    pub hubspot_sync_status: String,
    /// Why HubSpot does not have it: the last error of its dead sync item while `hubspot_sync_status` is `failed`;
    /// null otherwise.
    pub hubspot_sync_error: Option<String>,
    /// Set exactly when the stage is closed_won or closed_lost.
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The HubSpot owner's id (`hubspot_owner_id`).
    pub owner_id: Option<String>,
    /// The owner's name from the cached HubSpot owners; null without an owner or before the owners are read.
    pub owner_name: Option<String>,
    pub owner_email: Option<String>,
}

/// A company.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// `pending` until HubSpot has its latest change, `synced`, `failed` when its sync item is dead, or `deleted` in
    /// HubSpot.
    pub hubspot_sync_status: String,
    /// Why HubSpot does not have it: the last error of its dead sync item while `hubspot_sync_status` is `failed`;
    /// null otherwise.
    pub hubspot_sync_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A company's engagement: the guide's v_company_engagement view.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// A contact.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// `pending` until HubSpot has its latest change, `synced`, `failed` when its sync item is dead, or `deleted` in
    /// HubSpot.
    pub hubspot_sync_status: String,
    /// Why HubSpot does not have it: the last error of its dead sync item while `hubspot_sync_status` is `failed`;
    /// null otherwise.
    pub hubspot_sync_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An activity.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// `pending` until HubSpot has it, `synced`, `failed` when its sync item is dead, `deleted` in HubSpot, or
    /// `local_only` for entries HubSpot never gets.
    pub hubspot_sync_status: String,
    /// Why HubSpot does not have it: the last error of its dead sync item while `hubspot_sync_status` is `failed`;
    /// null otherwise.
    pub hubspot_sync_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Where it was logged: `local` (here: the API, crmsync's stage changes) or `hubspot` (by a salesperson in
    /// HubSpot, brought home by webhook, reconciliation or the import).
    pub logged_in: String,
    /// A task's progress, or a call's or meeting's outcome (lower case), when it has one.
    pub status: Option<String>,
    /// The HubSpot owner's id (`hubspot_owner_id`) of an activity logged in HubSpot.
    pub owner_id: Option<String>,
    /// The owner's name from the cached HubSpot owners.
    pub owner_name: Option<String>,
    pub owner_email: Option<String>,
}

/// One row of the guide's pipeline overview query.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineStage {
    pub stage: String,
    pub count: i64,
    pub total_value: Option<Decimal>,
}

/// One row of the guide's top companies query.
#[derive(Debug, Clone, PartialEq)]
pub struct TopCompany {
    pub name: String,
    pub readiness_score: Option<Decimal>,
    pub active_deals: i64,
    pub pipeline_value: Option<Decimal>,
}

/// One row of the guide's recent activities query, with where the activity was logged and its owner's name.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentActivity {
    pub activity_type: String,
    pub subject: String,
    pub company_name: Option<String>,
    pub contact_name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `local` or `hubspot`.
    pub logged_in: String,
    pub owner_name: Option<String>,
}

/// One row of the guide's win rate query.
#[derive(Debug, Clone, PartialEq)]
pub struct WinRateMonth {
    pub month: DateTime<Utc>,
    pub won: i64,
    pub lost: i64,
    pub win_rate_pct: Option<Decimal>,
}

/// The outbound queue's state: items waiting, failing, given up on, and the latest sync run.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncHealth {
    /// Rows with status `pending`.
    pub pending: i64,
    /// Rows with status `failed` (they are retried with backoff).
    pub failed: i64,
    /// Rows with status `dead` (out of attempts; an operator must look).
    pub dead: i64,
    /// The most recently started run of the outbound sync, if any.
    pub last_run: Option<SyncRun>,
    /// How many records are `failed` (their sync item is dead).
    pub failed_record_count: i64,
    /// The most recently failed of them, newest first.
    pub failed_records: Vec<FailedRecord>,
}

/// A record HubSpot does not have the latest of: its `hubspot_sync_status` is `failed` because its sync item is dead.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedRecord {
    /// company, contact, deal or activity.
    pub entity_type: String,
    pub entity_id: Uuid,
    /// The company's or deal's name, the contact's full name, or the activity's subject.
    pub entity_name: String,
    /// The dead sync item's last error.
    pub error: Option<String>,
    /// Attempts the sync item made.
    pub attempts: i32,
    /// When the sync item died.
    pub failed_at: DateTime<Utc>,
}

/// A value the sync dropped: a HubSpot change that lost to the local value, or a local value a HubSpot change
/// replaced (one row of crmsync.sync_conflicts).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncConflict {
    /// Increases with each conflict recorded; the list's cursor.
    pub id: i64,
    /// company, contact, deal or activity.
    pub entity_type: String,
    pub entity_id: Uuid,
    /// The company's or deal's name, the contact's full name, or the activity's subject; null when the record is
    /// gone.
    pub entity_name: Option<String>,
    /// The record's HubSpot id.
    pub hubspot_id: String,
    /// The HubSpot property.
    pub property: String,
    /// The local value when the decision was made (null: empty).
    pub local_value: Option<String>,
    /// HubSpot's value (null: empty).
    pub hubspot_value: Option<String>,
    /// The side whose value stands: `local` or `hubspot`.
    pub winner: String,
    /// The field policy that decided (such as `local`, `hubspot` or `two_way`).
    pub policy: String,
    /// When the field last changed locally, if known.
    pub local_changed_at: Option<DateTime<Utc>>,
    /// When the property changed in HubSpot.
    pub hubspot_changed_at: DateTime<Utc>,
    /// When the conflict was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// One row of `crmsync.sync_runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRun {
    pub id: Uuid,
    pub trigger: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: serde_json::Value,
}

/// A contact entered by hand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewContact {
    pub company_id: Option<Uuid>,
    pub full_name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub job_title: Option<String>,
    pub is_primary: bool,
    pub notes: Option<String>,
}

/// An activity to log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewActivity {
    /// One of the schema's types; `stage_change` and `system` are for crmsync's own entries.
    pub activity_type: String,
    pub subject: String,
    pub body: Option<String>,
    pub deal_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    /// When it happened; `None` means now.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Who logged it (the API's principal).
    pub created_by: Option<String>,
    /// `Pending` for engagements HubSpot should get, `LocalOnly` for crmsync's own entries.
    pub hubspot_sync_status: HubSpotSyncStatus,
}

impl NewActivity {
    /// The domain's `stage_change` activity for a move of `deal_id` (logged on its company too).
    pub fn stage_change(
        deal_id: Uuid,
        company_id: Option<Uuid>,
        occurred_at: Option<DateTime<Utc>>,
        activity: StageChangeActivity,
    ) -> Self {
        Self {
            activity_type: activity.activity_type.to_owned(),
            subject: activity.subject,
            body: activity.body,
            deal_id: Some(deal_id),
            company_id,
            contact_id: None,
            occurred_at,
            created_by: Some(activity.created_by),
            hubspot_sync_status: activity.hubspot_sync_status,
        }
    }
}
