//! `object.creation` and `object.restore` of an engagement: logged in HubSpot (or back from its recycle bin) on a
//! record we hold, it becomes (again) an activity.

use crmsync_db::{Db, DbError};
use crmsync_domain::engagement::EngagementKind;

use crate::event::{Outcome, PassContext};

pub(crate) async fn creation(
    client: &impl Db,
    kind: EngagementKind,
    hubspot_id: &str,
    context: &PassContext<'_>,
) -> Result<Outcome, DbError> {
    super::bring_home(client, kind, hubspot_id, context).await
}
