//! The CRM repositories behind the dashboard REST API: keyset-paginated reads of deals, companies, contacts and
//! activities, the guide's four dashboard queries (verbatim) with sync health, and the manual writes (a contact, an
//! activity, a deal's stage move); the sync_queue rows that tell HubSpot about them come from [`crate::outbox`].
//!
//! Every function takes `&impl Db`, so it joins the caller's transaction: a write and its sync_queue row
//! are committed together or not at all. Filters are assembled into one statement per combination of present
//! filters (not `$1 IS NULL OR ...`), so each combination gets a plan that uses its index.

use crate::Db;
use crate::SqlParam;
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::stage::DealStage;
use tokio_postgres::Row;
use uuid::Uuid;

pub use crmsync_domain::crm::{
    Activity, Company, Contact, Deal, Engagement, NewActivity, NewContact, PipelineStage, RecentActivity, SyncHealth,
    SyncRun, TopCompany, WinRateMonth,
};

use crate::DbError;

/// The guide's "Pipeline Overview" dashboard query, verbatim.
pub const PIPELINE_OVERVIEW: &str = "SELECT
  stage,
  COUNT(*) as count,
  SUM(deal_value) as total_value
FROM deals
WHERE stage NOT IN ('closed_won', 'closed_lost')
GROUP BY stage
ORDER BY
  CASE stage
    WHEN 'new_match' THEN 1
    WHEN 'initial_outreach' THEN 2
    WHEN 'contact_made' THEN 3
    WHEN 'qualified' THEN 4
    WHEN 'proposal_sent' THEN 5
    WHEN 'negotiation' THEN 6
  END;";

/// The guide's "Top Companies" dashboard query, verbatim. Its `ORDER BY pipeline_value DESC` puts companies whose
/// open deals all lack a value (a NULL sum) first, as PostgreSQL sorts NULLs first in descending order; the guide's
/// text is the contract, so it is kept.
pub const TOP_COMPANIES: &str = "SELECT
  c.name,
  c.readiness_score,
  COUNT(d.id) as active_deals,
  SUM(d.deal_value) as pipeline_value
FROM companies c
LEFT JOIN deals d ON c.id = d.company_id
WHERE d.stage NOT IN ('closed_won', 'closed_lost')
GROUP BY c.id
ORDER BY pipeline_value DESC
LIMIT 10;";

/// The guide's "Recent Activities" dashboard query, verbatim.
pub const RECENT_ACTIVITIES: &str = "SELECT
  a.activity_type,
  a.subject,
  c.name as company_name,
  con.full_name as contact_name,
  a.created_at
FROM activities a
LEFT JOIN companies c ON a.company_id = c.id
LEFT JOIN contacts con ON a.contact_id = con.id
ORDER BY a.created_at DESC
LIMIT 20;";

/// The guide's "Win Rate Analysis" dashboard query, verbatim.
pub const WIN_RATE: &str = "SELECT
  DATE_TRUNC('month', closed_at) as month,
  COUNT(*) FILTER (WHERE stage = 'closed_won') as won,
  COUNT(*) FILTER (WHERE stage = 'closed_lost') as lost,
  ROUND(
    COUNT(*) FILTER (WHERE stage = 'closed_won')::numeric /
    NULLIF(COUNT(*), 0) * 100,
    2
  ) as win_rate_pct
FROM deals
WHERE closed_at IS NOT NULL
GROUP BY month
ORDER BY month DESC;";

/// Runs [`PIPELINE_OVERVIEW`].
pub async fn pipeline_overview(client: &impl Db) -> Result<Vec<PipelineStage>, DbError> {
    let statement: &str = PIPELINE_OVERVIEW;
    let rows = client.query(statement, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| PipelineStage {
            stage: row.get(0),
            count: row.get(1),
            total_value: row.get(2),
        })
        .collect())
}

/// Runs [`TOP_COMPANIES`].
pub async fn top_companies(client: &impl Db) -> Result<Vec<TopCompany>, DbError> {
    let statement: &str = TOP_COMPANIES;
    let rows = client.query(statement, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| TopCompany {
            name: row.get(0),
            readiness_score: row.get(1),
            active_deals: row.get(2),
            pipeline_value: row.get(3),
        })
        .collect())
}

/// The dashboard's recent activities: [`RECENT_ACTIVITIES`] (same rows, joins, order and limit) with two columns
/// added, where each activity was logged (`local` or `hubspot`, migration 0013) and its owner's name.
pub const RECENT_ACTIVITIES_WITH_ORIGIN: &str = "SELECT
  a.activity_type,
  a.subject,
  c.name as company_name,
  con.full_name as contact_name,
  a.created_at,
  a.logged_in,
  a.owner_id,
  (SELECT ARRAY[o.first_name, o.last_name, o.email] FROM crmsync.hubspot_owners o WHERE o.id = a.owner_id) AS owner
FROM activities a
LEFT JOIN companies c ON a.company_id = c.id
LEFT JOIN contacts con ON a.contact_id = con.id
ORDER BY a.created_at DESC
LIMIT 20;";

/// Runs [`RECENT_ACTIVITIES_WITH_ORIGIN`].
pub async fn recent_activities(client: &impl Db) -> Result<Vec<RecentActivity>, DbError> {
    let statement: &str = RECENT_ACTIVITIES_WITH_ORIGIN;
    let rows = client.query(statement, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let (owner_name, _) = owner_of(row.get(6), row.get(7));
            RecentActivity {
                activity_type: row.get(0),
                subject: row.get(1),
                company_name: row.get(2),
                contact_name: row.get(3),
                created_at: row.get(4),
                logged_in: row.get(5),
                owner_name,
            }
        })
        .collect())
}

/// An owner's name and email from the cached `[first_name, last_name, email]` of `owner_id`: `(None, None)` without an
/// owner or when the owner is not cached (the API then shows only the id).
fn owner_of(owner_id: Option<String>, cached: Option<Vec<Option<String>>>) -> (Option<String>, Option<String>) {
    match (owner_id, cached) {
        (Some(id), Some(parts)) => {
            let part = |i: usize| parts.get(i).cloned().flatten();
            let (first, last, email) = (part(0), part(1), part(2));
            (
                Some(crmsync_domain::owner::owner_name(
                    &id,
                    first.as_deref(),
                    last.as_deref(),
                    email.as_deref(),
                )),
                email,
            )
        }
        _ => (None, None),
    }
}

/// Runs [`WIN_RATE`].
pub async fn win_rate(client: &impl Db) -> Result<Vec<WinRateMonth>, DbError> {
    let statement: &str = WIN_RATE;
    let rows = client.query(statement, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| WinRateMonth {
            month: row.get(0),
            won: row.get(1),
            lost: row.get(2),
            win_rate_pct: row.get(3),
        })
        .collect())
}

/// How many failed records the dashboard's sync health lists.
pub const FAILED_RECORDS_SHOWN: i64 = 10;

/// Counts the queue's pending, failed and dead rows (one scan of `sync_queue_status_idx`) and reads the latest
/// outbound sync run (not a reconciliation or an import), in one round trip; then the failed records ([`crate::sync_issues::failed_records`], the newest
/// [`FAILED_RECORDS_SHOWN`]).
pub async fn sync_health(client: &impl Db) -> Result<SyncHealth, DbError> {
    let statement: &str = "SELECT
               (SELECT count(*) FROM sync_queue WHERE status = 'pending'),
               (SELECT count(*) FROM sync_queue WHERE status = 'failed'),
               (SELECT count(*) FROM sync_queue WHERE status = 'dead'),
               r.id, r.trigger, r.status, r.started_at, r.finished_at, r.counts
             FROM (SELECT 1) AS one
             LEFT JOIN LATERAL (
               SELECT id, trigger, status, started_at, finished_at, counts
               FROM crmsync.sync_runs WHERE trigger NOT IN ('reconcile', 'import') ORDER BY started_at DESC LIMIT 1
             ) r ON true";
    let row = client.query_one(statement, &[]).await?;
    let last_run = row.get::<_, Option<Uuid>>(3).map(|id| SyncRun {
        id,
        trigger: row.get(4),
        status: row.get(5),
        started_at: row.get(6),
        finished_at: row.get(7),
        counts: row.get(8),
    });
    let (failed_record_count, failed_records) =
        crate::sync_issues::failed_records(client, FAILED_RECORDS_SHOWN).await?;
    Ok(SyncHealth {
        pending: row.get(0),
        failed: row.get(1),
        dead: row.get(2),
        last_run,
        failed_record_count,
        failed_records,
    })
}

/// The `hubspot_sync_error` column of a record (`$entity_type`, its table's alias `$alias`): while the record is
/// `failed`, the last error of its newest dead sync_queue row (see `crate::sync::PgSyncStore::fail`).
macro_rules! sync_error_column {
    ($entity_type:literal, $alias:literal) => {
        concat!(
            "CASE WHEN ",
            $alias,
            ".hubspot_sync_status = 'failed' THEN (SELECT q.last_error FROM sync_queue q
               WHERE q.status = 'dead' AND q.entity_type = '",
            $entity_type,
            "' AND q.entity_id = ",
            $alias,
            ".id
               ORDER BY q.updated_at DESC LIMIT 1) END"
        )
    };
}

const DEAL_COLUMNS: &str = concat!(
    "d.id, d.deal_name, d.stage, d.priority, d.pipeline, d.deal_value, d.expected_close_date,
  d.match_score, d.win_probability, d.company_id, c.name, d.opportunity_id, d.hubspot_deal_id,
  d.hubspot_sync_status, d.closed_at, d.created_at, d.updated_at, ",
    sync_error_column!("deal", "d"),
    ", d.owner_id, (SELECT ARRAY[o.first_name, o.last_name, o.email] FROM crmsync.hubspot_owners o
       WHERE o.id = d.owner_id)"
);

fn deal(row: &Row) -> Deal {
    let owner = owner_of(row.get(18), row.get(19));
    Deal {
        id: row.get(0),
        deal_name: row.get(1),
        stage: row.get(2),
        priority: row.get(3),
        pipeline: row.get(4),
        deal_value: row.get(5),
        expected_close_date: row.get(6),
        match_score: row.get(7),
        win_probability: row.get(8),
        company_id: row.get(9),
        company_name: row.get(10),
        opportunity_id: row.get(11),
        hubspot_deal_id: row.get(12),
        hubspot_sync_status: row.get(13),
        closed_at: row.get(14),
        created_at: row.get(15),
        updated_at: row.get(16),
        hubspot_sync_error: row.get(17),
        owner_id: row.get(18),
        owner_name: owner.0,
        owner_email: owner.1,
    }
}

/// Which deals to list. Absent filters match everything.
#[derive(Debug, Clone, Default)]
pub struct DealFilter {
    pub stage: Option<DealStage>,
    /// `low`, `medium` or `high` (the caller validates; an unknown value simply matches nothing).
    pub priority: Option<String>,
    pub company_id: Option<Uuid>,
}

/// A WHERE clause under construction, with its parameters numbered as they are added.
#[derive(Default)]
pub(crate) struct Conditions<'a> {
    clauses: Vec<String>,
    pub(crate) params: Vec<&'a dyn SqlParam>,
}

impl<'a> Conditions<'a> {
    /// Adds `template` with each `$` replaced by the next parameter number (one parameter per value).
    pub(crate) fn push(&mut self, template: &str, values: &[&'a dyn SqlParam]) {
        let mut clause = String::with_capacity(template.len() + 4);
        let mut values = values.iter();
        for ch in template.chars() {
            if ch == '$' {
                let value = values.next().expect("one value per placeholder");
                self.params.push(*value);
                clause.push_str(&format!("${}", self.params.len()));
            } else {
                clause.push(ch);
            }
        }
        self.clauses.push(clause);
    }

    pub(crate) fn placeholder_for(&mut self, value: &'a dyn SqlParam) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    pub(crate) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// Deals matching `filter` in id order, after the deal `after` (exclusive), at most `limit` of them.
/// Keyset pagination over the primary key: a page costs the same at any depth.
pub async fn list_deals(
    client: &impl Db,
    filter: &DealFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Deal>, DbError> {
    let stage = filter.stage.map(DealStage::as_str);
    let mut conditions = Conditions::default();
    if let Some(stage) = &stage {
        conditions.push("d.stage = $", &[stage]);
    }
    if let Some(priority) = &filter.priority {
        conditions.push("d.priority = $", &[priority]);
    }
    if let Some(company_id) = &filter.company_id {
        conditions.push("d.company_id = $", &[company_id]);
    }
    if let Some(after) = &after {
        conditions.push("d.id > $", &[after]);
    }
    let limit_placeholder = conditions.placeholder_for(&limit);
    let sql = format!(
        "SELECT {DEAL_COLUMNS} FROM deals d LEFT JOIN companies c ON c.id = d.company_id {} ORDER BY d.id LIMIT {}",
        conditions.where_sql(),
        limit_placeholder
    );
    let statement: &str = &sql;
    let rows = client.query(statement, &conditions.params).await?;
    Ok(rows.iter().map(deal).collect())
}

/// One deal, or `None` when there is no deal with that id.
pub async fn get_deal(client: &impl Db, id: Uuid) -> Result<Option<Deal>, DbError> {
    let statement: &str =
        &format!("SELECT {DEAL_COLUMNS} FROM deals d LEFT JOIN companies c ON c.id = d.company_id WHERE d.id = $1");
    Ok(client.query_opt(statement, &[&id]).await?.as_ref().map(deal))
}

/// What [`move_deal_stage`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct StageMove {
    /// The deal after the move.
    pub deal: Deal,
    /// The stage it left; equal to `deal.stage` when the deal was already there (nothing was changed).
    pub previous_stage: String,
}

impl StageMove {
    /// False when the deal was already in the requested stage.
    pub fn changed(&self) -> bool {
        self.previous_stage != self.deal.stage
    }
}

/// Moves a deal to `stage`, locking its row first so concurrent moves apply one after the other. Moving into a
/// stage the domain calls closed ([`DealStage::is_closed`]) sets `closed_at` to the transaction's time; moving to
/// an open stage clears it (the schema's deals_closed_at_check holds either way). The deal becomes `pending` for
/// HubSpot again unless HubSpot deleted it. Moving a deal to the stage it is in changes nothing. `None` when there
/// is no such deal.
///
/// Call it inside a transaction, with [`insert_activity`] and [`crate::outbox::enqueue`] for the stage_change
/// activity and the HubSpot update, so the three are committed together.
pub async fn move_deal_stage(client: &impl Db, id: Uuid, stage: DealStage) -> Result<Option<StageMove>, DbError> {
    let lock: &str = "SELECT stage FROM deals WHERE id = $1 FOR UPDATE";
    let Some(current) = client.query_opt(lock, &[&id]).await? else {
        return Ok(None);
    };
    let previous_stage: String = current.get(0);
    if previous_stage == stage.as_str() {
        let deal = get_deal(client, id).await?.expect("the locked deal exists");
        return Ok(Some(StageMove { deal, previous_stage }));
    }
    let statement: &str = &format!(
        "WITH d AS (
               UPDATE deals SET
                 stage = $2,
                 closed_at = CASE WHEN $3 THEN now() END,
                 hubspot_sync_status = CASE WHEN hubspot_sync_status = $4 THEN $4 ELSE $5 END
               WHERE id = $1
               RETURNING *
             )
             SELECT {DEAL_COLUMNS} FROM d LEFT JOIN companies c ON c.id = d.company_id"
    );
    let row = client
        .query_one(
            statement,
            &[
                &id,
                &stage.as_str(),
                &stage.is_closed(),
                &HubSpotSyncStatus::Deleted.as_str(),
                &HubSpotSyncStatus::Pending.as_str(),
            ],
        )
        .await?;
    Ok(Some(StageMove {
        deal: deal(&row),
        previous_stage,
    }))
}

/// Assigns a deal to a HubSpot owner (`None` clears it), locking its row first. Like a stage move, a real change makes
/// the deal `pending` for HubSpot again unless HubSpot deleted it. Returns the deal after it and whether anything
/// changed; `None` when there is no such deal. Call it in a transaction with [`crate::outbox::enqueue`].
pub async fn set_deal_owner(
    client: &impl Db,
    id: Uuid,
    owner_id: Option<&str>,
) -> Result<Option<(Deal, bool)>, DbError> {
    let lock: &str = "SELECT owner_id FROM deals WHERE id = $1 FOR UPDATE";
    let Some(current) = client.query_opt(lock, &[&id]).await? else {
        return Ok(None);
    };
    let previous: Option<String> = current.get(0);
    if previous.as_deref() == owner_id {
        let deal = get_deal(client, id).await?.expect("the locked deal exists");
        return Ok(Some((deal, false)));
    }
    let statement: &str = &format!(
        "WITH d AS (
               UPDATE deals SET
                 owner_id = $2,
                 hubspot_sync_status = CASE WHEN hubspot_sync_status = $3 THEN $3 ELSE $4 END
               WHERE id = $1
               RETURNING *
             )
             SELECT {DEAL_COLUMNS} FROM d LEFT JOIN companies c ON c.id = d.company_id"
    );
    let row = client
        .query_one(
            statement,
            &[
                &id,
                &owner_id,
                &HubSpotSyncStatus::Deleted.as_str(),
                &HubSpotSyncStatus::Pending.as_str(),
            ],
        )
        .await?;
    Ok(Some((deal(&row), true)))
}

const COMPANY_COLUMNS: &str = concat!(
    "c.id, c.name, c.source, c.uei, c.cage_code, c.website, c.phone, c.address, c.city,
  c.state, c.zip, c.primary_naics, c.sam_registered, c.readiness_score, c.qualification_status, c.lifecycle_stage,
  c.hubspot_company_id, c.hubspot_sync_status, c.created_at, c.updated_at, ",
    sync_error_column!("company", "c")
);

fn company(row: &Row) -> Company {
    Company {
        id: row.get(0),
        name: row.get(1),
        source: row.get(2),
        uei: row.get(3),
        cage_code: row.get(4),
        website: row.get(5),
        phone: row.get(6),
        address: row.get(7),
        city: row.get(8),
        state: row.get(9),
        zip: row.get(10),
        primary_naics: row.get(11),
        sam_registered: row.get(12),
        readiness_score: row.get(13),
        qualification_status: row.get(14),
        lifecycle_stage: row.get(15),
        hubspot_company_id: row.get(16),
        hubspot_sync_status: row.get(17),
        created_at: row.get(18),
        updated_at: row.get(19),
        hubspot_sync_error: row.get(20),
    }
}

/// Which companies to list.
#[derive(Debug, Clone, Default)]
pub struct CompanyFilter {
    /// `qualified` or `unqualified`.
    pub qualification_status: Option<String>,
    /// A case-insensitive substring of the name (LIKE wildcards in it are matched literally).
    pub name_contains: Option<String>,
}

/// Companies matching `filter` in (name, id) order, after the company `after` (exclusive; its position is looked up
/// by id, so a cursor is just the last id of the previous page, and an id that no longer exists ends the list), at
/// most `limit`.
pub async fn list_companies(
    client: &impl Db,
    filter: &CompanyFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Company>, DbError> {
    let pattern = filter.name_contains.as_deref().map(like_pattern);
    let mut conditions = Conditions::default();
    if let Some(status) = &filter.qualification_status {
        conditions.push("c.qualification_status = $", &[status]);
    }
    if let Some(pattern) = &pattern {
        conditions.push("c.name ILIKE $", &[pattern]);
    }
    if let Some(after) = &after {
        conditions.push(
            "(c.name, c.id) > (SELECT name, id FROM companies WHERE id = $)",
            &[after],
        );
    }
    let limit_placeholder = conditions.placeholder_for(&limit);
    let sql = format!(
        "SELECT {COMPANY_COLUMNS} FROM companies c {} ORDER BY c.name, c.id LIMIT {}",
        conditions.where_sql(),
        limit_placeholder
    );
    let statement: &str = &sql;
    let rows = client.query(statement, &conditions.params).await?;
    Ok(rows.iter().map(company).collect())
}

/// One company with its engagement summary, or `None`.
pub async fn get_company(client: &impl Db, id: Uuid) -> Result<Option<(Company, Engagement)>, DbError> {
    let statement: &str = &format!(
        "SELECT {COMPANY_COLUMNS}, e.total_deals, e.active_deals, e.won_deals, e.pipeline_value, e.contacts,
               e.activities, e.last_activity_at
             FROM companies c JOIN v_company_engagement e ON e.company_id = c.id
             WHERE c.id = $1"
    );
    Ok(client.query_opt(statement, &[&id]).await?.map(|row| {
        let engagement = Engagement {
            total_deals: row.get(21),
            active_deals: row.get(22),
            won_deals: row.get(23),
            pipeline_value: row.get(24),
            contacts: row.get(25),
            activities: row.get(26),
            last_activity_at: row.get(27),
        };
        (company(&row), engagement)
    }))
}

const CONTACT_COLUMNS: &str = concat!(
    "id, company_id, full_name, first_name, last_name, email, phone, job_title, is_primary,
  source, lifecycle_stage, notes, hubspot_contact_id, hubspot_sync_status, created_at, updated_at, ",
    sync_error_column!("contact", "contacts")
);

fn contact(row: &Row) -> Contact {
    Contact {
        id: row.get(0),
        company_id: row.get(1),
        full_name: row.get(2),
        first_name: row.get(3),
        last_name: row.get(4),
        email: row.get(5),
        phone: row.get(6),
        job_title: row.get(7),
        is_primary: row.get(8),
        source: row.get(9),
        lifecycle_stage: row.get(10),
        notes: row.get(11),
        hubspot_contact_id: row.get(12),
        hubspot_sync_status: row.get(13),
        created_at: row.get(14),
        updated_at: row.get(15),
        hubspot_sync_error: row.get(16),
    }
}

/// Contacts (of one company, when given) in (full_name, id) order after the contact `after` (looked up by id, as
/// for [`list_companies`]), at most `limit`.
pub async fn list_contacts(
    client: &impl Db,
    company_id: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Contact>, DbError> {
    let mut conditions = Conditions::default();
    if let Some(company_id) = &company_id {
        conditions.push("company_id = $", &[company_id]);
    }
    if let Some(after) = &after {
        conditions.push(
            "(full_name, id) > (SELECT full_name, id FROM contacts WHERE id = $)",
            &[after],
        );
    }
    let limit_placeholder = conditions.placeholder_for(&limit);
    let sql = format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts {} ORDER BY full_name, id LIMIT {}",
        conditions.where_sql(),
        limit_placeholder
    );
    let statement: &str = &sql;
    let rows = client.query(statement, &conditions.params).await?;
    Ok(rows.iter().map(contact).collect())
}

/// Inserts a contact (source `manual`, HubSpot status `pending`). Errors: a duplicate email violates
/// `contacts_email_key` (SQLSTATE 23505), an unknown company `contacts_company_id_fkey` (23503).
pub async fn insert_contact(client: &impl Db, new: &NewContact) -> Result<Contact, DbError> {
    let statement: &str = &format!(
        "INSERT INTO contacts (company_id, full_name, first_name, last_name, email, phone, job_title, is_primary,
               notes, source, hubspot_sync_status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'manual', $10)
             RETURNING {CONTACT_COLUMNS}"
    );
    let row = client
        .query_one(
            statement,
            &[
                &new.company_id,
                &new.full_name,
                &new.first_name,
                &new.last_name,
                &new.email,
                &new.phone,
                &new.job_title,
                &new.is_primary,
                &new.notes,
                &HubSpotSyncStatus::Pending.as_str(),
            ],
        )
        .await?;
    Ok(contact(&row))
}

const ACTIVITY_COLUMNS: &str = concat!(
    "id, activity_type, subject, body, deal_id, company_id, contact_id, occurred_at,
  created_by, hubspot_engagement_id, hubspot_sync_status, created_at, ",
    sync_error_column!("activity", "activities"),
    ", logged_in, owner_id, status, (SELECT ARRAY[o.first_name, o.last_name, o.email] FROM crmsync.hubspot_owners o
       WHERE o.id = activities.owner_id)"
);

fn activity(row: &Row) -> Activity {
    let owner = owner_of(row.get(14), row.get(16));
    Activity {
        id: row.get(0),
        activity_type: row.get(1),
        subject: row.get(2),
        body: row.get(3),
        deal_id: row.get(4),
        company_id: row.get(5),
        contact_id: row.get(6),
        occurred_at: row.get(7),
        created_by: row.get(8),
        hubspot_engagement_id: row.get(9),
        hubspot_sync_status: row.get(10),
        created_at: row.get(11),
        hubspot_sync_error: row.get(12),
        logged_in: row.get(13),
        owner_id: row.get(14),
        status: row.get(15),
        owner_name: owner.0,
        owner_email: owner.1,
    }
}

/// Which activities to list: all given targets must match.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub deal_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
}

/// Activities matching `filter`, newest first ((created_at, id) descending), after the activity `after` (looked up
/// by id, as for [`list_companies`]), at most `limit`.
pub async fn list_activities(
    client: &impl Db,
    filter: &ActivityFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Activity>, DbError> {
    let mut conditions = Conditions::default();
    if let Some(deal_id) = &filter.deal_id {
        conditions.push("deal_id = $", &[deal_id]);
    }
    if let Some(company_id) = &filter.company_id {
        conditions.push("company_id = $", &[company_id]);
    }
    if let Some(contact_id) = &filter.contact_id {
        conditions.push("contact_id = $", &[contact_id]);
    }
    if let Some(after) = &after {
        conditions.push(
            "(created_at, id) < (SELECT created_at, id FROM activities WHERE id = $)",
            &[after],
        );
    }
    let limit_placeholder = conditions.placeholder_for(&limit);
    let sql = format!(
        "SELECT {ACTIVITY_COLUMNS} FROM activities {} ORDER BY created_at DESC, id DESC LIMIT {}",
        conditions.where_sql(),
        limit_placeholder
    );
    let statement: &str = &sql;
    let rows = client.query(statement, &conditions.params).await?;
    Ok(rows.iter().map(activity).collect())
}

/// Inserts an activity. A missing `company_id` is taken from the deal, else from the contact, so an activity
/// logged on a deal shows under its company too (the dashboard's recent-activities query joins the company).
/// Errors: an unknown deal, company or contact violates `activities_<field>_fkey` (SQLSTATE 23503).
pub async fn insert_activity(client: &impl Db, new: &NewActivity) -> Result<Activity, DbError> {
    let statement: &str = &format!(
            "INSERT INTO activities (activity_type, subject, body, deal_id, contact_id, company_id, occurred_at,
               created_by, hubspot_sync_status)
             VALUES ($1, $2, $3, $4, $5,
               COALESCE($6, (SELECT company_id FROM deals WHERE id = $4), (SELECT company_id FROM contacts WHERE id = $5)),
               COALESCE($7, now()), $8, $9)
             RETURNING {ACTIVITY_COLUMNS}"
        );
    let row = client
        .query_one(
            statement,
            &[
                &new.activity_type,
                &new.subject,
                &new.body,
                &new.deal_id,
                &new.contact_id,
                &new.company_id,
                &new.occurred_at,
                &new.created_by,
                &new.hubspot_sync_status.as_str(),
            ],
        )
        .await?;
    Ok(activity(&row))
}

/// The dashboard statistics cache's generation, shared by every API instance: one primary-key lookup of
/// crmsync.dashboard_cache_generation's only row (0 if someone deleted it). A value cached under another generation
/// is stale.
pub async fn dashboard_cache_generation(client: &impl Db) -> Result<i64, DbError> {
    let statement: &str = "SELECT generation FROM crmsync.dashboard_cache_generation WHERE id = true";
    Ok(client.query_opt(statement, &[]).await?.map_or(0, |row| row.get(0)))
}

/// Bumps the dashboard statistics cache's generation, invalidating every API instance's cache when the caller's
/// transaction commits (and not before: a load that runs before the commit is cached under the old generation).
/// Call it as the last statement of a write's transaction: the one row stays locked until the commit, so taking it
/// last keeps concurrent writes from waiting on it for long, and always after their other row locks (no deadlock).
/// Recreates the row if it is missing. Returns the new generation.
pub async fn bump_dashboard_cache_generation(client: &impl Db) -> Result<i64, DbError> {
    let statement: &str = "INSERT INTO crmsync.dashboard_cache_generation AS g (id, generation) VALUES (true, 1)
             ON CONFLICT (id) DO UPDATE SET generation = g.generation + 1, updated_at = now()
             RETURNING generation";
    Ok(client.query_one(statement, &[]).await?.get(0))
}

/// Escapes LIKE's wildcards and wraps the text in `%...%`: a substring match of exactly what was typed.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// The constraint a server-side error names, if any (e.g. `contacts_email_key`).
pub fn violated_constraint(error: &DbError) -> Option<&str> {
    match error {
        DbError::Postgres(pg) => pg.as_db_error().and_then(|db| db.constraint()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_pattern("acme"), "%acme%");
        assert_eq!(like_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }

    #[test]
    fn conditions_number_their_placeholders_in_order() {
        let (a, b, c) = ("x".to_owned(), 1_i64, 2_i64);
        let mut conditions = Conditions::default();
        conditions.push("a = $", &[&a]);
        conditions.push("(b, c) > ($, $)", &[&b, &c]);
        let limit = conditions.placeholder_for(&b);
        assert_eq!(conditions.where_sql(), "WHERE a = $1 AND (b, c) > ($2, $3)");
        assert_eq!(limit, "$4");
        assert_eq!(conditions.params.len(), 4);
    }
}
