//! What reconciliation and the first import keep in PostgreSQL: their state in `crmsync.settings` (the
//! reconciliation watermarks, the import checkpoint) and the look-ups that say what the local CRM holds of the
//! HubSpot records they read. The events they make go through [`crate::inbox`] like deliveries.

use std::collections::HashMap;

use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::reconcile::Watermarks;
use crmsync_domain::webhook::ObjectKind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Db, DbError};

/// The settings key of reconciliation's watermarks.
pub const WATERMARK_SETTING: &str = "reconcile_watermark";

/// A setting's value, read as `T`; `None` when unset. A value that is not a `T` is an error naming the key.
pub async fn setting<T: DeserializeOwned>(client: &impl Db, key: &str) -> Result<Option<T>, DbError> {
    let Some(row) = client
        .query_opt("SELECT value FROM crmsync.settings WHERE key = $1", &[&key])
        .await?
    else {
        return Ok(None);
    };
    let value: Value = row.get(0);
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| DbError::Config(format!("crmsync.settings {key:?} is not readable: {e}")))
}

/// Stores a setting (insert or replace).
pub async fn save_setting<T: Serialize>(client: &impl Db, key: &str, value: &T) -> Result<(), DbError> {
    let value = serde_json::to_value(value).map_err(|e| DbError::Config(e.to_string()))?;
    client
        .execute(
            "INSERT INTO crmsync.settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &value],
        )
        .await?;
    Ok(())
}

/// Removes a setting (nothing when unset).
pub async fn delete_setting(client: &impl Db, key: &str) -> Result<(), DbError> {
    client
        .execute("DELETE FROM crmsync.settings WHERE key = $1", &[&key])
        .await?;
    Ok(())
}

/// Reconciliation's watermarks; empty before the first run.
pub async fn watermarks(client: &impl Db) -> Result<Watermarks, DbError> {
    Ok(setting(client, WATERMARK_SETTING).await?.unwrap_or_default())
}

/// Stores the watermarks, never moving one back: a run that read less (a `--since` window) or finished after
/// another keeps the later time of each object type.
pub async fn advance_watermarks(client: &impl Db, marks: &Watermarks) -> Result<Watermarks, DbError> {
    let mut stored = watermarks(client).await?;
    for kind in ObjectKind::ALL {
        if let Some(at) = marks.get(kind) {
            stored.advance(kind, at);
        }
    }
    if let Some(at) = marks.engagements {
        stored.advance_engagements(at);
    }
    save_setting(client, WATERMARK_SETTING, &stored).await?;
    Ok(stored)
}

/// The local rows linked to `hubspot_ids`: HubSpot id → the row's sync status. Ids no row is linked to are absent.
/// Read without locks: the applier locks what it changes.
pub async fn linked(
    client: &impl Db,
    kind: ObjectKind,
    hubspot_ids: &[String],
) -> Result<HashMap<String, HubSpotSyncStatus>, DbError> {
    if hubspot_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let (table, column) = kind.table();
    let statement: &str = &format!("SELECT {column}, hubspot_sync_status FROM public.{table} WHERE {column} = ANY($1)");
    let mut found = HashMap::new();
    for row in client.query(statement, &[&hubspot_ids]).await? {
        let status: &str = row.get(1);
        let status = HubSpotSyncStatus::parse(status)
            .ok_or_else(|| DbError::Config(format!("{table} has an unknown hubspot_sync_status {status:?}")))?;
        found.insert(row.get(0), status);
    }
    Ok(found)
}

/// The (event id, occurredAt) of each of the inbox rows `ids`: which made events a batch insert stored.
pub async fn inbox_keys(
    client: &impl Db,
    ids: &[uuid::Uuid],
) -> Result<std::collections::HashSet<(i64, i64)>, DbError> {
    Ok(client
        .query(
            "SELECT event_id, occurred_at FROM crmsync.webhook_inbox WHERE id = ANY($1)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// The local ids of the rows linked to `hubspot_ids` (HubSpot id → local id).
pub async fn local_ids(
    client: &impl Db,
    kind: ObjectKind,
    hubspot_ids: &[String],
) -> Result<HashMap<String, uuid::Uuid>, DbError> {
    if hubspot_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let (table, column) = kind.table();
    let statement: &str = &format!("SELECT {column}, id FROM public.{table} WHERE {column} = ANY($1)");
    Ok(client
        .query(statement, &[&hubspot_ids])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}
