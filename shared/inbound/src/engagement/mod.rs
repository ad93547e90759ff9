//! Engagements logged in HubSpot (notes, calls, emails, meetings, tasks), arriving as generic `object.*` events with
//! their `objectTypeId`. Creations, property changes, association changes and restores all re-read the engagement
//! (with its associations, before the pass's transaction) and bring its current state home ([`bring_home`]);
//! deletions remove it ([`deletion`]).
//!
//! Our own engagements (the outbound sync's) carry our `crmsync_id` and are never imported twice: an event about one
//! is an echo, or links the activity it came from when the sync's write-back has not happened yet.

mod deletion;

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use crmsync_db::engagements::{self, LOGGED_LOCALLY, Upserted};
use crmsync_db::{Db, DbError};
use crmsync_domain::engagement::{EngagementKind, engagement_activity};
use crmsync_domain::webhook::{EventKind, WebhookEvent};
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use crmsync_hubspot::{HubSpotClient, HubSpotObject, ObjectType};
use uuid::Uuid;

use crate::event::{Outcome, PassContext};

/// An engagement as read from HubSpot: its properties and the HubSpot ids of the deals, companies and contacts it
/// is associated with.
#[derive(Debug, Clone)]
pub(crate) struct EngagementSnapshot {
    pub(crate) object: HubSpotObject,
    pub(crate) deals: Vec<String>,
    pub(crate) companies: Vec<String>,
    pub(crate) contacts: Vec<String>,
}

/// Engagements read for a pass: `Ok(None)` = HubSpot has no such engagement (deleted since).
pub(crate) type FetchedEngagements = HashMap<(EngagementKind, String), Result<Option<EngagementSnapshot>, String>>;

/// The client's object type of an engagement kind.
pub(crate) fn object_type(kind: EngagementKind) -> ObjectType {
    match kind {
        EngagementKind::Note => ObjectType::Notes,
        EngagementKind::Call => ObjectType::Calls,
        EngagementKind::Email => ObjectType::Emails,
        EngagementKind::Meeting => ObjectType::Meetings,
        EngagementKind::Task => ObjectType::Tasks,
    }
}

/// The engagement an event is about: its `objectId`, or for an association change the side that is the engagement.
pub(crate) fn engagement_id(event: &WebhookEvent) -> Option<&str> {
    event.object_id.as_deref().or(match &event.kind {
        EventKind::AssociationChange { from, .. } => Some(from.as_str()),
        _ => None,
    })
}

/// Whether an event about an engagement needs the engagement read from HubSpot.
pub(crate) fn needs_reading(event: &WebhookEvent) -> bool {
    event.engagement.is_some()
        && matches!(
            event.kind,
            EventKind::Creation
                | EventKind::PropertyChange { .. }
                | EventKind::AssociationChange { .. }
                | EventKind::Restore
        )
}

/// Applies one event about an engagement.
pub(crate) async fn engagement_event(
    client: &impl Db,
    event: &WebhookEvent,
    kind: EngagementKind,
    context: &PassContext<'_>,
) -> Result<Outcome, DbError> {
    let Some(id) = engagement_id(event) else {
        return Ok(Outcome::Skipped("no_object_id"));
    };
    match &event.kind {
        // A creation or restore (logged in HubSpot, or back from its recycle bin), an edit (its text, time, status,
        // owner) or an association change: the engagement's current state is applied whatever the event names, so
        // events applied out of order end in HubSpot's latest state, and one whose creation event never came is
        // created; one no longer about any local record is removed.
        EventKind::Creation
        | EventKind::Restore
        | EventKind::PropertyChange { .. }
        | EventKind::AssociationChange { .. } => bring_home(client, kind, id, context).await,
        EventKind::Deletion | EventKind::PrivacyDeletion => deletion::deletion(client, id).await,
        EventKind::Merge { .. } => Ok(Outcome::Skipped("unmapped_engagement_event")),
        EventKind::Unknown => Ok(Outcome::Skipped("unknown_type")),
    }
}

/// Brings an engagement's current state (read before the pass) into `activities`: created or updated by its HubSpot
/// id, with the local deal, company and contact it is associated with. Not ours (logged here) and about at least one
/// local record; an engagement no longer about any local record loses its row.
pub(crate) async fn bring_home(
    client: &impl Db,
    kind: EngagementKind,
    hubspot_id: &str,
    context: &PassContext<'_>,
) -> Result<Outcome, DbError> {
    let snapshot = match context.engagements.get(&(kind, hubspot_id.to_owned())) {
        Some(Ok(Some(snapshot))) => snapshot,
        Some(Ok(None)) => return Ok(Outcome::Skipped("gone_from_hubspot")),
        Some(Err(error)) => return Ok(Outcome::Wait(format!("could not read it from HubSpot: {error}"))),
        None if context.reads_cut => return Ok(Outcome::Leave),
        None => return Ok(Outcome::Wait("not read from HubSpot in this pass".into())),
    };
    apply_snapshot(client, kind, hubspot_id, snapshot).await
}

/// Applies an engagement as read from HubSpot (see [`bring_home`]); the first import calls it directly.
pub(crate) async fn apply_snapshot(
    client: &impl Db,
    kind: EngagementKind,
    hubspot_id: &str,
    snapshot: &EngagementSnapshot,
) -> Result<Outcome, DbError> {
    if let Some(own) = snapshot
        .object
        .property(LOCAL_ID_PROPERTY)
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        // Made by our outbound sync from one of our activities: link it if the sync's write-back has not yet.
        if let Ok(activity_id) = own.parse::<Uuid>()
            && engagements::activity_exists(client, activity_id).await?
            && engagements::link_own(client, activity_id, hubspot_id).await?
        {
            return Ok(Outcome::Applied("linked_own"));
        }
        return Ok(Outcome::Skipped("ours"));
    }
    let existing = engagements::find_by_engagement(client, hubspot_id).await?;
    if existing.as_ref().is_some_and(|e| e.logged_in == LOGGED_LOCALLY) {
        return Ok(Outcome::Skipped("ours"));
    }
    let targets = engagements::local_targets(client, &snapshot.deals, &snapshot.companies, &snapshot.contacts).await?;
    if targets.is_empty() {
        if existing.is_some() {
            engagements::remove(client, hubspot_id).await?;
            return Ok(Outcome::Applied("unlinked"));
        }
        return Ok(Outcome::Skipped("not_about_local_records"));
    }
    let object = &snapshot.object;
    let activity = engagement_activity(
        kind,
        |name| object.property(name),
        object.created_at.unwrap_or_else(Utc::now),
    );
    Ok(
        match engagements::upsert_from_hubspot(client, hubspot_id, &activity, targets).await? {
            Upserted::Created(_) => Outcome::Applied("engagement_created"),
            Upserted::Updated(_) => Outcome::Applied("engagement_updated"),
            Upserted::Ours(_) => Outcome::Skipped("ours"),
            Upserted::Older(_) => Outcome::Skipped("older_than_local"),
        },
    )
}

/// Reads the engagements that `events` need (batch reads of ≤100, then their deal, company and contact
/// associations), each once. A failed read is kept per engagement, so its events wait.
pub(crate) async fn fetch(
    hubspot: &HubSpotClient,
    events: impl Iterator<Item = (EngagementKind, String)>,
) -> FetchedEngagements {
    let mut wanted: HashMap<EngagementKind, BTreeSet<String>> = HashMap::new();
    for (kind, id) in events {
        wanted.entry(kind).or_default().insert(id);
    }
    let mut fetched = FetchedEngagements::new();
    for (kind, ids) in wanted {
        let ids: Vec<String> = ids.into_iter().collect();
        for (id, result) in fetch_kind(hubspot, kind, &ids).await {
            fetched.insert((kind, id), result);
        }
    }
    fetched
}

type Fetched = Result<Option<EngagementSnapshot>, String>;

async fn fetch_kind(hubspot: &HubSpotClient, kind: EngagementKind, ids: &[String]) -> Vec<(String, Fetched)> {
    let object_type = object_type(kind);
    let outcome = match hubspot.batch_read(object_type, ids, None, kind.properties()).await {
        Ok(outcome) => outcome,
        Err(error) => return ids.iter().map(|id| (id.clone(), Err(error.to_string()))).collect(),
    };
    let mut found: HashMap<String, HubSpotObject> = HashMap::new();
    for (_, object) in outcome.succeeded {
        found.insert(object.id.clone(), object);
    }
    let failed: HashMap<usize, String> = outcome
        .failed
        .into_iter()
        .filter(|(_, e)| !e.is_not_found())
        .map(|(i, e)| (i, e.to_string()))
        .collect();
    let found_ids: Vec<String> = ids.iter().filter(|id| found.contains_key(*id)).cloned().collect();
    let mut associated: HashMap<(ObjectType, String), Vec<String>> = HashMap::new();
    let mut association_error: Option<String> = None;
    if !found_ids.is_empty() {
        for to in [ObjectType::Deals, ObjectType::Companies, ObjectType::Contacts] {
            match hubspot.batch_read_associations(object_type, to, &found_ids).await {
                Ok(outcome) => {
                    for (index, records) in outcome.succeeded {
                        associated.insert(
                            (to, found_ids[index].clone()),
                            records.into_iter().map(|r| r.to_id).collect(),
                        );
                    }
                    if let Some((_, error)) = outcome.failed.into_iter().next() {
                        association_error = Some(error.to_string());
                    }
                }
                Err(error) => association_error = Some(error.to_string()),
            }
        }
    }
    ids.iter()
        .enumerate()
        .map(|(index, id)| {
            let result = match (found.remove(id), failed.get(&index), &association_error) {
                (Some(_), _, Some(error)) => Err(format!("reading its associations: {error}")),
                (Some(object), _, None) => {
                    let mut take = |to| associated.remove(&(to, id.clone())).unwrap_or_default();
                    Ok(Some(EngagementSnapshot {
                        deals: take(ObjectType::Deals),
                        companies: take(ObjectType::Companies),
                        contacts: take(ObjectType::Contacts),
                        object,
                    }))
                }
                (None, Some(error), _) => Err(error.clone()),
                (None, None, _) => Ok(None),
            };
            (id.clone(), result)
        })
        .collect()
}
