//! Merge events: the local records of the merged ids become one, linked to the id that survives; the others are
//! retired with their children moved over.

use crmsync_db::hubspot_records as records;
use crmsync_db::{Db, DbError};
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::webhook::{ObjectKind, WebhookEvent};

use crate::event::Outcome;

/// Keeps the survivor's local record (else the first replaced one), retires the others, and has the next sync send
/// every property of the kept record again.
pub(crate) async fn merge(client: &impl Db, event: &WebhookEvent, kind: ObjectKind) -> Result<Outcome, DbError> {
    let Some((survivor, replaced)) = event.merge_ids() else {
        return Ok(Outcome::Skipped("unknown_type"));
    };
    let survivor_local = records::find_local(client, kind, &survivor).await?;
    let mut replaced_locals = Vec::new();
    for id in &replaced {
        if let Some(local) = records::find_local(client, kind, id).await? {
            replaced_locals.push(local);
        }
    }
    let (keeper, others) = match survivor_local {
        Some(keeper) => (keeper, replaced_locals),
        None if replaced_locals.is_empty() => return Ok(Outcome::Skipped("not_local")),
        None => {
            let keeper = replaced_locals.remove(0);
            (keeper, replaced_locals)
        }
    };
    for other in &others {
        records::retire_merged(client, kind, other.id, keeper.id).await?;
    }
    records::set_hubspot_id(client, kind, keeper.id, &survivor).await?;
    if keeper.hubspot_sync_status == HubSpotSyncStatus::Deleted {
        records::set_deleted(client, kind, keeper.id, false).await?;
    }
    // The merged record's values may differ from ours: send every property again on the next sync.
    records::forget_property_hash(client, kind, keeper.id, None).await?;
    records::enqueue_update(client, kind, keeper.id).await?;
    Ok(Outcome::Applied("merged"))
}
