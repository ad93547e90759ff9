//! Typed reads of the tables tests assert on. Numerics are read as their text (`1000.00`), so an assertion also
//! holds the scale the database stores; timestamps are chrono values.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::TestApp;

/// A record read by a fixed `SELECT ... FROM <table> <alias>`; a filter and an order follow it.
pub trait Record: Sized {
    /// The select list and `FROM` clause.
    const SELECT: &'static str;
    fn from_row(row: &Row) -> Self;
}

/// Something that names a row: a `Uuid`, or its text (as `id::text` returns it).
pub trait RowId {
    fn row_id(&self) -> Uuid;
}

impl RowId for Uuid {
    fn row_id(&self) -> Uuid {
        *self
    }
}

impl RowId for str {
    fn row_id(&self) -> Uuid {
        self.parse().unwrap_or_else(|e| panic!("{self} is not a uuid: {e}"))
    }
}

impl RowId for String {
    fn row_id(&self) -> Uuid {
        self.as_str().row_id()
    }
}

impl<T: RowId + ?Sized> RowId for &T {
    fn row_id(&self) -> Uuid {
        (**self).row_id()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deal {
    pub id: Uuid,
    pub opportunity_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub match_id: Option<Uuid>,
    pub deal_name: String,
    /// `numeric(15,2)` as text, e.g. `1000.00`.
    pub deal_value: Option<String>,
    /// `date` as text, e.g. `2027-05-01`.
    pub expected_close_date: Option<String>,
    pub pipeline: String,
    pub stage: String,
    /// `numeric(6,3)` as text, e.g. `85.625`.
    pub match_score: Option<String>,
    pub win_probability: Option<i32>,
    pub priority: String,
    pub description: Option<String>,
    pub owner_id: Option<String>,
    pub hubspot_deal_id: Option<String>,
    pub hubspot_sync_status: String,
    pub last_hubspot_sync: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl Record for Deal {
    const SELECT: &'static str = "SELECT id, opportunity_id, company_id, match_id, deal_name, deal_value::text,
        expected_close_date::text, pipeline, stage, match_score::text, win_probability, priority, description,
        owner_id, hubspot_deal_id, hubspot_sync_status, last_hubspot_sync, closed_at FROM deals";

    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            opportunity_id: row.get(1),
            company_id: row.get(2),
            match_id: row.get(3),
            deal_name: row.get(4),
            deal_value: row.get(5),
            expected_close_date: row.get(6),
            pipeline: row.get(7),
            stage: row.get(8),
            match_score: row.get(9),
            win_probability: row.get(10),
            priority: row.get(11),
            description: row.get(12),
            owner_id: row.get(13),
            hubspot_deal_id: row.get(14),
            hubspot_sync_status: row.get(15),
            last_hubspot_sync: row.get(16),
            closed_at: row.get(17),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    pub id: Uuid,
    pub contractor_id: Option<Uuid>,
    pub name: String,
    pub uei: Option<String>,
    pub cage_code: Option<String>,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub primary_naics: Option<String>,
    pub sam_registered: Option<bool>,
    /// `numeric(5,2)` as text, e.g. `85.00`.
    pub readiness_score: Option<String>,
    pub qualification_status: String,
    pub lifecycle_stage: String,
    pub description: Option<String>,
    pub owner_id: Option<String>,
    pub hubspot_company_id: Option<String>,
    pub hubspot_sync_status: String,
    pub last_hubspot_sync: Option<DateTime<Utc>>,
}

impl Record for Company {
    const SELECT: &'static str = "SELECT id, contractor_id, name, uei, cage_code, website, phone, city, state,
        primary_naics, sam_registered, readiness_score::text, qualification_status, lifecycle_stage, description,
        owner_id, hubspot_company_id, hubspot_sync_status, last_hubspot_sync FROM companies";

    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            contractor_id: row.get(1),
            name: row.get(2),
            uei: row.get(3),
            cage_code: row.get(4),
            website: row.get(5),
            phone: row.get(6),
            city: row.get(7),
            state: row.get(8),
            primary_naics: row.get(9),
            sam_registered: row.get(10),
            readiness_score: row.get(11),
            qualification_status: row.get(12),
            lifecycle_stage: row.get(13),
            description: row.get(14),
            owner_id: row.get(15),
            hubspot_company_id: row.get(16),
            hubspot_sync_status: row.get(17),
            last_hubspot_sync: row.get(18),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: Uuid,
    pub company_id: Option<Uuid>,
    pub full_name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub job_title: Option<String>,
    pub source: String,
    pub lifecycle_stage: String,
    pub owner_id: Option<String>,
    pub hubspot_contact_id: Option<String>,
    pub hubspot_sync_status: String,
    pub last_hubspot_sync: Option<DateTime<Utc>>,
}

impl Record for Contact {
    const SELECT: &'static str = "SELECT id, company_id, full_name, first_name, last_name, email, phone, mobile_phone,
        job_title, source, lifecycle_stage, owner_id, hubspot_contact_id, hubspot_sync_status, last_hubspot_sync
        FROM contacts";

    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            company_id: row.get(1),
            full_name: row.get(2),
            first_name: row.get(3),
            last_name: row.get(4),
            email: row.get(5),
            phone: row.get(6),
            mobile_phone: row.get(7),
            job_title: row.get(8),
            source: row.get(9),
            lifecycle_stage: row.get(10),
            owner_id: row.get(11),
            hubspot_contact_id: row.get(12),
            hubspot_sync_status: row.get(13),
            last_hubspot_sync: row.get(14),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub id: Uuid,
    pub activity_type: String,
    pub subject: String,
    pub body: Option<String>,
    pub company_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub deal_id: Option<Uuid>,
    pub created_by: Option<String>,
    pub hubspot_engagement_id: Option<String>,
    pub hubspot_sync_status: String,
}

impl Record for Activity {
    const SELECT: &'static str = "SELECT id, activity_type, subject, body, company_id, contact_id, deal_id,
        created_by, hubspot_engagement_id, hubspot_sync_status FROM activities";

    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            activity_type: row.get(1),
            subject: row.get(2),
            body: row.get(3),
            company_id: row.get(4),
            contact_id: row.get(5),
            deal_id: row.get(6),
            created_by: row.get(7),
            hubspot_engagement_id: row.get(8),
            hubspot_sync_status: row.get(9),
        }
    }
}

/// A `sync_queue` row: one local change HubSpot must hear about.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub id: Uuid,
    pub entity_type: String,
    pub entity_id: Uuid,
    pub operation: String,
    pub status: String,
    pub payload: Value,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Record for QueueRow {
    const SELECT: &'static str = "SELECT id, entity_type, entity_id, operation, status, payload, attempts,
        last_error, next_attempt_at, locked_by, completed_at FROM sync_queue";

    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            entity_type: row.get(1),
            entity_id: row.get(2),
            operation: row.get(3),
            status: row.get(4),
            payload: row.get(5),
            attempts: row.get(6),
            last_error: row.get(7),
            next_attempt_at: row.get(8),
            locked_by: row.get(9),
            completed_at: row.get(10),
        }
    }
}

/// A `crmsync.webhook_inbox` row: one HubSpot event as received, and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEvent {
    pub id: Uuid,
    pub event_id: i64,
    pub occurred_at: i64,
    pub event_type: String,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub payload: Value,
    pub status: String,
    pub outcome: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
}

impl Record for InboxEvent {
    const SELECT: &'static str = "SELECT id, event_id, occurred_at, event_type, object_type, object_id, payload,
        status, outcome, attempts, last_error FROM crmsync.webhook_inbox";

    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            event_id: row.get(1),
            occurred_at: row.get(2),
            event_type: row.get(3),
            object_type: row.get(4),
            object_id: row.get(5),
            payload: row.get(6),
            status: row.get(7),
            outcome: row.get(8),
            attempts: row.get(9),
            last_error: row.get(10),
        }
    }
}

impl TestApp {
    /// The `T` records matching `rest` (a `WHERE` and/or `ORDER BY` clause, possibly empty) with `params`.
    pub async fn select<T: Record>(&self, rest: &str, params: &[&dyn crmsync_db::SqlParam]) -> Vec<T> {
        let sql = format!("{} {rest}", T::SELECT);
        let client = self.pool().get().await.expect("client");
        let rows = client
            .query(&sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}\n{e:?}"));
        rows.iter().map(T::from_row).collect()
    }

    /// The one `T` record matching `rest`; panics when there is none or more than one.
    pub async fn select_one<T: Record>(&self, rest: &str, params: &[&dyn crmsync_db::SqlParam]) -> T {
        let mut records = self.select::<T>(rest, params).await;
        assert_eq!(records.len(), 1, "expected one row for {} {rest}", T::SELECT);
        records.remove(0)
    }

    /// The deal with `id`; panics when there is none.
    pub async fn deal(&self, id: impl RowId) -> Deal {
        self.select_one("WHERE id = $1", &[&id.row_id()]).await
    }

    /// The deal linked to HubSpot deal `hubspot_id`, if any.
    pub async fn deal_by_hubspot_id(&self, hubspot_id: &str) -> Option<Deal> {
        self.select("WHERE hubspot_deal_id = $1", &[&hubspot_id]).await.pop()
    }

    /// Every deal, by name then id.
    pub async fn deals(&self) -> Vec<Deal> {
        self.select("ORDER BY deal_name, id", &[]).await
    }

    /// The only deal; panics when there is not exactly one.
    pub async fn single_deal(&self) -> Deal {
        self.select_one("", &[]).await
    }

    /// The only company; panics when there is not exactly one.
    pub async fn single_company(&self) -> Company {
        self.select_one("", &[]).await
    }

    pub async fn company(&self, id: impl RowId) -> Company {
        self.select_one("WHERE id = $1", &[&id.row_id()]).await
    }

    pub async fn company_by_hubspot_id(&self, hubspot_id: &str) -> Option<Company> {
        self.select("WHERE hubspot_company_id = $1", &[&hubspot_id]).await.pop()
    }

    /// Every company, by UEI then name.
    pub async fn companies(&self) -> Vec<Company> {
        self.select("ORDER BY uei, name", &[]).await
    }

    pub async fn contact(&self, id: impl RowId) -> Contact {
        self.select_one("WHERE id = $1", &[&id.row_id()]).await
    }

    pub async fn contact_by_hubspot_id(&self, hubspot_id: &str) -> Option<Contact> {
        self.select("WHERE hubspot_contact_id = $1", &[&hubspot_id]).await.pop()
    }

    /// Every contact, by name then id.
    pub async fn contacts(&self) -> Vec<Contact> {
        self.select("ORDER BY full_name, id", &[]).await
    }

    pub async fn activity(&self, id: impl RowId) -> Activity {
        self.select_one("WHERE id = $1", &[&id.row_id()]).await
    }

    /// Every activity, oldest first.
    pub async fn activities(&self) -> Vec<Activity> {
        self.select("ORDER BY created_at, id", &[]).await
    }

    /// The queue rows of one entity, oldest first.
    pub async fn queue_rows(&self, entity_id: impl RowId) -> Vec<QueueRow> {
        self.select("WHERE entity_id = $1 ORDER BY created_at, id", &[&entity_id.row_id()])
            .await
    }

    /// The queue rows of an entity type (`company`, `contact`, `deal`, `activity`), oldest first.
    pub async fn queue_rows_of(&self, entity_type: &str) -> Vec<QueueRow> {
        self.select("WHERE entity_type = $1 ORDER BY created_at, id", &[&entity_type])
            .await
    }

    /// The one queue row of an entity type; panics when there is none or more than one.
    pub async fn queue_row(&self, entity_type: &str) -> QueueRow {
        self.select_one("WHERE entity_type = $1", &[&entity_type]).await
    }

    /// Every queue row, oldest first.
    pub async fn queue(&self) -> Vec<QueueRow> {
        self.select("ORDER BY created_at, id", &[]).await
    }

    /// Every inbox event, in `occurredAt` order.
    pub async fn inbox_events(&self) -> Vec<InboxEvent> {
        self.select("ORDER BY occurred_at, received_at, id", &[]).await
    }

    /// The one inbox event; panics when there is none or more than one.
    pub async fn inbox_event(&self) -> InboxEvent {
        self.select_one("", &[]).await
    }
}
