//! What applying one event shares whatever its kind: how it ended ([`Outcome`]), what every event of a pass sees
//! ([`PassContext`]), and the dispatch to the module of its kind.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use crmsync_db::{Db, DbError};
use crmsync_domain::policy::FieldPolicies;
use crmsync_domain::sync::PipelineMap;
use crmsync_domain::webhook::{EventKind, ObjectKind, WebhookEvent};
use crmsync_hubspot::HubSpotObject;
use uuid::Uuid;

use crate::association::association;
use crate::creation::creation;
use crate::deletion::deletion;
use crate::merge::merge;
use crate::property_change::{PropertyEvent, pipeline_move, property_changes};
use crate::write_back::Created;

/// How one event ended.
pub(crate) enum Outcome {
    Applied(&'static str),
    /// A record created locally from HubSpot (or one whose write-back a cut-off pass left undone): applied once
    /// our id is written back to HubSpot; until then the row is held.
    Created(&'static str),
    Skipped(&'static str),
    /// Not applicable yet: try again later.
    Wait(String),
    /// Cannot be applied by any retry: dead now, with the outcome label and the reason.
    Error(&'static str, String),
    /// Not attempted in this pass (it ran out of time): the row stays open and no attempt is spent.
    Leave,
}

/// What every event of a pass shares.
pub(crate) struct PassContext<'a> {
    pub(crate) pipeline: Option<&'a PipelineMap>,
    /// Records created in HubSpot, read before the transaction: `Ok(None)` = HubSpot has no such record.
    pub(crate) fetched: &'a HashMap<(ObjectKind, String), Result<Option<HubSpotObject>, String>>,
    /// Engagements read before the transaction (see [`crate::engagement`]).
    pub(crate) engagements: &'a crate::engagement::FetchedEngagements,
    /// The HubSpot read was cut off by the deadline: creation events (and engagement events) are left for a later
    /// pass.
    pub(crate) reads_cut: bool,
    /// Deals that this pass's events move to another pipeline: their stage changes are not ours to apply.
    pub(crate) leaving_pipeline: HashSet<&'a str>,
    pub(crate) app_id: Option<&'a str>,
    /// `HUBSPOT_PORTAL_ID`: events from another portal are skipped.
    pub(crate) portal_id: Option<i64>,
    /// Which side wins each property.
    pub(crate) policies: &'a FieldPolicies,
}

/// The pseudo-field (in `crmsync.field_changes`) that marks a deal moved out of our pipeline in HubSpot.
pub(crate) const LEFT_PIPELINE: &str = "@left_pipeline";

pub(crate) fn unknown_stage(pipeline: &PipelineMap, stage_id: &str) -> String {
    format!(
        "deal stage {stage_id:?} is not in the pipeline map of pipeline {}: run `crmsync hubspot-setup` if the \
         pipeline changed in HubSpot",
        pipeline.pipeline_id
    )
}

pub(crate) fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_else(Utc::now)
}

/// The inbox row an event came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventTarget {
    pub(crate) inbox_id: Uuid,
    pub(crate) attempts_before: i32,
}

/// The deals that `events` move out of our pipeline (a `pipeline` change to another pipeline's id).
pub(crate) fn leaving_pipeline<'a>(
    events: &'a [(Uuid, WebhookEvent)],
    pipeline: Option<&PipelineMap>,
) -> HashSet<&'a str> {
    let Some(pipeline) = pipeline else {
        return Default::default();
    };
    events
        .iter()
        .filter(|(_, e)| e.object == Some(ObjectKind::Deal))
        .filter(|(_, e)| matches!(&e.kind, EventKind::PropertyChange { name, value } if name == "pipeline" && value.trim() != pipeline.pipeline_id))
        .filter_map(|(_, e)| e.object_id.as_deref())
        .collect()
}

/// How an event ends without reading anything: another portal's, an object or type this service does not keep, our
/// own write, no object id. `None`: it must be applied.
pub(crate) fn settled_before_reading(event: &WebhookEvent, context: &PassContext<'_>) -> Option<Outcome> {
    if is_other_portal(event, context.portal_id) {
        return Some(Outcome::Skipped(crate::applier::OTHER_PORTAL));
    }
    if event.object.is_none() && event.engagement.is_none() {
        return Some(Outcome::Skipped("unknown_object"));
    }
    if event.kind == EventKind::Unknown {
        return Some(Outcome::Skipped("unknown_type"));
    }
    if event.is_own_write(context.app_id) {
        return Some(Outcome::Skipped("echo"));
    }
    if event.object_id.is_none()
        && !matches!(
            event.kind,
            EventKind::Merge { .. } | EventKind::AssociationChange { .. }
        )
    {
        return Some(Outcome::Skipped("no_object_id"));
    }
    None
}

/// True when a portal is configured and the event comes from another one.
pub(crate) fn is_other_portal(event: &WebhookEvent, portal_id: Option<i64>) -> bool {
    portal_id.is_some_and(|portal_id| event.portal_id != portal_id)
}

/// Applies one event inside the pass's transaction (or the event's savepoint), by its kind. Property changes
/// other than a deal's pipeline come in runs ([`crate::property_change::property_changes`]); one arriving here
/// is applied as a run of one.
pub(crate) async fn apply_event(
    client: &impl Db,
    target: EventTarget,
    event: &WebhookEvent,
    context: &PassContext<'_>,
    created: &mut Vec<Created>,
) -> Result<Outcome, DbError> {
    if let Some(outcome) = settled_before_reading(event, context) {
        return Ok(outcome);
    }
    if let Some(kind) = event.engagement {
        return crate::engagement::engagement_event(client, event, kind, context).await;
    }
    let Some(kind) = event.object else {
        return Ok(Outcome::Skipped("unknown_object"));
    };
    let id = event.object_id.as_deref().unwrap_or_default();
    match &event.kind {
        EventKind::PropertyChange { value, .. } => match PropertyEvent::of(target, event) {
            Some(run) => Ok(property_changes(client, &[run], context).await?.remove(0)),
            None => pipeline_move(client, event, id, value, context).await,
        },
        EventKind::Creation => creation(client, target, kind, id, context, created).await,
        EventKind::Deletion | EventKind::PrivacyDeletion => deletion(client, event, kind, id, true).await,
        EventKind::Restore => deletion(client, event, kind, id, false).await,
        EventKind::Merge { .. } => merge(client, event, kind).await,
        EventKind::AssociationChange { .. } => association(client, event).await,
        EventKind::Unknown => Ok(Outcome::Skipped("unknown_type")),
    }
}
