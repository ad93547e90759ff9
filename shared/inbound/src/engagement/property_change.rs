//! `object.propertyChange` of an engagement: an edit in HubSpot (its text, time, status, owner). The engagement's
//! current state is applied whatever property the event names, so events applied out of order end in HubSpot's
//! latest state; an engagement whose creation event never came is created here.

use crmsync_db::{Db, DbError};
use crmsync_domain::engagement::EngagementKind;

use crate::event::{Outcome, PassContext};

pub(crate) async fn property_change(
    client: &impl Db,
    kind: EngagementKind,
    hubspot_id: &str,
    context: &PassContext<'_>,
) -> Result<Outcome, DbError> {
    super::bring_home(client, kind, hubspot_id, context).await
}
