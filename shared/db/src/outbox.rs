//! The one way rows enter `sync_queue`, the outbox the outbound sync drains: a batch insert that joins the caller's
//! transaction, with the dedupe rule named by the caller.

use crate::Db;
use crmsync_domain::sync::EntityType;
use serde_json::Value;
use uuid::Uuid;

use crate::DbError;

/// One change HubSpot must hear about.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedChange {
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    /// create, update or delete (sync_queue_operation_check).
    pub operation: &'static str,
    /// What the change was about; `{}` when nothing needs saying.
    pub payload: Value,
}

/// Whether a change is queued when its record already has one waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedupe {
    /// Always insert a row: every change is its own event (a user's write through the API, a match ingested). The
    /// drain coalesces rows per entity, so a second row costs no second HubSpot write.
    EveryChange,
    /// Insert only when the record has no open row (`pending` or `failed`): the change just says "send this record
    /// again", which an open row does already (the webhook applier's re-asserts, restores and merges).
    UnlessOpen,
}

/// Queues `changes` as `pending` sync_queue rows in one statement, inside the caller's transaction, and returns the
/// ids of the rows inserted (with [`Dedupe::UnlessOpen`], fewer than `changes` when some were open already). Within
/// one call, [`Dedupe::UnlessOpen`] only looks at rows that existed before it.
pub async fn enqueue(client: &impl Db, changes: &[QueuedChange], dedupe: Dedupe) -> Result<Vec<Uuid>, DbError> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let entity_types: Vec<&str> = changes.iter().map(|c| c.entity_type.as_str()).collect();
    let entity_ids: Vec<Uuid> = changes.iter().map(|c| c.entity_id).collect();
    let operations: Vec<&str> = changes.iter().map(|c| c.operation).collect();
    let payloads: Vec<&Value> = changes.iter().map(|c| &c.payload).collect();
    // One statement text per rule, so each gets its own plan (a boolean parameter would leave the planner both).
    let statement: &str = match dedupe {
        Dedupe::EveryChange => concat!(
            "INSERT INTO public.sync_queue (entity_type, entity_id, operation, payload) ",
            "SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::jsonb[]) RETURNING id"
        ),
        Dedupe::UnlessOpen => concat!(
            "INSERT INTO public.sync_queue (entity_type, entity_id, operation, payload) ",
            "SELECT k.entity_type, k.entity_id, k.operation, k.payload ",
            "FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::jsonb[]) ",
            "AS k (entity_type, entity_id, operation, payload) ",
            "WHERE NOT EXISTS (SELECT 1 FROM public.sync_queue q WHERE q.entity_type = k.entity_type ",
            "AND q.entity_id = k.entity_id AND q.status IN ('pending', 'failed')) RETURNING id"
        ),
    };
    let rows = client
        .query(statement, &[&entity_types, &entity_ids, &operations, &payloads])
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
