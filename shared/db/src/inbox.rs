//! The webhook inbox table (`crmsync.webhook_inbox`): storing a delivery (one statement, deduplicated on HubSpot's
//! key), finding and locking due events, and closing, postponing or giving up each one. The CRM writes that apply
//! an event live in [`crate::hubspot_records`].
//!
//! The row functions take `&impl Db` so the applier closes its events in the transaction that applied
//! them; [`PgInboxStore`] is the pool-level side.

use crate::{Db, Pool};
use chrono::{DateTime, Utc};
use crmsync_domain::webhook::InboxStatus;
use serde_json::Value;
use uuid::Uuid;

use crate::DbError;

/// One event to store.
#[derive(Debug, Clone)]
pub struct NewInboxEvent<'a> {
    pub portal_id: i64,
    pub subscription_id: i64,
    pub event_id: i64,
    pub occurred_at: i64,
    pub event_type: &'a str,
    pub object_type: Option<&'a str>,
    pub object_id: Option<&'a str>,
    /// The event's JSON as HubSpot sent it.
    pub payload: &'a Value,
}

/// A stored event, claimed for applying.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub id: Uuid,
    pub payload: Value,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// The statuses of rows still to apply ([`InboxStatus::Pending`] and [`InboxStatus::Retry`]). Queries that must use
/// the partial index webhook_inbox_due_idx spell them out as literals instead, since the planner matches an index
/// predicate only against constants.
const OPEN: [&str; 2] = [InboxStatus::Pending.as_str(), InboxStatus::Retry.as_str()];

/// Counts of inbox rows by status and outcome, for tests and `status`.
pub type InboxCounts = Vec<(String, Option<String>, i64)>;

/// The pool-level side of the inbox.
#[derive(Clone, Debug)]
pub struct PgInboxStore {
    pool: Pool,
}

impl PgInboxStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Stores a delivery's events in one statement. Events already stored (same portal, subscription, event id
    /// and occurredAt) are skipped, so a re-delivery stores nothing. Returns the ids of the rows it stored.
    pub async fn insert_batch(&self, events: &[NewInboxEvent<'_>]) -> Result<Vec<Uuid>, DbError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await?;
        let statement: &str = "INSERT INTO crmsync.webhook_inbox
                   (portal_id, subscription_id, event_id, occurred_at, event_type, object_type, object_id, payload)
                 SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::text[],
                                      $7::text[], $8::jsonb[])
                 ON CONFLICT (portal_id, subscription_id, event_id, occurred_at) DO NOTHING
                 RETURNING id";
        let column = |f: fn(&NewInboxEvent<'_>) -> i64| events.iter().map(f).collect::<Vec<i64>>();
        let (portals, subscriptions, event_ids, occurred) = (
            column(|e| e.portal_id),
            column(|e| e.subscription_id),
            column(|e| e.event_id),
            column(|e| e.occurred_at),
        );
        let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
        let object_types: Vec<Option<&str>> = events.iter().map(|e| e.object_type).collect();
        let object_ids: Vec<Option<&str>> = events.iter().map(|e| e.object_id).collect();
        let payloads: Vec<&Value> = events.iter().map(|e| e.payload).collect();
        let rows = client
            .query(
                statement,
                &[
                    &portals,
                    &subscriptions,
                    &event_ids,
                    &occurred,
                    &types,
                    &object_types,
                    &object_ids,
                    &payloads,
                ],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Ids of rows due for applying (pending, or waiting for a retry whose time has come), oldest
    /// `occurredAt` first.
    pub async fn due(&self, limit: i64) -> Result<Vec<Uuid>, DbError> {
        let client = self.pool.get().await?;
        let statement: &str = "SELECT id FROM crmsync.webhook_inbox
                 WHERE status IN ('pending', 'retry') AND next_attempt_at <= now()
                 ORDER BY occurred_at, event_id LIMIT $1";
        let rows = client.query(statement, &[&limit]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Like [`PgInboxStore::due`], with the payloads, but only the rows of one lane out of `lanes`: the events of
    /// one record (object type and id) are always in the same lane, so passes over different lanes apply them in
    /// occurredAt order while they run at the same time.
    pub async fn due_in_lane(&self, limit: i64, lane: i32, lanes: i32) -> Result<Vec<(Uuid, Value)>, DbError> {
        let client = self.pool.get().await?;
        let statement: &str = "SELECT id, payload FROM crmsync.webhook_inbox
                 WHERE status IN ('pending', 'retry') AND next_attempt_at <= now()
                   AND (hashtext(coalesce(object_type, '') || ':' || coalesce(object_id, id::text)) & 2147483647)
                       % $3 = $2
                 ORDER BY occurred_at, event_id LIMIT $1";
        let rows = client.query(statement, &[&limit, &lane, &lanes]).await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// The payloads of open rows (pending or retry), without locking: what the applier reads before it calls
    /// HubSpot for records created there.
    pub async fn open_payloads(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, Value)>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, payload FROM crmsync.webhook_inbox WHERE id = ANY($1) AND status = ANY($2)",
                &[&ids, &OPEN.as_slice()],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Rows by status and outcome.
    pub async fn counts(&self) -> Result<InboxCounts, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT status, outcome, count(*) FROM crmsync.webhook_inbox GROUP BY 1, 2 ORDER BY 1, 2",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect())
    }
}

/// Locks one open row for applying; `None` when it is applied already or another applier holds it.
pub async fn lock_open(client: &impl Db, id: Uuid) -> Result<Option<InboxRow>, DbError> {
    let statement: &str = "SELECT id, payload, attempts FROM crmsync.webhook_inbox
             WHERE id = $1 AND status = ANY($2) FOR UPDATE SKIP LOCKED";
    Ok(client
        .query_opt(statement, &[&id, &OPEN.as_slice()])
        .await?
        .map(|row| InboxRow {
            id: row.get(0),
            payload: row.get(1),
            attempts: row.get(2),
        }))
}

/// Locks the open rows among `ids` (pending or retry) for applying, skipping rows another applier holds.
/// Returns each locked row's attempts so far.
pub async fn lock_open_many(client: &impl Db, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, i32>, DbError> {
    let statement: &str = "SELECT id, attempts FROM crmsync.webhook_inbox
             WHERE id = ANY($1) AND status = ANY($2) FOR UPDATE SKIP LOCKED";
    Ok(client
        .query(statement, &[&ids, &OPEN.as_slice()])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// Closes rows in one statement: (id, [`InboxStatus::Applied`] or [`InboxStatus::Skipped`], outcome).
pub async fn finish_many(client: &impl Db, rows: &[(Uuid, InboxStatus, &str)]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let outcomes: Vec<&str> = rows.iter().map(|r| r.2).collect();
    let statement: &str = "UPDATE crmsync.webhook_inbox i
             SET status = k.status, outcome = k.outcome, processed_at = now(), last_error = NULL
             FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS k (id, status, outcome)
             WHERE i.id = k.id";
    client.execute(statement, &[&ids, &statuses, &outcomes]).await?;
    Ok(())
}

/// Closes a row: [`InboxStatus::Applied`] or [`InboxStatus::Skipped`], with the outcome that says why.
pub async fn finish(client: &impl Db, id: Uuid, status: InboxStatus, outcome: &str) -> Result<(), DbError> {
    let statement: &str =
        "UPDATE crmsync.webhook_inbox SET status = $2, outcome = $3, processed_at = now(), last_error = NULL
             WHERE id = $1";
    client.execute(statement, &[&id, &status.as_str(), &outcome]).await?;
    Ok(())
}

/// Leaves a row for a later attempt (`retry`, due after `delay_seconds`), or gives it up (`dead`).
pub async fn postpone(
    client: &impl Db,
    id: Uuid,
    attempts: i32,
    delay_seconds: Option<f64>,
    reason: &str,
) -> Result<(), DbError> {
    let statement: &str = "UPDATE crmsync.webhook_inbox
             SET status = $5, attempts = $2,
                 next_attempt_at = now() + make_interval(secs => coalesce($3::float8, 0)), last_error = $4,
                 outcome = 'waiting', processed_at = CASE WHEN $3::float8 IS NULL THEN now() END
             WHERE id = $1";
    let status = match delay_seconds {
        Some(_) => InboxStatus::Retry,
        None => InboxStatus::Dead,
    };
    client
        .execute(statement, &[&id, &attempts, &delay_seconds, &reason, &status.as_str()])
        .await?;
    Ok(())
}

/// Gives a row up now (`dead`), with the outcome that names the error and the reason in `last_error`: an event that
/// no retry can apply (a deal stage that is not in the pipeline map). `attempts` counts this one.
pub async fn give_up(client: &impl Db, id: Uuid, attempts: i32, outcome: &str, reason: &str) -> Result<(), DbError> {
    let statement: &str = "UPDATE crmsync.webhook_inbox
             SET status = $5, attempts = $2, outcome = $3, last_error = $4, processed_at = now()
             WHERE id = $1";
    let dead = InboxStatus::Dead.as_str();
    client
        .execute(statement, &[&id, &attempts, &outcome, &reason, &dead])
        .await?;
    Ok(())
}

/// Holds creation events whose record is created locally while our id is written back to HubSpot: the rows are
/// `retry` (outcome `created`) and come due again after `delay_seconds` unless [`finish_many`] closes them once
/// the write-back succeeded. So a process that dies between the commit and the write-back leaves the write-back to
/// the re-apply pass instead of losing it.
pub async fn hold_for_write_back(client: &impl Db, ids: &[Uuid], delay_seconds: f64) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let statement: &str = "UPDATE crmsync.webhook_inbox
             SET status = $3, outcome = 'created', next_attempt_at = now() + make_interval(secs => $2),
                 last_error = 'created locally; writing crmsync_id to HubSpot'
             WHERE id = ANY($1)";
    let retry = InboxStatus::Retry.as_str();
    client.execute(statement, &[&ids, &delay_seconds, &retry]).await?;
    Ok(())
}

/// The status of each of `ids` that exists (a status this version does not know is left out).
pub async fn statuses(client: &impl Db, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, InboxStatus>, DbError> {
    let statement: &str = "SELECT id, status FROM crmsync.webhook_inbox WHERE id = ANY($1)";
    Ok(client
        .query(statement, &[&ids])
        .await?
        .iter()
        .filter_map(|row| Some((row.get(0), InboxStatus::parse(row.get(1))?)))
        .collect())
}

/// How many inbox rows are open or given up, for `status` and sync health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct InboxStatusCounts {
    /// Stored and not applied yet (a handler cut off by its deadline, or a busy background applier).
    pub pending: i64,
    /// Waiting for a later attempt (a deal whose company is not local yet).
    pub retry: i64,
    /// Given up: attempts spent, refused by the database, or an error such as an unknown deal stage. These need an
    /// operator (their `last_error` says why).
    pub dead: i64,
    /// When the oldest open (pending or retry) row was received.
    pub oldest_open_received_at: Option<DateTime<Utc>>,
}

/// Counts inbox rows by open status and dead, in one statement. Applied and skipped rows are not counted (the
/// inbox keeps them; counting them would scan it whole).
pub async fn status_counts(client: &impl Db) -> Result<InboxStatusCounts, DbError> {
    let statement: &str = "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'retry'),
                    count(*) FILTER (WHERE status = 'dead'),
                    min(received_at) FILTER (WHERE status IN ('pending', 'retry'))
             FROM crmsync.webhook_inbox WHERE status IN ('pending', 'retry', 'dead')";
    let row = client.query_one(statement, &[]).await?;
    Ok(InboxStatusCounts {
        pending: row.get(0),
        retry: row.get(1),
        dead: row.get(2),
        oldest_open_received_at: row.get(3),
    })
}
