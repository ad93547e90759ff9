//! Activities logged in HubSpot (engagements): the local deal, company and contact an engagement's associations
//! name, the upsert by HubSpot id (`activities.hubspot_engagement_id`, unique), and what a deletion in HubSpot does.
//! Rows logged here (`logged_in = 'local'`) are never overwritten by an engagement: they are ours, HubSpot got them
//! from the outbound sync.

use crmsync_domain::engagement::EngagementActivity;
use uuid::Uuid;

use crate::{Db, DbError};

/// Where an activity was logged: here (then synced to HubSpot) or in HubSpot.
pub const LOGGED_LOCALLY: &str = "local";
pub const LOGGED_IN_HUBSPOT: &str = "hubspot";

/// The local activity holding an engagement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalActivity {
    pub id: Uuid,
    /// `local` or `hubspot`.
    pub logged_in: String,
}

/// The activity linked to HubSpot engagement `hubspot_id`, locked for the caller's transaction.
pub async fn find_by_engagement(client: &impl Db, hubspot_id: &str) -> Result<Option<LocalActivity>, DbError> {
    let statement: &str = "SELECT id, logged_in FROM public.activities WHERE hubspot_engagement_id = $1 FOR UPDATE";
    Ok(client
        .query_opt(statement, &[&hubspot_id])
        .await?
        .map(|row| LocalActivity {
            id: row.get(0),
            logged_in: row.get(1),
        }))
}

/// Whether an activity with this id exists (an engagement carrying our `crmsync_id`).
pub async fn activity_exists(client: &impl Db, id: Uuid) -> Result<bool, DbError> {
    let statement: &str = "SELECT 1 FROM public.activities WHERE id = $1";
    Ok(client.query_opt(statement, &[&id]).await?.is_some())
}

/// The first local row (not deleted in HubSpot) among records with these HubSpot ids, in the given order: the
/// local deal, company or contact an engagement is about.
async fn first_local(
    client: &impl Db,
    table: &str,
    column: &str,
    hubspot_ids: &[String],
) -> Result<Option<Uuid>, DbError> {
    if hubspot_ids.is_empty() {
        return Ok(None);
    }
    let statement: &str = &format!(
        "SELECT t.id FROM unnest($1::text[]) WITH ORDINALITY AS h(hubspot_id, position)
           JOIN public.{table} t ON t.{column} = h.hubspot_id AND t.hubspot_sync_status <> 'deleted'
         ORDER BY h.position LIMIT 1"
    );
    Ok(client
        .query_opt(statement, &[&hubspot_ids])
        .await?
        .map(|row| row.get(0)))
}

/// The local records an engagement's associations name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalTargets {
    pub deal_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
}

impl LocalTargets {
    pub fn is_empty(&self) -> bool {
        self.deal_id.is_none() && self.company_id.is_none() && self.contact_id.is_none()
    }
}

/// Resolves an engagement's associated HubSpot deals, companies and contacts to local rows (the first known of each).
pub async fn local_targets(
    client: &impl Db,
    deals: &[String],
    companies: &[String],
    contacts: &[String],
) -> Result<LocalTargets, DbError> {
    Ok(LocalTargets {
        deal_id: first_local(client, "deals", "hubspot_deal_id", deals).await?,
        company_id: first_local(client, "companies", "hubspot_company_id", companies).await?,
        contact_id: first_local(client, "contacts", "hubspot_contact_id", contacts).await?,
    })
}

/// How an upsert ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created(Uuid),
    Updated(Uuid),
    /// The row holding this engagement was logged here: left alone.
    Ours(Uuid),
    /// The row holds a newer state of the engagement (by `hs_lastmodifieddate`) than this read: left alone.
    Older(Uuid),
}

/// Creates or updates the activity of HubSpot engagement `hubspot_id` (logged in HubSpot, synced). A missing company
/// is taken from the deal, else from the contact, as for activities logged through the API, so the company's
/// engagement (v_company_engagement) counts it.
pub async fn upsert_from_hubspot(
    client: &impl Db,
    hubspot_id: &str,
    activity: &EngagementActivity,
    targets: LocalTargets,
) -> Result<Upserted, DbError> {
    let statement: &str = "INSERT INTO public.activities AS a (activity_type, subject, body, deal_id, contact_id,
               company_id, occurred_at, direction, status, due_at, duration_seconds, owner_id, created_by,
               hubspot_engagement_id, hubspot_sync_status, last_hubspot_sync, logged_in, hubspot_modified_at)
             VALUES ($1, $2, $3, $4, $5,
               COALESCE($6, (SELECT company_id FROM public.deals WHERE id = $4),
                 (SELECT company_id FROM public.contacts WHERE id = $5)),
               $7, $8, $9, $10, $11, $12, 'hubspot', $13, 'synced', now(), 'hubspot', $14)
             ON CONFLICT (hubspot_engagement_id) DO UPDATE SET
               activity_type = EXCLUDED.activity_type, subject = EXCLUDED.subject, body = EXCLUDED.body,
               deal_id = EXCLUDED.deal_id, contact_id = EXCLUDED.contact_id, company_id = EXCLUDED.company_id,
               occurred_at = EXCLUDED.occurred_at, direction = EXCLUDED.direction, status = EXCLUDED.status,
               due_at = EXCLUDED.due_at, duration_seconds = EXCLUDED.duration_seconds, owner_id = EXCLUDED.owner_id,
               hubspot_sync_status = 'synced', last_hubspot_sync = now(),
               hubspot_modified_at = EXCLUDED.hubspot_modified_at
             WHERE a.logged_in = 'hubspot'
               AND (a.hubspot_modified_at IS NULL OR EXCLUDED.hubspot_modified_at IS NULL
                    OR EXCLUDED.hubspot_modified_at >= a.hubspot_modified_at)
             RETURNING id, (xmax = 0) AS inserted";
    let row = client
        .query_opt(
            statement,
            &[
                &activity.activity_type,
                &activity.subject,
                &activity.body,
                &targets.deal_id,
                &targets.contact_id,
                &targets.company_id,
                &activity.occurred_at,
                &activity.direction,
                &activity.status,
                &activity.due_at,
                &activity.duration_seconds,
                &activity.owner_id,
                &hubspot_id,
                &activity.modified_at,
            ],
        )
        .await?;
    match row {
        Some(row) if row.get::<_, bool>(1) => Ok(Upserted::Created(row.get(0))),
        Some(row) => Ok(Upserted::Updated(row.get(0))),
        None => {
            let held = find_by_engagement(client, hubspot_id)
                .await?
                .ok_or_else(|| DbError::Config(format!("engagement {hubspot_id} vanished during its upsert")))?;
            Ok(if held.logged_in == LOGGED_LOCALLY {
                Upserted::Ours(held.id)
            } else {
                Upserted::Older(held.id)
            })
        }
    }
}

/// Links one of our activities to the engagement the outbound sync made for it (found by its `crmsync_id` before
/// the sync's own write-back): true when the link was made here.
pub async fn link_own(client: &impl Db, activity_id: Uuid, hubspot_id: &str) -> Result<bool, DbError> {
    let statement: &str = "UPDATE public.activities SET hubspot_engagement_id = $2, hubspot_sync_status = 'synced',
               last_hubspot_sync = now()
             WHERE id = $1 AND hubspot_engagement_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM public.activities WHERE hubspot_engagement_id = $2)";
    Ok(client.execute(statement, &[&activity_id, &hubspot_id]).await? > 0)
}

/// How a deletion in HubSpot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// An activity logged in HubSpot: its row is deleted.
    Deleted,
    /// One of ours: kept, marked `hubspot_sync_status = 'deleted'`.
    MarkedDeleted,
    NotLocal,
}

/// Applies the deletion of engagement `hubspot_id` in HubSpot.
pub async fn remove(client: &impl Db, hubspot_id: &str) -> Result<Removed, DbError> {
    let statement: &str = "DELETE FROM public.activities WHERE hubspot_engagement_id = $1 AND logged_in = 'hubspot'";
    if client.execute(statement, &[&hubspot_id]).await? > 0 {
        return Ok(Removed::Deleted);
    }
    let statement: &str = "UPDATE public.activities SET hubspot_sync_status = 'deleted'
             WHERE hubspot_engagement_id = $1 AND hubspot_sync_status <> 'deleted'";
    if client.execute(statement, &[&hubspot_id]).await? > 0 {
        return Ok(Removed::MarkedDeleted);
    }
    Ok(Removed::NotLocal)
}

/// The HubSpot ids among `hubspot_ids` that a local activity holds (for reconciliation's deletions).
pub async fn held(client: &impl Db, hubspot_ids: &[String]) -> Result<Vec<String>, DbError> {
    let statement: &str = "SELECT hubspot_engagement_id FROM public.activities
             WHERE hubspot_engagement_id = ANY($1) AND hubspot_sync_status <> 'deleted'";
    Ok(client
        .query(statement, &[&hubspot_ids])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}
