//! What the sync could not settle on its own, for the dashboard API: the records whose sync failed (their
//! `hubspot_sync_status` is `failed`, with their dead sync_queue row's error) and the values it dropped
//! (crmsync.sync_conflicts). Read-only; every function takes `&impl Db`.

use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::sync::EntityType;
use tokio_postgres::Row;
use uuid::Uuid;

pub use crmsync_domain::crm::{FailedRecord, SyncConflict};

use crate::crm::Conditions;
use crate::{Db, DbError};

/// The record's name by its entity type, for a row `alias` with `entity_type` and `entity_id`: a company's or deal's
/// name, a contact's full name, an activity's subject; NULL when the record is gone.
fn record_name(alias: &str) -> String {
    format!(
        "CASE {alias}.entity_type
           WHEN 'company' THEN (SELECT name FROM companies WHERE id = {alias}.entity_id)
           WHEN 'contact' THEN (SELECT full_name FROM contacts WHERE id = {alias}.entity_id)
           WHEN 'deal' THEN (SELECT deal_name FROM deals WHERE id = {alias}.entity_id)
           WHEN 'activity' THEN (SELECT subject FROM activities WHERE id = {alias}.entity_id)
         END"
    )
}

/// How many records are `failed`, and the `limit` that failed last (newest first), each with its newest dead
/// sync_queue row's error. Starts from the dead rows (`sync_queue_status_idx`), few while operators redrive them,
/// rather than from the record tables, which have no index on their status.
pub async fn failed_records(client: &impl Db, limit: i64) -> Result<(i64, Vec<FailedRecord>), DbError> {
    let failed = HubSpotSyncStatus::Failed.as_str();
    let statement: &str = &format!(
        "WITH dead AS (
           SELECT DISTINCT ON (entity_type, entity_id) entity_type, entity_id, last_error, attempts, updated_at
           FROM sync_queue WHERE status = 'dead'
           ORDER BY entity_type, entity_id, updated_at DESC
         ),
         failed AS (
           SELECT d.entity_type, d.entity_id, coalesce(c.name, ct.full_name, dl.deal_name, a.subject) AS name,
                  d.last_error, d.attempts, d.updated_at
           FROM dead d
           LEFT JOIN companies c ON d.entity_type = 'company' AND c.id = d.entity_id
                AND c.hubspot_sync_status = '{failed}'
           LEFT JOIN contacts ct ON d.entity_type = 'contact' AND ct.id = d.entity_id
                AND ct.hubspot_sync_status = '{failed}'
           LEFT JOIN deals dl ON d.entity_type = 'deal' AND dl.id = d.entity_id
                AND dl.hubspot_sync_status = '{failed}'
           LEFT JOIN activities a ON d.entity_type = 'activity' AND a.id = d.entity_id
                AND a.hubspot_sync_status = '{failed}'
           WHERE num_nonnulls(c.id, ct.id, dl.id, a.id) = 1
         )
         SELECT entity_type, entity_id, name, last_error, attempts, updated_at, count(*) OVER ()
         FROM failed ORDER BY updated_at DESC, entity_id LIMIT $1"
    );
    let rows = client.query(statement, &[&limit]).await?;
    let count = rows.first().map_or(0, |row| row.get(6));
    let records = rows
        .iter()
        .map(|row| FailedRecord {
            entity_type: row.get(0),
            entity_id: row.get(1),
            entity_name: row.get(2),
            error: row.get(3),
            attempts: row.get(4),
            failed_at: row.get(5),
        })
        .collect();
    Ok((count, records))
}

/// Which conflicts to list. Absent filters match everything.
#[derive(Debug, Clone, Default)]
pub struct ConflictFilter {
    pub entity_type: Option<EntityType>,
    pub entity_id: Option<Uuid>,
}

fn conflict(row: &Row) -> SyncConflict {
    SyncConflict {
        id: row.get(0),
        entity_type: row.get(1),
        entity_id: row.get(2),
        entity_name: row.get(3),
        hubspot_id: row.get(4),
        property: row.get(5),
        local_value: row.get(6),
        hubspot_value: row.get(7),
        winner: row.get(8),
        policy: row.get(9),
        local_changed_at: row.get(10),
        hubspot_changed_at: row.get(11),
        recorded_at: row.get(12),
    }
}

/// Conflicts matching `filter`, newest first (by id, the order they were recorded), with ids below `before` when
/// given, at most `limit`. Keyset pagination over the primary key; a record's conflicts come from
/// `sync_conflicts_entity_idx` (an id without a type is looked up under each of the four types).
pub async fn list_conflicts(
    client: &impl Db,
    filter: &ConflictFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<SyncConflict>, DbError> {
    let entity_types: Vec<&str> = match filter.entity_type {
        Some(entity_type) => vec![entity_type.as_str()],
        None => EntityType::SYNC_ORDER.iter().map(|t| t.as_str()).collect(),
    };
    let mut conditions = Conditions::default();
    match (&filter.entity_type, &filter.entity_id) {
        (_, Some(entity_id)) => conditions.push(
            "s.entity_type = ANY($) AND s.entity_id = $",
            &[&entity_types, entity_id],
        ),
        (Some(_), None) => conditions.push("s.entity_type = ANY($)", &[&entity_types]),
        (None, None) => {}
    }
    if let Some(before) = &before {
        conditions.push("s.id < $", &[before]);
    }
    let limit_placeholder = conditions.placeholder_for(&limit);
    let sql = format!(
        "SELECT s.id, s.entity_type, s.entity_id, {name}, s.hubspot_id, s.property, s.local_value, s.hubspot_value,
                s.winner, s.rule, s.local_changed_at, s.hubspot_changed_at, s.created_at
         FROM crmsync.sync_conflicts s {where_sql} ORDER BY s.id DESC LIMIT {limit_placeholder}",
        name = record_name("s"),
        where_sql = conditions.where_sql(),
    );
    let statement: &str = &sql;
    let rows = client.query(statement, &conditions.params).await?;
    Ok(rows.iter().map(conflict).collect())
}
