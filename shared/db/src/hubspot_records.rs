//! The local CRM writes that apply HubSpot's changes (the webhook applier's side of `public` and `crmsync`):
//! finding local records by HubSpot id, per-field change times, the echo ledger look-up, conflicts, records created
//! or merged in HubSpot, and the property-hash bookkeeping that keeps the outbound sync from sending a HubSpot
//! change back.
//!
//! Every function takes `&impl Db` so the applier runs one event in one transaction. Table and column
//! names in dynamic SQL come from fixed lists, never from input.

use crate::Db;
use chrono::{DateTime, Utc};
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::stage::DealStage;
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

/// True when the echo ledger holds this value for this record's property, written within `window_ms` of `at`:
/// the event reports our own write.
pub async fn echo_ledger_matches(
    client: &impl Db,
    kind: ObjectKind,
    hubspot_id: &str,
    property: &str,
    value_hash: &str,
    at: DateTime<Utc>,
    window_ms: i64,
) -> Result<bool, DbError> {
    let statement: &str = "SELECT EXISTS (SELECT 1 FROM crmsync.echo_ledger
               WHERE object_type = $1 AND hubspot_id = $2 AND property = $3 AND value_hash = $4
                 AND written_at BETWEEN $5::timestamptz - make_interval(secs => $6)
                                    AND $5::timestamptz + make_interval(secs => $6))";
    let window_seconds = window_ms as f64 / 1000.0;
    let row = client
        .query_one(
            statement,
            &[
                &kind.object_type(),
                &hubspot_id,
                &property,
                &value_hash,
                &at,
                &window_seconds,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// What a property change needs to know before deciding, in one round trip: whether the echo ledger holds the
/// value (see [`echo_ledger_matches`]) and when `field` last changed, on which side (see [`field_changed_at`]).
#[allow(clippy::too_many_arguments)]
pub async fn echo_and_field_change(
    client: &impl Db,
    kind: ObjectKind,
    hubspot_id: &str,
    property: &str,
    value_hash: &str,
    at: DateTime<Utc>,
    window_ms: i64,
    entity_id: Uuid,
    field: &str,
) -> Result<(bool, Option<(DateTime<Utc>, String)>), DbError> {
    let statement: &str = "SELECT EXISTS (SELECT 1 FROM crmsync.echo_ledger
                      WHERE object_type = $1 AND hubspot_id = $2 AND property = $3 AND value_hash = $4
                        AND written_at BETWEEN $5::timestamptz - make_interval(secs => $6)
                                           AND $5::timestamptz + make_interval(secs => $6)),
                    f.changed_at, f.source
             FROM (SELECT 1) one
             LEFT JOIN crmsync.field_changes f ON f.entity_type = $7 AND f.entity_id = $8 AND f.field = $9";
    let window_seconds = window_ms as f64 / 1000.0;
    let row = client
        .query_one(
            statement,
            &[
                &kind.object_type(),
                &hubspot_id,
                &property,
                &value_hash,
                &at,
                &window_seconds,
                &kind.entity_type().as_str(),
                &entity_id,
                &field,
            ],
        )
        .await?;
    let changed: Option<DateTime<Utc>> = row.get(1);
    Ok((row.get(0), changed.map(|at| (at, row.get(2)))))
}

/// Records an applied HubSpot change in one statement: the field's change time (the event's occurredAt, over
/// the `now()` the column's trigger wrote) and the property's hash as what HubSpot holds, so the outbound sync
/// does not send it back.
#[allow(clippy::too_many_arguments)]
pub async fn record_applied(
    client: &impl Db,
    kind: ObjectKind,
    id: Uuid,
    field: &str,
    at: DateTime<Utc>,
    property: &str,
    value_hash: &str,
) -> Result<(), DbError> {
    let statement: &str = "WITH changed AS (
               INSERT INTO crmsync.field_changes (entity_type, entity_id, field, changed_at, source)
               VALUES ($1, $2, $3, $4, 'hubspot')
               ON CONFLICT (entity_type, entity_id, field)
               DO UPDATE SET changed_at = EXCLUDED.changed_at, source = 'hubspot'
             )
             INSERT INTO crmsync.property_hashes (entity_type, entity_id, property, value_hash)
             VALUES ($1, $2, $5, $6)
             ON CONFLICT (entity_type, entity_id, property) DO UPDATE SET value_hash = EXCLUDED.value_hash,
               synced_at = now()";
    client
        .execute(
            statement,
            &[&kind.entity_type().as_str(), &id, &field, &at, &property, &value_hash],
        )
        .await?;
    Ok(())
}

/// The columns the applier may read and write, per table: the only names allowed into dynamic SQL.
fn checked_column(kind: ObjectKind, column: &str) -> Result<(&'static str, &'static str), DbError> {
    let allowed: &[&'static str] = match kind {
        ObjectKind::Deal => &["owner_id", "description", "priority", "stage"],
        ObjectKind::Company => &["lifecycle_stage", "owner_id", "description", "website", "phone"],
        ObjectKind::Contact => &[
            "first_name",
            "last_name",
            "email",
            "phone",
            "mobile_phone",
            "job_title",
            "lifecycle_stage",
            "owner_id",
        ],
    };
    let column = allowed.iter().find(|c| **c == column).ok_or_else(|| {
        DbError::Config(format!(
            "column {column} of {} is not writable by webhooks",
            kind.table().0
        ))
    })?;
    Ok((kind.table().0, column))
}

/// A column's current value as text.
pub async fn column_text(
    client: &impl Db,
    kind: ObjectKind,
    id: Uuid,
    column: &str,
) -> Result<Option<String>, DbError> {
    let (table, column) = checked_column(kind, column)?;
    let statement: &str = &format!("SELECT {column}::text FROM public.{table} WHERE id = $1");
    Ok(client.query_opt(statement, &[&id]).await?.and_then(|row| row.get(0)))
}

/// Writes a text column (not `stage`: see [`set_deal_stage`]). A contact's full name follows its parts.
pub async fn set_column(
    client: &impl Db,
    kind: ObjectKind,
    id: Uuid,
    column: &str,
    value: Option<&str>,
) -> Result<(), DbError> {
    let (table, column) = checked_column(kind, column)?;
    let statement: &str = &format!("UPDATE public.{table} SET {column} = $2 WHERE id = $1");
    client.execute(statement, &[&id, &value]).await?;
    if kind == ObjectKind::Contact && ["first_name", "last_name", "email"].contains(&column) {
        let statement: &str = "UPDATE public.contacts SET full_name = coalesce(
                     nullif(concat_ws(' ', nullif(btrim(first_name), ''), nullif(btrim(last_name), '')), ''),
                     email, full_name)
                 WHERE id = $1";
        client.execute(statement, &[&id]).await?;
    }
    Ok(())
}

/// A deal's stage and company.
pub async fn deal_stage(client: &impl Db, id: Uuid) -> Result<Option<(String, Option<Uuid>)>, DbError> {
    let statement: &str = "SELECT stage, company_id FROM public.deals WHERE id = $1";
    Ok(client
        .query_opt(statement, &[&id])
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

/// Moves a deal to `stage`. Whether the stage closes the deal is the domain's [`DealStage::is_closed`]: closing
/// sets closed_at to `at` (kept when the deal was already in that closed stage), reopening clears it, as
/// deals_closed_at_check requires. Log the move with [`crate::crm::insert_activity`] and
/// [`crmsync_domain::stage::stage_change_activity`].
pub async fn set_deal_stage(client: &impl Db, id: Uuid, stage: DealStage, at: DateTime<Utc>) -> Result<(), DbError> {
    let statement: &str = "UPDATE public.deals SET stage = $2,
                    closed_at = CASE WHEN $4 THEN CASE WHEN stage = $2 THEN coalesce(closed_at, $3) ELSE $3 END
                                     ELSE NULL END
             WHERE id = $1";
    client
        .execute(statement, &[&id, &stage.as_str(), &at, &stage.is_closed()])
        .await?;
    Ok(())
}

/// The hash of the value last written to HubSpot for a property.
pub async fn property_hash(
    client: &impl Db,
    kind: ObjectKind,
    id: Uuid,
    property: &str,
) -> Result<Option<String>, DbError> {
    let statement: &str =
        "SELECT value_hash FROM crmsync.property_hashes WHERE entity_type = $1 AND entity_id = $2 AND property = $3";
    Ok(client
        .query_opt(statement, &[&kind.entity_type().as_str(), &id, &property])
        .await?
        .map(|row| row.get(0)))
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

/// One override between the two sides.
#[derive(Debug, Clone)]
pub struct Conflict<'a> {
    pub kind: ObjectKind,
    pub entity_id: Uuid,
    pub hubspot_id: &'a str,
    pub property: &'a str,
    pub local_value: Option<String>,
    pub hubspot_value: Option<&'a str>,
    /// `local` or `hubspot`.
    pub winner: &'a str,
    /// `local_owned`, `hubspot_owned` or `newer_wins`.
    pub rule: &'a str,
    pub local_changed_at: Option<DateTime<Utc>>,
    pub hubspot_changed_at: DateTime<Utc>,
    pub inbox_id: Uuid,
}

pub async fn record_conflict(client: &impl Db, conflict: &Conflict<'_>) -> Result<(), DbError> {
    let statement: &str =
        "INSERT INTO crmsync.sync_conflicts (entity_type, entity_id, hubspot_id, property, local_value,
               hubspot_value, winner, rule, local_changed_at, hubspot_changed_at, inbox_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    client
        .execute(
            statement,
            &[
                &conflict.kind.entity_type().as_str(),
                &conflict.entity_id,
                &conflict.hubspot_id,
                &conflict.property,
                &conflict.local_value,
                &conflict.hubspot_value,
                &conflict.winner,
                &conflict.rule,
                &conflict.local_changed_at,
                &conflict.hubspot_changed_at,
                &conflict.inbox_id,
            ],
        )
        .await?;
    Ok(())
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

/// Creates a company linked to its HubSpot id; `None` when one is linked already.
pub async fn insert_company(client: &impl Db, company: &NewCompany) -> Result<Option<Uuid>, DbError> {
    let statement: &str =
        "INSERT INTO public.companies (source, name, website, phone, address, city, state, zip, lifecycle_stage,
               description, owner_id, hubspot_company_id, hubspot_sync_status, last_hubspot_sync)
             VALUES ('hubspot', $1, $2, $3, $4, $5, $6, $7, coalesce($8, 'lead'), $9, $10, $11, $12, now())
             ON CONFLICT (hubspot_company_id) DO NOTHING RETURNING id";
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
    let statement: &str =
        "INSERT INTO public.contacts (source, full_name, first_name, last_name, email, phone, mobile_phone,
               job_title, lifecycle_stage, owner_id, hubspot_contact_id, hubspot_sync_status, last_hubspot_sync)
             VALUES ('hubspot', $1, $2, $3, $4, $5, $6, $7, coalesce($8, 'lead'), $9, $10, $11, now())
             ON CONFLICT DO NOTHING RETURNING id";
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

/// Creates a deal linked to its HubSpot id; `None` when one is linked already.
pub async fn insert_deal(client: &impl Db, deal: &NewDeal) -> Result<Option<Uuid>, DbError> {
    let statement: &str =
        "INSERT INTO public.deals (deal_name, deal_value, expected_close_date, stage, closed_at, description,
               owner_id, hubspot_deal_id, hubspot_sync_status, last_hubspot_sync)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
             ON CONFLICT (hubspot_deal_id) DO NOTHING RETURNING id";
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
