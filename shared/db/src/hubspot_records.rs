//! The local CRM writes that apply HubSpot's changes one event at a time (the webhook applier's side of `public`
//! and `crmsync`): finding local records by HubSpot id, per-field change times, records created, deleted or merged
//! in HubSpot, and the property-hash bookkeeping that keeps the outbound sync from sending a HubSpot change back.
//! Property changes come in runs: [`crate::property_changes`].
//!
//! Every function takes `&impl Db` so the applier runs one event in one transaction. Table and column
//! names in dynamic SQL come from fixed lists, never from input.

use crate::Db;
use chrono::{DateTime, Utc};
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::webhook::ObjectKind;
use uuid::Uuid;

pub use crmsync_domain::hubspot_records::{NewCompany, NewContact, NewDeal};

use crate::DbError;
use crate::outbox::{self, Dedupe, QueuedChange};

/// A local record found by its HubSpot id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRecord {
    pub id: Uuid,
    pub hubspot_sync_status: HubSpotSyncStatus,
}

/// The local record linked to `hubspot_id`, locked for the transaction (events about one record apply one
/// at a time).
pub async fn find_local(client: &impl Db, kind: ObjectKind, hubspot_id: &str) -> Result<Option<LocalRecord>, DbError> {
    let (table, column) = kind.table();
    let statement: &str = &format!("SELECT id, hubspot_sync_status FROM public.{table} WHERE {column} = $1 FOR UPDATE");
    let Some(row) = client.query_opt(statement, &[&hubspot_id]).await? else {
        return Ok(None);
    };
    let status: &str = row.get(1);
    let hubspot_sync_status = HubSpotSyncStatus::parse(status)
        .ok_or_else(|| DbError::Config(format!("{table} has an unknown hubspot_sync_status {status:?}")))?;
    Ok(Some(LocalRecord {
        id: row.get(0),
        hubspot_sync_status,
    }))
}

/// When `field` of a record last changed, and on which side (`local` or `hubspot`).
pub async fn field_changed_at(
    client: &impl Db,
    kind: ObjectKind,
    id: Uuid,
    field: &str,
) -> Result<Option<(DateTime<Utc>, String)>, DbError> {
    let statement: &str = "SELECT changed_at, source FROM crmsync.field_changes
             WHERE entity_type = $1 AND entity_id = $2 AND field = $3";
    Ok(client
        .query_opt(statement, &[&kind.entity_type().as_str(), &id, &field])
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

/// Records a HubSpot change of `field` at `at` (the event's occurredAt). Runs after the column's UPDATE, whose
/// trigger wrote `now()` as a local change: this overwrites it.
pub async fn record_hubspot_change(
    client: &impl Db,
    kind: ObjectKind,
    id: Uuid,
    field: &str,
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    let statement: &str = "INSERT INTO crmsync.field_changes (entity_type, entity_id, field, changed_at, source)
             VALUES ($1, $2, $3, $4, 'hubspot')
             ON CONFLICT (entity_type, entity_id, field)
             DO UPDATE SET changed_at = EXCLUDED.changed_at, source = 'hubspot'";
    client
        .execute(statement, &[&kind.entity_type().as_str(), &id, &field, &at])
        .await?;
    Ok(())
}

/// Forgets when `field` of a record last changed (a pseudo-field such as `@left_pipeline` that no longer holds).
pub async fn forget_field_change(client: &impl Db, kind: ObjectKind, id: Uuid, field: &str) -> Result<(), DbError> {
    let statement: &str = "DELETE FROM crmsync.field_changes WHERE entity_type = $1 AND entity_id = $2 AND field = $3";
    client
        .execute(statement, &[&kind.entity_type().as_str(), &id, &field])
        .await?;
    Ok(())
}

/// Records that HubSpot holds `value_hash` for a property: the outbound sync then sees nothing to send.
pub async fn set_property_hash(
    client: &impl Db,
    kind: ObjectKind,
    id: Uuid,
    property: &str,
    value_hash: &str,
) -> Result<(), DbError> {
    let statement: &str = "INSERT INTO crmsync.property_hashes (entity_type, entity_id, property, value_hash)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (entity_type, entity_id, property) DO UPDATE SET value_hash = EXCLUDED.value_hash,
               synced_at = now()";
    client
        .execute(statement, &[&kind.entity_type().as_str(), &id, &property, &value_hash])
        .await?;
    Ok(())
}

/// Forgets what was written for a property (all properties when `property` is `None`): the next sync sends it.
pub async fn forget_property_hash(
    client: &impl Db,
    kind: ObjectKind,
    id: Uuid,
    property: Option<&str>,
) -> Result<(), DbError> {
    let statement: &str = "DELETE FROM crmsync.property_hashes
             WHERE entity_type = $1 AND entity_id = $2 AND ($3::text IS NULL OR property = $3)";
    client
        .execute(statement, &[&kind.entity_type().as_str(), &id, &property])
        .await?;
    Ok(())
}

/// Queues an update of the record for the outbound sync, unless one is already open ([`Dedupe::UnlessOpen`]).
/// Returns true when it queued.
pub async fn enqueue_update(client: &impl Db, kind: ObjectKind, id: Uuid) -> Result<bool, DbError> {
    let change = QueuedChange {
        entity_type: kind.entity_type(),
        entity_id: id,
        operation: "update",
        payload: serde_json::json!({}),
    };
    Ok(!outbox::enqueue(client, &[change], Dedupe::UnlessOpen).await?.is_empty())
}

/// Marks a record deleted in HubSpot (it stops syncing) or, with `deleted = false`, restored (synced again).
pub async fn set_deleted(client: &impl Db, kind: ObjectKind, id: Uuid, deleted: bool) -> Result<(), DbError> {
    let (table, _) = kind.table();
    let statement: &str = &format!("UPDATE public.{table} SET hubspot_sync_status = $2 WHERE id = $1");
    let status = if deleted {
        HubSpotSyncStatus::Deleted
    } else {
        HubSpotSyncStatus::Synced
    };
    client.execute(statement, &[&id, &status.as_str()]).await?;
    Ok(())
}

/// Links a record to a HubSpot id (a merge's survivor).
pub async fn set_hubspot_id(client: &impl Db, kind: ObjectKind, id: Uuid, hubspot_id: &str) -> Result<(), DbError> {
    let (table, column) = kind.table();
    let statement: &str = &format!("UPDATE public.{table} SET {column} = $2 WHERE id = $1");
    client.execute(statement, &[&id, &hubspot_id]).await?;
    Ok(())
}

/// Retires a record merged away in HubSpot: its children move to `survivor`, it loses its HubSpot id (the
/// survivor holds it now) and is marked deleted, so it stops syncing.
pub async fn retire_merged(client: &impl Db, kind: ObjectKind, id: Uuid, survivor: Uuid) -> Result<(), DbError> {
    let moves: &[&str] = match kind {
        ObjectKind::Company => &[
            "UPDATE public.deals SET company_id = $2 WHERE company_id = $1",
            "UPDATE public.contacts SET company_id = $2 WHERE company_id = $1",
            "UPDATE public.activities SET company_id = $2 WHERE company_id = $1",
        ],
        ObjectKind::Contact => &["UPDATE public.activities SET contact_id = $2 WHERE contact_id = $1"],
        ObjectKind::Deal => &["UPDATE public.activities SET deal_id = $2 WHERE deal_id = $1"],
    };
    for sql in moves {
        let statement: &str = sql;
        client.execute(statement, &[&id, &survivor]).await?;
    }
    let (table, column) = kind.table();
    let statement: &str = &format!("UPDATE public.{table} SET {column} = NULL, hubspot_sync_status = $2 WHERE id = $1");
    client
        .execute(statement, &[&id, &HubSpotSyncStatus::Deleted.as_str()])
        .await?;
    Ok(())
}

/// A deal's or contact's company.
pub async fn company_of(client: &impl Db, child: ObjectKind, id: Uuid) -> Result<Option<Uuid>, DbError> {
    let (table, _) = child.table();
    let statement: &str = &format!("SELECT company_id FROM public.{table} WHERE id = $1");
    Ok(client.query_opt(statement, &[&id]).await?.and_then(|row| row.get(0)))
}

/// Sets (or clears) a deal's or contact's company.
pub async fn set_company(client: &impl Db, child: ObjectKind, id: Uuid, company: Option<Uuid>) -> Result<(), DbError> {
    let (table, _) = child.table();
    let statement: &str = &format!("UPDATE public.{table} SET company_id = $2 WHERE id = $1");
    client.execute(statement, &[&id, &company]).await?;
    Ok(())
}

/// Creates a company linked to its HubSpot id, with origin HubSpot; `None` when one is linked already.
pub async fn insert_company(client: &impl Db, company: &NewCompany) -> Result<Option<Uuid>, DbError> {
    let statement: &str = "WITH inserted AS (
               INSERT INTO public.companies (source, name, website, phone, address, city, state, zip,
                 lifecycle_stage, description, owner_id, hubspot_company_id, hubspot_sync_status, last_hubspot_sync)
               VALUES ('hubspot', $1, $2, $3, $4, $5, $6, $7, coalesce($8, 'lead'), $9, $10, $11, $12, now())
               ON CONFLICT (hubspot_company_id) DO NOTHING RETURNING id
             ), origin AS (
               INSERT INTO crmsync.record_origins (entity_type, entity_id) SELECT 'company', id FROM inserted
             )
             SELECT id FROM inserted";
    Ok(client
        .query_opt(
            statement,
            &[
                &company.name,
                &company.website,
                &company.phone,
                &company.address,
                &company.city,
                &company.state,
                &company.zip,
                &company.lifecycle_stage,
                &company.description,
                &company.owner_id,
                &company.hubspot_id,
                &HubSpotSyncStatus::Synced.as_str(),
            ],
        )
        .await?
        .map(|row| row.get(0)))
}

/// Creates a contact linked to its HubSpot id, or links the local contact with the same email that has no
/// HubSpot id yet. `None` when one is linked already.
pub async fn insert_contact(client: &impl Db, contact: &NewContact) -> Result<Option<Uuid>, DbError> {
    if let Some(email) = &contact.email {
        let statement: &str = "UPDATE public.contacts SET hubspot_contact_id = $2, hubspot_sync_status = $3,
                        last_hubspot_sync = now()
                 WHERE lower(email) = lower($1) AND hubspot_contact_id IS NULL RETURNING id";
        if let Some(row) = client
            .query_opt(
                statement,
                &[email, &contact.hubspot_id, &HubSpotSyncStatus::Synced.as_str()],
            )
            .await?
        {
            return Ok(Some(row.get(0)));
        }
    }
    let statement: &str = "WITH inserted AS (
               INSERT INTO public.contacts (source, full_name, first_name, last_name, email, phone, mobile_phone,
                 job_title, lifecycle_stage, owner_id, hubspot_contact_id, hubspot_sync_status, last_hubspot_sync)
               VALUES ('hubspot', $1, $2, $3, $4, $5, $6, $7, coalesce($8, 'lead'), $9, $10, $11, now())
               ON CONFLICT DO NOTHING RETURNING id
             ), origin AS (
               INSERT INTO crmsync.record_origins (entity_type, entity_id) SELECT 'contact', id FROM inserted
             )
             SELECT id FROM inserted";
    Ok(client
        .query_opt(
            statement,
            &[
                &contact.full_name,
                &contact.first_name,
                &contact.last_name,
                &contact.email,
                &contact.phone,
                &contact.mobile_phone,
                &contact.job_title,
                &contact.lifecycle_stage,
                &contact.owner_id,
                &contact.hubspot_id,
                &HubSpotSyncStatus::Synced.as_str(),
            ],
        )
        .await?
        .map(|row| row.get(0)))
}

/// Creates a deal linked to its HubSpot id, with origin HubSpot; `None` when one is linked already.
pub async fn insert_deal(client: &impl Db, deal: &NewDeal) -> Result<Option<Uuid>, DbError> {
    let statement: &str = "WITH inserted AS (
               INSERT INTO public.deals (deal_name, deal_value, expected_close_date, stage, closed_at, description,
                 owner_id, hubspot_deal_id, hubspot_sync_status, last_hubspot_sync)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
               ON CONFLICT (hubspot_deal_id) DO NOTHING RETURNING id
             ), origin AS (
               INSERT INTO crmsync.record_origins (entity_type, entity_id) SELECT 'deal', id FROM inserted
             )
             SELECT id FROM inserted";
    Ok(client
        .query_opt(
            statement,
            &[
                &deal.deal_name,
                &deal.deal_value,
                &deal.expected_close_date,
                &deal.stage,
                &deal.closed_at,
                &deal.description,
                &deal.owner_id,
                &deal.hubspot_id,
                &HubSpotSyncStatus::Synced.as_str(),
            ],
        )
        .await?
        .map(|row| row.get(0)))
}
