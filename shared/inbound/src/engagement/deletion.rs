//! `object.deletion` of an engagement: an activity logged in HubSpot is deleted with it; one of ours is kept and
//! marked `hubspot_sync_status = 'deleted'` (it was logged here; HubSpot's copy is gone).

use crmsync_db::engagements::{self, Removed};
use crmsync_db::{Db, DbError};

use crate::event::Outcome;

pub(crate) async fn deletion(client: &impl Db, hubspot_id: &str) -> Result<Outcome, DbError> {
    Ok(match engagements::remove(client, hubspot_id).await? {
        Removed::Deleted => Outcome::Applied("engagement_deleted"),
        Removed::MarkedDeleted => Outcome::Applied("deleted"),
        Removed::NotLocal => Outcome::Skipped("not_local"),
    })
}
