//! Association change events between a deal or contact and a company: the local record's company follows HubSpot's
//! primary association.

use crmsync_db::hubspot_records as records;
use crmsync_db::{Db, DbError};
use crmsync_domain::sync::{COMPANY_ASSOCIATION, value_hash};
use crmsync_domain::webhook::{ObjectKind, WebhookEvent};

use crate::event::Outcome;

/// Links or unlinks the child's company; an extra, unlabeled company leaves the primary one in place.
pub(crate) async fn association(client: &impl Db, event: &WebhookEvent) -> Result<Outcome, DbError> {
    let Some(link) = event.company_link() else {
        return Ok(Outcome::Skipped("unmapped_association"));
    };
    let child = records::find_local(client, link.child, &link.child_id).await?;
    let company = records::find_local(client, ObjectKind::Company, &link.company_id).await?;
    if link.removed {
        let (Some(child), Some(company)) = (child, company) else {
            return Ok(Outcome::Skipped("not_local"));
        };
        if records::company_of(client, link.child, child.id).await? != Some(company.id) {
            return Ok(Outcome::Applied("unchanged"));
        }
        records::set_company(client, link.child, child.id, None).await?;
        if link.child == ObjectKind::Deal {
            records::forget_property_hash(client, ObjectKind::Deal, child.id, Some(COMPANY_ASSOCIATION)).await?;
        }
        return Ok(Outcome::Applied("unlinked"));
    }
    let (Some(child), Some(company)) = (child, company) else {
        return Ok(Outcome::Wait(format!(
            "{} {} or company {} is not in the local CRM yet",
            link.child.singular(),
            link.child_id,
            link.company_id
        )));
    };
    let current = records::company_of(client, link.child, child.id).await?;
    if current == Some(company.id) {
        return Ok(Outcome::Applied("unchanged"));
    }
    if current.is_some() && !link.primary {
        // An extra, unlabeled company: the local record keeps its primary one.
        return Ok(Outcome::Skipped("not_primary"));
    }
    records::set_company(client, link.child, child.id, Some(company.id)).await?;
    if link.child == ObjectKind::Deal {
        records::set_property_hash(
            client,
            ObjectKind::Deal,
            child.id,
            COMPANY_ASSOCIATION,
            &value_hash(&link.company_id),
        )
        .await?;
    }
    Ok(Outcome::Applied("linked"))
}
