//! Deletion, privacy deletion and restore events: a record deleted in HubSpot stops syncing, a restored one syncs
//! again (and HubSpot catches up with what changed locally meanwhile).

use crmsync_db::hubspot_records as records;
use crmsync_db::{Db, DbError};
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::webhook::{ObjectKind, WebhookEvent};

use crate::event::{Outcome, millis};

/// Marks the record deleted (`deleted = true`) or restored, unless a later change of its deletion is recorded.
pub(crate) async fn deletion(
    client: &impl Db,
    event: &WebhookEvent,
    kind: ObjectKind,
    hubspot_id: &str,
    deleted: bool,
) -> Result<Outcome, DbError> {
    const FIELD: &str = "@deleted";
    let Some(local) = records::find_local(client, kind, hubspot_id).await? else {
        return Ok(Outcome::Skipped("not_local"));
    };
    if let Some((at, _)) = records::field_changed_at(client, kind, local.id, FIELD).await?
        && at.timestamp_millis() > event.occurred_at
    {
        return Ok(Outcome::Skipped("older_than_local"));
    }
    let occurred = millis(event.occurred_at);
    records::record_hubspot_change(client, kind, local.id, FIELD, occurred).await?;
    if (local.hubspot_sync_status == HubSpotSyncStatus::Deleted) == deleted {
        return Ok(Outcome::Applied("unchanged"));
    }
    records::set_deleted(client, kind, local.id, deleted).await?;
    if deleted {
        Ok(Outcome::Applied("deleted"))
    } else {
        // Back from the recycle bin: catch HubSpot up with anything that changed locally meanwhile.
        records::enqueue_update(client, kind, local.id).await?;
        Ok(Outcome::Applied("restored"))
    }
}
