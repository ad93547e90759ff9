//! `PgSyncStore`: the outbound sync's side of PostgreSQL. Claims due sync_queue rows with FOR UPDATE SKIP LOCKED
//! and a lease, loads the records to send, and writes back results: each write-back is one transaction.

use std::collections::HashMap;
use std::time::Duration;

use crate::{Db, Pool, SqlParam};
use crmsync_domain::hubspot_status::RecordSyncEvent;
use crmsync_domain::queue::{Claim, QueueState, SyncStatus};
use crmsync_domain::sync::{
    ActivityRecord, CompanyRecord, ContactRecord, DealRecord, EntityType, PipelineMap, Properties, RetryDecision,
    SyncItem, value_hash,
};
use serde_json::Value;
use uuid::Uuid;

use crate::DbError;

/// The settings key under which hubspot-setup's pipeline map is stored.
const PIPELINE_SETTING: &str = "hubspot_pipeline";

/// The advisory lock claims take turns on ("crmsync-claim" folded into 64 bits; distinct from the migration
/// runner's key).
const CLAIM_LOCK_KEY: i64 = 0x63_6c_61_69_6d_5f_73_71;

/// How early the retry path may take a row before its next_attempt_at: SQS's delivery is not exact to the second.
pub const RETRY_DUE_SLACK: Duration = Duration::from_secs(1);

/// Why a company that deals wait for is not brought into a round: see [`PgSyncStore::company_states`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompanyState {
    /// It cannot be written: the reason.
    Blocked(String),
    /// It has its own open queue row, not due yet (backing off).
    Queued,
}

/// Statuses in this file's SQL: a status the statement writes is a bound parameter (`SyncStatus::as_str`); one it
/// filters on is rendered from [`SyncStatus`] into the SQL text by these constants, because sync_queue's partial
/// indexes (`WHERE status IN ('pending', 'failed')` ...) only serve predicates the planner can see as literals.
const IN_PROGRESS: &str = SyncStatus::InProgress.as_str();
const PENDING: &str = SyncStatus::Pending.as_str();
const DEAD: &str = SyncStatus::Dead.as_str();
/// Attempts a claim adds: see [`Claim::attempts_added`].
const TAKEOVER_ADDS: i32 = Claim::Takeover.attempts_added();
const FRESH_ADDS: i32 = Claim::Fresh.attempts_added();

/// `'pending', 'failed'`: the statuses a row waits in until due.
fn waiting() -> String {
    SyncStatus::sql_list(&SyncStatus::WAITING)
}

/// The predicate of a row `alias` that a claim may take: waiting and due by `due_by` (or whatever its due time when
/// `None`), or in progress under an expired lease (see [`QueueState::claim`]).
fn claimable(alias: &str, due_by: Option<&str>) -> String {
    let due = due_by
        .map(|at| format!(" AND {alias}.next_attempt_at <= {at}"))
        .unwrap_or_default();
    format!(
        "(({alias}.status IN ({waiting}){due}) OR ({alias}.status = '{IN_PROGRESS}' AND {alias}.locked_until < now()))",
        waiting = waiting()
    )
}

/// The predicate of a row `alias` that another run holds: in progress under a live lease.
fn leased(alias: &str) -> String {
    format!("{alias}.status = '{IN_PROGRESS}' AND {alias}.locked_until >= now()")
}

fn status_from(value: &str) -> Result<SyncStatus, DbError> {
    value
        .parse()
        .map_err(|e: crmsync_domain::DomainError| DbError::Config(e.to_string()))
}

/// A sync_queue row as the SQS retry path sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRowState {
    pub status: SyncStatus,
    pub attempts: i32,
    /// Until next_attempt_at (zero when due).
    pub due_in: Duration,
    /// In progress under a live lease: another run holds it.
    pub leased: bool,
}

#[derive(Clone, Debug)]
pub struct PgSyncStore {
    pool: Pool,
}

/// An entity HubSpot accepted: what to write back.
#[derive(Debug, Clone)]
pub struct SyncedEntity {
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    /// HubSpot's object type name (companies, deals, ...), for the echo ledger.
    pub object_type: &'static str,
    pub hubspot_id: String,
    /// The properties sent (name → value); their hashes become the new baseline and enter the echo ledger.
    pub written: Properties,
    /// False while part of its write is still to be done (its company association failed or waits): its HubSpot
    /// id and hashes are written back, but its record is not `synced` yet.
    pub settled: bool,
}

/// Queue counts for `crmsync status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueueStatus {
    /// (status, entity_type, count)
    pub counts: Vec<(SyncStatus, String, i64)>,
    pub oldest_pending_age_seconds: Option<f64>,
    pub problems: Vec<ProblemItem>,
    /// Pending items waiting for another record (a deal for its company): how many, and the newest few.
    pub waiting_count: i64,
    pub waiting: Vec<ProblemItem>,
    pub last_runs: Vec<Value>,
}

/// The queue's size and lag, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueGauges {
    /// Open rows: pending, failed (backing off) and in progress.
    pub depth: i64,
    /// Age of the oldest pending or failed row; 0 when there is none.
    pub oldest_pending_age_seconds: f64,
}

/// A failed or dead item with its last error.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProblemItem {
    pub id: Uuid,
    pub entity_type: String,
    pub entity_id: Uuid,
    pub status: SyncStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
}

/// A row `q`'s retryable failures and how long ago the first was (crmsync.sync_retry_state), as columns.
const RETRY_HISTORY: &str = "coalesce((SELECT r.retryable_failures FROM crmsync.sync_retry_state r
                                        WHERE r.sync_queue_id = q.id), 0) AS retryable_failures,
                              (SELECT EXTRACT(EPOCH FROM now() - r.first_failed_at)::float8
                               FROM crmsync.sync_retry_state r WHERE r.sync_queue_id = q.id) AS failing_for";

/// A pending row put back to wait for another record: [`PgSyncStore::defer`] records why in last_error.
const WAITING: &str = "last_error LIKE 'waiting for %'";

fn problem_from_row(row: &tokio_postgres::Row) -> Result<ProblemItem, DbError> {
    Ok(ProblemItem {
        id: row.get(0),
        entity_type: row.get(1),
        entity_id: row.get(2),
        status: status_from(row.get(3))?,
        attempts: row.get(4),
        last_error: row.get(5),
        next_attempt_at: row.get(6),
    })
}

fn hubspot_id_column(entity_type: EntityType) -> (&'static str, &'static str) {
    match entity_type {
        EntityType::Company => ("companies", "hubspot_company_id"),
        EntityType::Contact => ("contacts", "hubspot_contact_id"),
        EntityType::Deal => ("deals", "hubspot_deal_id"),
        EntityType::Activity => ("activities", "hubspot_engagement_id"),
    }
}

/// Data-modifying CTEs (each starting with a comma) that move the records named by `targets` (a CTE with
/// `entity_type` and `entity_id`) as `event` says, one per record table. With `handled` (a CTE with `id`: the rows
/// the statement changes), a record whose entity has another open sync_queue row keeps its status: that newer change
/// is still to be sent and decides. `extra` adds a condition on the record `t`, given its table's HubSpot id column.
///
/// The CTEs run in the caller's statement, so a record's status changes exactly when its queue rows do. (PostgreSQL
/// runs every data-modifying CTE, referenced or not, and all see the statement's snapshot: the rows the statement
/// changes still show their old status to the NOT EXISTS check, hence `handled`.)
fn record_status_ctes(
    targets: &str,
    handled: Option<&str>,
    event: RecordSyncEvent,
    extra: impl Fn(&'static str) -> String,
) -> String {
    let newer_open = handled
        .map(|handled| {
            format!(
                "
                 AND NOT EXISTS (SELECT 1 FROM sync_queue o
                                 WHERE o.entity_type = k.entity_type AND o.entity_id = k.entity_id
                                   AND o.status IN ({open}) AND o.id NOT IN (SELECT id FROM {handled}))",
                open = SyncStatus::sql_list(&SyncStatus::OPEN),
            )
        })
        .unwrap_or_default();
    let mut ctes = String::new();
    for entity_type in EntityType::SYNC_ORDER {
        let (table, column) = hubspot_id_column(entity_type);
        ctes.push_str(&format!(
            ",
             {table}_status AS (
               UPDATE public.{table} t SET hubspot_sync_status = '{to}'
               FROM (SELECT DISTINCT entity_type, entity_id FROM {targets}) k
               WHERE k.entity_type = '{entity}' AND t.id = k.entity_id
                 AND t.hubspot_sync_status IN ({from}){extra}{newer_open}
             )",
            entity = entity_type.as_str(),
            to = event.status().as_str(),
            from = event.moves_from_sql(),
            extra = extra(column),
        ));
    }
    ctes
}

fn item_from_row(row: &tokio_postgres::Row) -> Result<SyncItem, DbError> {
    let entity_type: String = row.get("entity_type");
    Ok(SyncItem {
        id: row.get("id"),
        entity_type: entity_type
            .parse()
            .map_err(|e: crmsync_domain::DomainError| DbError::Config(e.to_string()))?,
        entity_id: row.get("entity_id"),
        operation: row.get("operation"),
        attempts: row.get("attempts"),
        taken_over: row.try_get("taken_over").unwrap_or(false),
        retryable_failures: row.try_get("retryable_failures").unwrap_or(0),
        failing_for: row
            .try_get::<_, Option<f64>>("failing_for")
            .ok()
            .flatten()
            .map(|seconds| Duration::from_secs_f64(seconds.max(0.0))),
    })
}

impl PgSyncStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Claims up to `limit` due rows (pending, failed and due, or in progress with an expired lease) for `lease`,
    /// writing `lease_holder` to `locked_by`, together with every other open row of the same entities.
    ///
    /// - Concurrent claimers never get the same row (SKIP LOCKED), and never rows of the same entity: claims take
    ///   turns on an advisory transaction lock, so each sees the ones before it, and an entity with a row in
    ///   progress under a live lease is left to that lease's holder. Otherwise run A could load v1 of a deal while
    ///   run B loads and sends v2, and A's slower v1 would land last.
    /// - A row in progress whose lease expired (a crashed or timed-out run) is taken over: `taken_over` is set and
    ///   the crashed run's attempt is counted, so a row that crashes every run still ends dead after max attempts.
    pub async fn claim(&self, limit: i64, lease: Duration, lease_holder: &str) -> Result<Vec<SyncItem>, DbError> {
        let seeds = format!(
            "SELECT q.id, q.entity_type, q.entity_id FROM sync_queue q
             WHERE {claimable}
               AND NOT EXISTS (SELECT 1 FROM sync_queue o
                               WHERE o.entity_type = q.entity_type AND o.entity_id = q.entity_id AND {leased})
             ORDER BY q.next_attempt_at
             LIMIT $6
             FOR UPDATE SKIP LOCKED",
            claimable = claimable("q", Some("now()")),
            leased = leased("o"),
        );
        self.claim_entities(&seeds, lease, lease_holder, &[&limit]).await
    }

    /// Claims the named rows for the SQS retry path, with the same entity rules as [`PgSyncStore::claim`], but only
    /// where the message is current and the row is due: its attempts still equal the message's (an older message,
    /// from before a retry the schedule already made, is stale), and its next_attempt_at has passed (within
    /// [`RETRY_DUE_SLACK`]; SQS delays are capped at 900 s, longer backoffs are not cut short).
    pub async fn claim_ids(
        &self,
        wanted: &[(Uuid, i32)],
        lease: Duration,
        lease_holder: &str,
    ) -> Result<Vec<SyncItem>, DbError> {
        let ids: Vec<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
        let attempts: Vec<i32> = wanted.iter().map(|(_, attempts)| *attempts).collect();
        let seeds = format!(
            "SELECT q.id, q.entity_type, q.entity_id
             FROM sync_queue q JOIN UNNEST($6::uuid[], $7::int4[]) AS w (id, attempts)
               ON w.id = q.id AND w.attempts = q.attempts
             WHERE {claimable}
               AND NOT EXISTS (SELECT 1 FROM sync_queue o
                               WHERE o.entity_type = q.entity_type AND o.entity_id = q.entity_id AND {leased})
             FOR UPDATE OF q SKIP LOCKED",
            claimable = claimable("q", Some("now() + make_interval(secs => $8)")),
            leased = leased("o"),
        );
        self.claim_entities(
            &seeds,
            lease,
            lease_holder,
            &[&ids, &attempts, &RETRY_DUE_SLACK.as_secs_f64()],
        )
        .await
    }

    /// Claims the rows `seeds` selects (its own parameters from $6) and every other open row of their entities, in
    /// one transaction holding the claim lock. The claim writes what [`QueueState::claim`] decides: in progress, and
    /// one more attempt on a takeover.
    async fn claim_entities(
        &self,
        seeds: &str,
        lease: Duration,
        lease_holder: &str,
        seed_params: &[&dyn SqlParam],
    ) -> Result<Vec<SyncItem>, DbError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        // Claims take turns (a claim is one short statement): each starts its statement after the previous one
        // committed, so it sees that claim's leases and leaves their entities alone.
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK_KEY])
            .await?;
        // A claimed row that was in progress is a takeover (its lease expired); any other is a fresh claim.
        let sql = format!(
            "WITH seeds AS ({seeds}),
             claimed AS (
               SELECT s.id, s.status FROM sync_queue s
               WHERE (s.entity_type, s.entity_id) IN (SELECT entity_type, entity_id FROM seeds)
                 AND {claimable}
               FOR UPDATE SKIP LOCKED
             )
             UPDATE sync_queue q
             SET status = $3, locked_until = now() + make_interval(secs => $1), locked_by = $2,
                 attempts = q.attempts + CASE WHEN claimed.status = '{IN_PROGRESS}' THEN $4::int4 ELSE $5::int4 END
             FROM claimed WHERE q.id = claimed.id
             RETURNING q.id, q.entity_type, q.entity_id, q.operation, q.attempts,
                       claimed.status = '{IN_PROGRESS}' AS taken_over, {history}",
            history = RETRY_HISTORY,
            claimable = claimable("s", None),
        );
        let statement: &str = &sql;
        let lease_seconds = lease.as_secs_f64();
        let mut params: Vec<&dyn SqlParam> =
            vec![&lease_seconds, &lease_holder, &IN_PROGRESS, &TAKEOVER_ADDS, &FRESH_ADDS];
        params.extend_from_slice(seed_params);
        let rows = transaction.query(statement, &params).await?;
        transaction.commit().await?;
        rows.iter().map(item_from_row).collect()
    }

    /// The rows the retry path asks about, by id: status, attempts, and how long until they are due.
    pub async fn retry_row_states(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, RetryRowState>, DbError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT q.id, q.status, q.attempts,
                    greatest(EXTRACT(EPOCH FROM q.next_attempt_at - now())::float8, 0),
                    {leased}
             FROM sync_queue q WHERE q.id = ANY($1)",
            leased = leased("q"),
        );
        let rows = client.query(&sql, &[&ids]).await?;
        rows.iter()
            .map(|row| {
                let state = RetryRowState {
                    status: status_from(row.get(1))?,
                    attempts: row.get(2),
                    due_in: Duration::from_secs_f64(row.get::<_, f64>(3)),
                    leased: row.get(4),
                };
                Ok((row.get(0), state))
            })
            .collect()
    }

    /// Rows a dry run would take: due now, without claiming them.
    pub async fn peek_due(&self, limit: i64) -> Result<Vec<SyncItem>, DbError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT q.id, q.entity_type, q.entity_id, q.operation, q.attempts, {history} FROM sync_queue q
             WHERE {claimable}
             ORDER BY q.next_attempt_at LIMIT $1",
            claimable = claimable("q", Some("now()")),
            history = RETRY_HISTORY,
        );
        let rows = client.query(&sql, &[&limit]).await?;
        rows.iter().map(item_from_row).collect()
    }

    /// The status of rows, by id (for the SQS path: completed, dead, ...).
    pub async fn statuses(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, SyncStatus>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query("SELECT id, status FROM sync_queue WHERE id = ANY($1)", &[&ids])
            .await?;
        rows.iter()
            .map(|row| Ok((row.get(0), status_from(row.get(1))?)))
            .collect()
    }

    pub async fn load_companies(&self, ids: &[Uuid]) -> Result<Vec<CompanyRecord>, DbError> {
        let client = self.pool.get().await?;
        let statement: &str =
            "SELECT id, name, uei, cage_code, website, phone, address, city, state, zip, primary_naics,
                        readiness_score, lifecycle_stage, hubspot_company_id
                 FROM companies WHERE id = ANY($1) AND hubspot_sync_status <> 'deleted'";
        let rows = client.query(statement, &[&ids]).await?;
        Ok(rows
            .iter()
            .map(|row| CompanyRecord {
                id: row.get(0),
                name: row.get(1),
                uei: row.get(2),
                cage_code: row.get(3),
                website: row.get(4),
                phone: row.get(5),
                address: row.get(6),
                city: row.get(7),
                state: row.get(8),
                zip: row.get(9),
                primary_naics: row.get(10),
                readiness_score: row.get(11),
                lifecycle_stage: row.get(12),
                hubspot_company_id: row.get(13),
            })
            .collect())
    }

    pub async fn load_deals(&self, ids: &[Uuid]) -> Result<Vec<DealRecord>, DbError> {
        let client = self.pool.get().await?;
        let statement: &str =
            "SELECT d.id, d.company_id, d.deal_name, d.deal_value, d.expected_close_date, d.stage, d.match_score,
                        d.win_probability, d.priority, o.notice_id::text, d.hubspot_deal_id, d.owner_id
                 FROM deals d LEFT JOIN opportunities o ON o.id = d.opportunity_id
                 WHERE d.id = ANY($1) AND d.hubspot_sync_status <> 'deleted'";
        let rows = client.query(statement, &[&ids]).await?;
        Ok(rows
            .iter()
            .map(|row| DealRecord {
                id: row.get(0),
                company_id: row.get(1),
                deal_name: row.get(2),
                deal_value: row.get(3),
                expected_close_date: row.get(4),
                stage: row.get(5),
                match_score: row.get(6),
                win_probability: row.get(7),
                priority: row.get(8),
                notice_id: row.get(9),
                hubspot_deal_id: row.get(10),
                owner_id: row.get(11),
            })
            .collect())
    }

    pub async fn load_contacts(&self, ids: &[Uuid]) -> Result<Vec<ContactRecord>, DbError> {
        let client = self.pool.get().await?;
        let statement: &str =
            "SELECT id, company_id, full_name, first_name, last_name, email, phone, mobile_phone, job_title,
                        lifecycle_stage, hubspot_contact_id
                 FROM contacts WHERE id = ANY($1) AND hubspot_sync_status <> 'deleted'";
        let rows = client.query(statement, &[&ids]).await?;
        Ok(rows
            .iter()
            .map(|row| ContactRecord {
                id: row.get(0),
                company_id: row.get(1),
                full_name: row.get(2),
                first_name: row.get(3),
                last_name: row.get(4),
                email: row.get(5),
                phone: row.get(6),
                mobile_phone: row.get(7),
                job_title: row.get(8),
                lifecycle_stage: row.get(9),
                hubspot_contact_id: row.get(10),
            })
            .collect())
    }

    /// Activities with the HubSpot ids their targets have now.
    pub async fn load_activities(&self, ids: &[Uuid]) -> Result<Vec<ActivityRecord>, DbError> {
        let client = self.pool.get().await?;
        let statement: &str =
            "SELECT a.id, a.activity_type, a.subject, a.body, a.occurred_at, a.direction, a.status, a.due_at,
                        a.duration_seconds, a.hubspot_engagement_id,
                        a.deal_id, d.hubspot_deal_id, a.company_id, c.hubspot_company_id, a.contact_id,
                        ct.hubspot_contact_id
                 FROM activities a
                 LEFT JOIN deals d ON d.id = a.deal_id
                 LEFT JOIN companies c ON c.id = a.company_id
                 LEFT JOIN contacts ct ON ct.id = a.contact_id
                 WHERE a.id = ANY($1) AND a.hubspot_sync_status NOT IN ('deleted', 'local_only')";
        let rows = client.query(statement, &[&ids]).await?;
        let target = |row: &tokio_postgres::Row, id: usize| -> Option<(Uuid, Option<String>)> {
            row.get::<_, Option<Uuid>>(id).map(|local| (local, row.get(id + 1)))
        };
        Ok(rows
            .iter()
            .map(|row| ActivityRecord {
                id: row.get(0),
                activity_type: row.get(1),
                subject: row.get(2),
                body: row.get(3),
                occurred_at: row.get(4),
                direction: row.get(5),
                status: row.get(6),
                due_at: row.get(7),
                duration_seconds: row.get(8),
                hubspot_engagement_id: row.get(9),
                deal: target(row, 10),
                company: target(row, 12),
                contact: target(row, 14),
            })
            .collect())
    }

    /// Why each of these companies cannot be written for the deals and contacts that wait for it, or that it
    /// comes on its own: [`CompanyState::Blocked`] when its record is deleted or missing, or its sync item is dead
    /// with no open one after it; [`CompanyState::Queued`] when it has an open queue row that is not due (backing
    /// off after a failure: it is retried on its own schedule, not every time a waiting deal is tried). Companies
    /// not in the map may be brought into a round, even one another run holds: its deals would otherwise wait
    /// for a wake-up that can race with that run's write-back (the upsert key makes the second write harmless).
    pub async fn company_states(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, CompanyState>, DbError> {
        let client = self.pool.get().await?;
        let statement: &str = &format!(
            "SELECT k.id, c.id IS NULL OR c.hubspot_sync_status = 'deleted',
                        EXISTS (SELECT 1 FROM sync_queue q WHERE q.entity_type = 'company' AND q.entity_id = k.id
                                AND q.status IN ({waiting}) AND q.next_attempt_at > now()),
                        EXISTS (SELECT 1 FROM sync_queue q WHERE q.entity_type = 'company' AND q.entity_id = k.id
                                AND q.status IN ({open})),
                        (SELECT coalesce(q.last_error, 'no error recorded') FROM sync_queue q
                         WHERE q.entity_type = 'company' AND q.entity_id = k.id AND q.status = '{DEAD}'
                         ORDER BY q.updated_at DESC LIMIT 1)
                 FROM UNNEST($1::uuid[]) AS k (id) LEFT JOIN companies c ON c.id = k.id",
            waiting = waiting(),
            open = SyncStatus::sql_list(&SyncStatus::OPEN),
        );
        let mut states = HashMap::new();
        for row in client.query(statement, &[&ids]).await? {
            let (id, gone, not_due, open): (Uuid, bool, bool, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
            let dead: Option<String> = row.get(4);
            let state = match (gone, not_due, open, dead) {
                (true, ..) => CompanyState::Blocked("its record is deleted".into()),
                (false, true, ..) => CompanyState::Queued,
                (false, false, false, Some(error)) => CompanyState::Blocked(format!("its sync item is dead ({error})")),
                (false, false, ..) => continue,
            };
            states.insert(id, state);
        }
        Ok(states)
    }

    /// The property hashes last written, per entity.
    pub async fn property_hashes(
        &self,
        entity_type: EntityType,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, HashMap<String, String>>, DbError> {
        let client = self.pool.get().await?;
        let statement: &str = "SELECT entity_id, property, value_hash FROM crmsync.property_hashes
                 WHERE entity_type = $1 AND entity_id = ANY($2)";
        let mut hashes: HashMap<Uuid, HashMap<String, String>> = HashMap::new();
        for row in client.query(statement, &[&entity_type.as_str(), &ids]).await? {
            hashes.entry(row.get(0)).or_default().insert(row.get(1), row.get(2));
        }
        Ok(hashes)
    }

    pub async fn pipeline_map(&self) -> Result<Option<PipelineMap>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT value FROM crmsync.settings WHERE key = $1",
                &[&PIPELINE_SETTING],
            )
            .await?;
        Ok(row.and_then(|row| serde_json::from_value(row.get(0)).ok()))
    }

    pub async fn save_pipeline_map(&self, map: &PipelineMap) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        let value = serde_json::to_value(map).map_err(|e| DbError::Config(e.to_string()))?;
        client
            .execute(
                "INSERT INTO crmsync.settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE settings.value <> EXCLUDED.value",
                &[&PIPELINE_SETTING, &value],
            )
            .await?;
        Ok(())
    }

    /// Writes back what HubSpot accepted and completes the queue rows, in one transaction: hubspot ids,
    /// hubspot_sync_status 'synced', last_hubspot_sync, the new property hashes, the echo ledger, and
    /// sync_queue rows 'completed'. If this never commits (a crash), the rows come back when their lease
    /// expires and the upsert key makes the resend harmless.
    ///
    /// Only rows still in progress under `lease_holder` are completed. An entity with a claimed row that is not
    /// (the lease expired and another run took it over) is not written back either: the taker's result stands.
    /// Entities without rows here (a company brought in for its deals) are written back. Returns the ids of the
    /// rows whose lease was lost.
    pub async fn complete(
        &self,
        synced: &[SyncedEntity],
        item_ids: &[Uuid],
        lease_holder: &str,
    ) -> Result<Vec<Uuid>, DbError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let statement: &str = &format!(
            "SELECT id, entity_type, entity_id, status = '{IN_PROGRESS}' AND locked_by IS NOT DISTINCT FROM $2
                 FROM sync_queue WHERE id = ANY($1) FOR UPDATE"
        );
        let mut lost = Vec::new();
        let mut lost_entities: Vec<(String, Uuid)> = Vec::new();
        for row in transaction.query(statement, &[&item_ids, &lease_holder]).await? {
            if !row.get::<_, bool>(3) {
                lost.push(row.get(0));
                lost_entities.push((row.get(1), row.get(2)));
            }
        }
        let synced: Vec<&SyncedEntity> = synced
            .iter()
            .filter(|s| {
                !lost_entities
                    .iter()
                    .any(|(t, id)| t == s.entity_type.as_str() && *id == s.entity_id)
            })
            .collect();
        for entity_type in EntityType::SYNC_ORDER {
            let of_type: Vec<&SyncedEntity> = synced
                .iter()
                .copied()
                .filter(|s| s.entity_type == entity_type)
                .collect();
            if of_type.is_empty() {
                continue;
            }
            let (table, column) = hubspot_id_column(entity_type);
            let ids: Vec<Uuid> = of_type.iter().map(|s| s.entity_id).collect();
            let hubspot_ids: Vec<&str> = of_type.iter().map(|s| s.hubspot_id.as_str()).collect();
            let settled: Vec<bool> = of_type.iter().map(|s| s.settled).collect();
            // Table and column come from the fixed match above, never from input. A record with part of its write
            // still to do keeps its status (and its last sync time).
            let sql = format!(
                "UPDATE {table} t SET {column} = k.hubspot_id,
                        hubspot_sync_status = CASE WHEN k.settled THEN 'synced' ELSE t.hubspot_sync_status END,
                        last_hubspot_sync = CASE WHEN k.settled THEN now() ELSE t.last_hubspot_sync END
                 FROM UNNEST($1::uuid[], $2::text[], $3::bool[]) AS k (id, hubspot_id, settled)
                 WHERE t.id = k.id AND t.hubspot_sync_status <> 'deleted'"
            );
            let statement: &str = &sql;
            transaction.execute(statement, &[&ids, &hubspot_ids, &settled]).await?;
        }
        write_hashes(&transaction, &synced).await?;
        wake_waiting_deals(&transaction, &synced).await?;
        // Records whose rows complete here with nothing sent (their changes since the last sync were to fields HubSpot
        // does not get, or were undone) are in sync too, when HubSpot has them; the ones sent are synced above.
        let statement: &str = &format!(
            "WITH done AS (
               SELECT id, entity_type, entity_id FROM sync_queue
               WHERE id = ANY($1) AND status = '{IN_PROGRESS}' AND locked_by = $2
             ){confirmed}
             UPDATE sync_queue SET status = $3, completed_at = now(), locked_until = NULL,
                        locked_by = NULL, last_error = NULL
                 WHERE id = ANY($1) AND status = '{IN_PROGRESS}' AND locked_by = $2",
            confirmed = record_status_ctes("done", Some("done"), RecordSyncEvent::ItemConfirmed, |column| format!(
                " AND t.{column} IS NOT NULL"
            )),
        );
        let completed = SyncStatus::Completed.as_str();
        transaction
            .execute(statement, &[&item_ids, &lease_holder, &completed])
            .await?;
        transaction.commit().await?;
        Ok(lost)
    }

    /// Records a failure: 'failed' with the next attempt time, or 'dead' when attempts are spent. A dead row's
    /// record becomes `failed` ([`RecordSyncEvent::ItemDead`]) unless a newer row of it is open. A `retryable`
    /// failure is also counted in crmsync.sync_retry_state, whose first one starts the row's retry window. Only
    /// rows still in progress under `lease_holder` change; returns the ids that did.
    pub async fn fail(
        &self,
        item_ids: &[Uuid],
        error: &str,
        decision: RetryDecision,
        retryable: bool,
        lease_holder: &str,
    ) -> Result<Vec<Uuid>, DbError> {
        let client = self.pool.get().await?;
        let error: String = error.chars().take(2_000).collect();
        // A dead row keeps its next_attempt_at: it is not due again (no delay). Its record is failed in the same
        // statement, so no reader sees one without the other.
        let sql = format!(
            "WITH failed AS (
               UPDATE sync_queue SET status = $2, attempts = $3, last_error = $4,
                      next_attempt_at = coalesce(now() + make_interval(secs => $5), next_attempt_at),
                      locked_until = NULL, locked_by = NULL
               WHERE id = ANY($1) AND status = '{IN_PROGRESS}' AND locked_by = $6
               RETURNING id, entity_type, entity_id, status
             ),
             retry_state AS (
               INSERT INTO crmsync.sync_retry_state (sync_queue_id, retryable_failures)
               SELECT id, 1 FROM failed WHERE $7
               ON CONFLICT (sync_queue_id)
               DO UPDATE SET retryable_failures = sync_retry_state.retryable_failures + 1
             ),
             dead AS (SELECT id, entity_type, entity_id FROM failed WHERE status = '{DEAD}'){records}
             SELECT id FROM failed",
            records = record_status_ctes("dead", Some("failed"), RecordSyncEvent::ItemDead, |_| String::new()),
        );
        let status = decision.status().as_str();
        let delay = decision.delay().map(|d| d.as_secs_f64());
        let rows = client
            .query(
                &sql,
                &[
                    &item_ids,
                    &status,
                    &decision.attempts(),
                    &error,
                    &delay,
                    &lease_holder,
                    &retryable,
                ],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Puts rows back without counting an attempt: they wait for something else (a deal for its company), or the
    /// run's time ran out before they were sent (`delay` zero). Only rows still in progress under `lease_holder`
    /// change; returns how many did.
    pub async fn defer(
        &self,
        item_ids: &[Uuid],
        reason: &str,
        delay: Duration,
        lease_holder: &str,
    ) -> Result<u64, DbError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "UPDATE sync_queue SET status = $5, last_error = $2,
                    next_attempt_at = now() + make_interval(secs => $3), locked_until = NULL, locked_by = NULL
             WHERE id = ANY($1) AND status = '{IN_PROGRESS}' AND locked_by = $4"
        );
        client
            .execute(
                &sql,
                &[&item_ids, &reason, &delay.as_secs_f64(), &lease_holder, &PENDING],
            )
            .await
    }

    /// Puts rows back to wait for their company (`(row id, company id)` pairs), like [`PgSyncStore::defer`]. A row
    /// whose company reached HubSpot meanwhile (another run wrote it while this one held the row, after that run's
    /// write-back woke the waiting deals) is due at once instead of after `delay`.
    pub async fn defer_for_companies(
        &self,
        waiting: &[(Uuid, Uuid)],
        delay: Duration,
        lease_holder: &str,
    ) -> Result<u64, DbError> {
        let client = self.pool.get().await?;
        let ids: Vec<Uuid> = waiting.iter().map(|(id, _)| *id).collect();
        let companies: Vec<Uuid> = waiting.iter().map(|(_, company)| *company).collect();
        let statement: &str = &format!(
            "UPDATE sync_queue q SET status = $5,
                        last_error = 'waiting for company ' || k.company_id || ' to reach HubSpot',
                        next_attempt_at = CASE WHEN c.hubspot_company_id IS NULL
                                               THEN now() + make_interval(secs => $3) ELSE now() END,
                        locked_until = NULL, locked_by = NULL
                 FROM UNNEST($1::uuid[], $2::uuid[]) AS k (id, company_id)
                      LEFT JOIN companies c ON c.id = k.company_id
                 WHERE q.id = k.id AND q.status = '{IN_PROGRESS}' AND q.locked_by = $4"
        );
        client
            .execute(
                statement,
                &[&ids, &companies, &delay.as_secs_f64(), &lease_holder, &PENDING],
            )
            .await
    }

    /// Records a new run. First closes runs still 'running' after `abandon_after` (killed, or timed out before
    /// they could record their end): 'failed' with an error saying they were abandoned. (0004's status check has no
    /// 'abandoned'; a run that is in fact still going overwrites this when it finishes.)
    pub async fn start_run(&self, trigger: &str, abandon_after: Duration) -> Result<Uuid, DbError> {
        let client = self.pool.get().await?;
        let abandoned = client
            .execute(
                "UPDATE crmsync.sync_runs
                 SET status = 'failed', finished_at = now(),
                     error = 'abandoned: no end recorded within ' || $1::text || ' s (killed or timed out)'
                 WHERE status = 'running' AND started_at < now() - make_interval(secs => $2)",
                &[&abandon_after.as_secs().to_string(), &abandon_after.as_secs_f64()],
            )
            .await?;
        if abandoned > 0 {
            tracing::warn!(runs = abandoned, "marked sync runs that never finished as abandoned");
        }
        let row = client
            .query_one(
                "INSERT INTO crmsync.sync_runs (trigger) VALUES ($1) RETURNING id",
                &[&trigger],
            )
            .await?;
        Ok(row.get(0))
    }

    pub async fn finish_run(
        &self,
        run_id: Uuid,
        status: &str,
        counts: &Value,
        error: Option<&str>,
    ) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE crmsync.sync_runs SET status = $2, counts = $3, error = $4, finished_at = now() WHERE id = $1",
                &[&run_id, &status, counts, &error],
            )
            .await?;
        Ok(())
    }

    /// Queue counts by status and entity type, the oldest pending row's age, failed and dead rows with their
    /// errors, and the last runs.
    pub async fn status(&self, problems_limit: i64, runs_limit: i64) -> Result<QueueStatus, DbError> {
        let client = self.pool.get().await?;
        let counts = client
            .query(
                "SELECT status, entity_type, count(*) FROM sync_queue GROUP BY status, entity_type ORDER BY 1, 2",
                &[],
            )
            .await?
            .iter()
            .map(|row| Ok((status_from(row.get(0))?, row.get(1), row.get(2))))
            .collect::<Result<_, DbError>>()?;
        let oldest: Option<f64> = client
            .query_one(
                &format!(
                    "SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM sync_queue WHERE status = '{PENDING}'"
                ),
                &[],
            )
            .await?
            .get(0);
        let problems = self
            .problem_items(&client, &[SyncStatus::Failed, SyncStatus::Dead], problems_limit)
            .await?;
        let waiting_count: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM sync_queue WHERE status = '{PENDING}' AND {WAITING}"),
                &[],
            )
            .await?
            .get(0);
        let waiting = client
            .query(
                &format!(
                    "SELECT id, entity_type, entity_id, status, attempts, last_error, next_attempt_at FROM sync_queue
                     WHERE status = '{PENDING}' AND {WAITING} ORDER BY updated_at DESC LIMIT $1"
                ),
                &[&problems_limit],
            )
            .await?
            .iter()
            .map(problem_from_row)
            .collect::<Result<_, _>>()?;
        let last_runs = client
            .query(
                "SELECT jsonb_build_object('id', id, 'trigger', trigger, 'status', status, 'started_at', started_at,
                        'finished_at', finished_at, 'counts', counts, 'error', error)
                 FROM crmsync.sync_runs ORDER BY started_at DESC LIMIT $1",
                &[&runs_limit],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        Ok(QueueStatus {
            counts,
            oldest_pending_age_seconds: oldest,
            problems,
            waiting_count,
            waiting,
            last_runs,
        })
    }

    /// The queue's gauges for the metrics after each run: open rows (pending, failed, in progress), and the age of
    /// the oldest row not yet in HubSpot (pending or failed: dead rows are the DLQ's alarm). One statement over the
    /// partial indexes of open rows.
    pub async fn queue_gauges(&self) -> Result<QueueGauges, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM sync_queue WHERE status IN ({waiting}))
                          + (SELECT count(*) FROM sync_queue WHERE status = '{IN_PROGRESS}'),
                            (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0)
                             FROM sync_queue WHERE status IN ({waiting}))",
                    waiting = waiting()
                ),
                &[],
            )
            .await?;
        Ok(QueueGauges {
            depth: row.get(0),
            oldest_pending_age_seconds: row.get(1),
        })
    }

    async fn problem_items(
        &self,
        client: &impl Db,
        statuses: &[SyncStatus],
        limit: i64,
    ) -> Result<Vec<ProblemItem>, DbError> {
        let rows = client
            .query(
                "SELECT id, entity_type, entity_id, status, attempts, last_error, next_attempt_at FROM sync_queue
                 WHERE status = ANY($1) ORDER BY updated_at DESC LIMIT $2",
                &[&SyncStatus::names(statuses), &limit],
            )
            .await?;
        rows.iter().map(problem_from_row).collect()
    }

    /// Dead rows, newest first.
    pub async fn dead_items(&self, limit: i64) -> Result<Vec<ProblemItem>, DbError> {
        let client = self.pool.get().await?;
        self.problem_items(&client, &[SyncStatus::Dead], limit).await
    }

    /// Re-queues up to `limit` dead rows (oldest first) as pending with their attempts and retry window reset, and
    /// their `failed` records as `pending` ([`RecordSyncEvent::ItemRedriven`]) in the same statement; returns the
    /// rows' ids.
    pub async fn redrive(&self, limit: i64) -> Result<Vec<Uuid>, DbError> {
        let client = self.pool.get().await?;
        let sql = format!(
            "WITH dead AS (
               SELECT id FROM sync_queue WHERE status = '{DEAD}' ORDER BY updated_at LIMIT $1 FOR UPDATE SKIP LOCKED
             ),
             redriven AS (
               UPDATE sync_queue q SET status = $2, attempts = $3, next_attempt_at = now(),
                      last_error = 'redriven: ' || coalesce(q.last_error, '')
               FROM dead WHERE q.id = dead.id RETURNING q.id, q.entity_type, q.entity_id
             ),
             window_reset AS (
               DELETE FROM crmsync.sync_retry_state WHERE sync_queue_id IN (SELECT id FROM redriven)
             ){records}
             SELECT id FROM redriven",
            records = record_status_ctes("redriven", None, RecordSyncEvent::ItemRedriven, |_| String::new()),
        );
        // What a redrive writes: see [`QueueState::redrive`].
        let redriven = QueueState::REDRIVEN;
        let rows = client
            .query(&sql, &[&limit, &redriven.status.as_str(), &redriven.attempts])
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

/// Deals that were waiting for one of these companies are due now, not after their wait.
async fn wake_waiting_deals(client: &impl Db, synced: &[&SyncedEntity]) -> Result<(), DbError> {
    let companies: Vec<Uuid> = synced
        .iter()
        .filter(|s| s.entity_type == EntityType::Company)
        .map(|s| s.entity_id)
        .collect();
    if companies.is_empty() {
        return Ok(());
    }
    let statement: &str = &format!(
        "UPDATE sync_queue SET next_attempt_at = now()
             WHERE entity_type = 'deal' AND status = '{PENDING}' AND next_attempt_at > now()
               AND entity_id IN (SELECT id FROM deals WHERE company_id = ANY($1))"
    );
    client.execute(statement, &[&companies]).await?;
    Ok(())
}

/// Property rows written per statement: bounds the size of one message (and the process's peak memory).
const HASH_ROWS_PER_STATEMENT: usize = 20_000;

async fn write_hashes(client: &impl Db, synced: &[&SyncedEntity]) -> Result<(), DbError> {
    let mut start = 0;
    while start < synced.len() {
        let mut end = start;
        let mut rows = 0;
        while end < synced.len() && (rows == 0 || rows + synced[end].written.len() <= HASH_ROWS_PER_STATEMENT) {
            rows += synced[end].written.len();
            end += 1;
        }
        write_hash_rows(client, &synced[start..end]).await?;
        start = end;
    }
    Ok(())
}

async fn write_hash_rows(client: &impl Db, synced: &[&SyncedEntity]) -> Result<(), DbError> {
    let mut entity_types = Vec::new();
    let mut entity_ids = Vec::new();
    let mut properties = Vec::new();
    let mut hashes = Vec::new();
    let mut object_types = Vec::new();
    let mut hubspot_ids = Vec::new();
    for entity in synced {
        for (property, value) in &entity.written {
            entity_types.push(entity.entity_type.as_str());
            entity_ids.push(entity.entity_id);
            properties.push(property.as_str());
            hashes.push(value_hash(value));
            object_types.push(entity.object_type);
            hubspot_ids.push(entity.hubspot_id.as_str());
        }
    }
    if properties.is_empty() {
        return Ok(());
    }
    let statement: &str = "WITH k AS (
               SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])
                 AS k (entity_type, entity_id, property, value_hash, object_type, hubspot_id)
             ), hashes AS (
               INSERT INTO crmsync.property_hashes (entity_type, entity_id, property, value_hash)
               SELECT entity_type, entity_id, property, value_hash FROM k
               ON CONFLICT (entity_type, entity_id, property)
               DO UPDATE SET value_hash = EXCLUDED.value_hash, synced_at = now()
             )
             INSERT INTO crmsync.echo_ledger (object_type, hubspot_id, entity_id, property, value_hash)
             SELECT object_type, hubspot_id, entity_id, property, value_hash FROM k
             WHERE property NOT LIKE 'assoc:%'";
    client
        .execute(
            statement,
            &[
                &entity_types,
                &entity_ids,
                &properties,
                &hashes,
                &object_types,
                &hubspot_ids,
            ],
        )
        .await?;
    Ok(())
}
