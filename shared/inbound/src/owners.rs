//! HubSpot's owners, cached in `crmsync.hubspot_owners` so the API and dashboard show names and emails instead of
//! bare `hubspot_owner_id`s and offer them as a choice. Refreshed by `crmsync owners refresh`, by every
//! reconciliation (hourly on EventBridge Scheduler and in `serve`), and at `serve`'s start.

use crmsync_app::AppError;
use crmsync_db::Pool;
use crmsync_db::owners::{self, OwnerRow, OwnersRefreshed};
use crmsync_hubspot::HubSpotClient;

/// Reads every owner (live and deactivated, page by page) and replaces the cache in one transaction. An owner HubSpot
/// no longer lists stays cached, marked archived.
pub async fn refresh_owners(pool: &Pool, hubspot: &HubSpotClient) -> Result<OwnersRefreshed, AppError> {
    let owners: Vec<OwnerRow> = hubspot
        .all_owners()
        .await?
        .into_iter()
        .map(|o| OwnerRow {
            id: o.id,
            email: o.email.filter(|e| !e.trim().is_empty()),
            first_name: o.first_name.filter(|n| !n.trim().is_empty()),
            last_name: o.last_name.filter(|n| !n.trim().is_empty()),
            user_id: o.user_id,
            archived: o.archived,
        })
        .collect();
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let refreshed = owners::replace_all(&transaction, &owners).await?;
    transaction.commit().await?;
    tracing::info!(
        owners = refreshed.owners,
        active = refreshed.active,
        gone = refreshed.gone,
        "HubSpot owners refreshed"
    );
    Ok(refreshed)
}
