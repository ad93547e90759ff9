//! `object.associationChange` of an engagement: it was associated with, or removed from, a deal, company or contact.
//! The activity follows the engagement's current associations; one no longer about any local record is removed.

use crmsync_db::{Db, DbError};
use crmsync_domain::engagement::EngagementKind;

use crate::event::{Outcome, PassContext};

pub(crate) async fn association(
    client: &impl Db,
    kind: EngagementKind,
    hubspot_id: &str,
    context: &PassContext<'_>,
) -> Result<Outcome, DbError> {
    super::bring_home(client, kind, hubspot_id, context).await
}
