//! Property change events: field ownership decides whether HubSpot's value is applied, kept out (a newer local
//! change), or re-asserted (a local-owned field); stage moves map through the pipeline map, close or reopen the deal
//! and are logged as a `stage_change` activity; a deal moved out of our pipeline is marked, not applied.

use chrono::{DateTime, Utc};
use crmsync_db::crm::{self, NewActivity};
use crmsync_db::hubspot_records::{self as records, Conflict};
use crmsync_db::{Db, DbError};
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::stage::{DealStage, StageMover, stage_change_activity};
use crmsync_domain::sync::value_hash;
use crmsync_domain::webhook::{
    Decision, ECHO_WINDOW_MS, FieldRule, ObjectKind, WebhookEvent, column_value, decide, field_rule, local_stage,
};
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use uuid::Uuid;

use crate::event::{LEFT_PIPELINE, Outcome, PassContext, millis, unknown_stage};

/// One HubSpot change of a mapped property of a local record, as the steps below need it.
struct Change<'a> {
    inbox_id: Uuid,
    kind: ObjectKind,
    local_id: Uuid,
    hubspot_id: &'a str,
    property: &'a str,
    value: &'a str,
    rule: FieldRule,
    occurred: DateTime<Utc>,
    hash: String,
}

impl<'a> Change<'a> {
    /// An override between the two sides, for crmsync.sync_conflicts.
    fn conflict(
        &self,
        local_value: Option<String>,
        winner: &'static str,
        local_changed_at: Option<DateTime<Utc>>,
    ) -> Conflict<'a> {
        Conflict {
            kind: self.kind,
            entity_id: self.local_id,
            hubspot_id: self.hubspot_id,
            property: self.property,
            local_value,
            hubspot_value: Some(self.value),
            winner,
            rule: self.rule.owner.rule_name(),
            local_changed_at,
            hubspot_changed_at: self.occurred,
            inbox_id: self.inbox_id,
        }
    }
}

/// The value a change writes: a deal stage (mapped from HubSpot's stage id) or a column's text.
enum NewValue {
    Stage(DealStage),
    Column(Option<String>),
}

impl NewValue {
    fn text(&self) -> Option<String> {
        match self {
            Self::Stage(stage) => Some(stage.as_str().to_owned()),
            Self::Column(value) => value.clone(),
        }
    }
}

/// Applies a HubSpot change of `property` to `value` by the property's owner.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn property_change(
    client: &impl Db,
    inbox_id: Uuid,
    event: &WebhookEvent,
    kind: ObjectKind,
    hubspot_id: &str,
    property: &str,
    value: &str,
    context: &PassContext<'_>,
) -> Result<Outcome, DbError> {
    let Some(rule) = field_rule(kind, property) else {
        return Ok(Outcome::Skipped("unmapped_property"));
    };
    let Some(local) = records::find_local(client, kind, hubspot_id).await? else {
        return Ok(Outcome::Wait(format!(
            "{} {hubspot_id} is not in the local CRM yet",
            kind.singular()
        )));
    };
    if local.hubspot_sync_status == HubSpotSyncStatus::Deleted {
        return Ok(Outcome::Skipped("deleted_locally"));
    }
    if property == LOCAL_ID_PROPERTY && value == local.id.to_string() {
        // The outbound sync's upsert key, written with the record: not in the echo ledger, but plainly ours.
        return Ok(Outcome::Skipped("echo"));
    }
    if kind == ObjectKind::Deal
        && property == "pipeline"
        && let Some(outcome) = pipeline_move(client, event, local.id, value, context).await?
    {
        return Ok(outcome);
    }
    let change = Change {
        inbox_id,
        kind,
        local_id: local.id,
        hubspot_id,
        property,
        value,
        rule,
        occurred: millis(event.occurred_at),
        hash: value_hash(value),
    };
    let (echo, changed) = records::echo_and_field_change(
        client,
        kind,
        hubspot_id,
        property,
        &change.hash,
        change.occurred,
        ECHO_WINDOW_MS,
        local.id,
        rule.written_column().unwrap_or(""),
    )
    .await?;
    if echo {
        return Ok(Outcome::Skipped("echo"));
    }
    match decide(
        rule,
        event.occurred_at,
        changed.as_ref().map(|(at, _)| at.timestamp_millis()),
    ) {
        Decision::Reassert => reassert(client, &change).await,
        Decision::KeepNewer { column } => keep_newer(client, &change, column, changed).await,
        Decision::Apply { column } => apply(client, &change, column, changed, context).await,
    }
}

/// A deal's `pipeline` changed in HubSpot. Moved out of our pipeline: recorded (the event and a marker, so its
/// stage changes in that pipeline are recognised), not applied and not re-asserted. Back in (or still in) our
/// pipeline: the marker goes and the local-owned rule applies again (`None`: carry on).
async fn pipeline_move(
    client: &impl Db,
    event: &WebhookEvent,
    local_id: Uuid,
    value: &str,
    context: &PassContext<'_>,
) -> Result<Option<Outcome>, DbError> {
    let Some(pipeline) = context.pipeline else {
        return Ok(Some(Outcome::Wait(
            "no pipeline map yet: run `crmsync hubspot-setup`".into(),
        )));
    };
    if value.trim() != pipeline.pipeline_id {
        records::record_hubspot_change(
            client,
            ObjectKind::Deal,
            local_id,
            LEFT_PIPELINE,
            millis(event.occurred_at),
        )
        .await?;
        return Ok(Some(Outcome::Skipped("left_pipeline")));
    }
    records::forget_field_change(client, ObjectKind::Deal, local_id, LEFT_PIPELINE).await?;
    Ok(None)
}

/// Local owns the field: HubSpot keeps our value unless it differs; then forget the written hash so the next sync
/// sends the local value again, and queue that sync.
async fn reassert(client: &impl Db, change: &Change<'_>) -> Result<Outcome, DbError> {
    let (kind, id) = (change.kind, change.local_id);
    if records::property_hash(client, kind, id, change.property)
        .await?
        .as_deref()
        == Some(change.hash.as_str())
    {
        return Ok(Outcome::Skipped("unchanged"));
    }
    records::forget_property_hash(client, kind, id, Some(change.property)).await?;
    records::enqueue_update(client, kind, id).await?;
    records::record_conflict(client, &change.conflict(None, "local", None)).await?;
    Ok(Outcome::Skipped("local_owned"))
}

/// The field changed after the event (locally, or by a later HubSpot event already applied): kept, and a local
/// change that wins is recorded as a conflict.
async fn keep_newer(
    client: &impl Db,
    change: &Change<'_>,
    column: &str,
    changed: Option<(DateTime<Utc>, String)>,
) -> Result<Outcome, DbError> {
    if let Some((at, source)) = changed
        && source == "local"
    {
        let current = current_value(client, change, column).await?;
        records::record_conflict(client, &change.conflict(current, "local", Some(at))).await?;
    }
    Ok(Outcome::Skipped("older_than_local"))
}

/// Writes HubSpot's value into `column` (a stage move closes or reopens the deal and is logged), and records that
/// HubSpot holds it, so the outbound sync does not send it back.
async fn apply(
    client: &impl Db,
    change: &Change<'_>,
    column: &str,
    changed: Option<(DateTime<Utc>, String)>,
    context: &PassContext<'_>,
) -> Result<Outcome, DbError> {
    let current = current_value(client, change, column).await?;
    let new_value = match new_value(client, change, column, context).await? {
        Ok(new_value) => new_value,
        Err(outcome) => return Ok(outcome),
    };
    let label = if current == new_value.text() {
        "unchanged"
    } else {
        // A local edit not yet in HubSpot (its value is not what the sync last wrote) that HubSpot's newer change
        // replaces: an override worth recording.
        if let Some((at, source)) = &changed
            && source == "local"
        {
            let synced = records::property_hash(client, change.kind, change.local_id, change.property).await?;
            if synced.as_deref() != Some(hash_of_local(context, column, current.as_deref()).as_str()) {
                records::record_conflict(client, &change.conflict(current.clone(), "hubspot", Some(*at))).await?;
            }
        }
        write(client, change, column, new_value).await?
    };
    records::record_applied(
        client,
        change.kind,
        change.local_id,
        column,
        change.occurred,
        change.property,
        &change.hash,
    )
    .await?;
    Ok(Outcome::Applied(label))
}

/// The local column's current value as text.
async fn current_value(client: &impl Db, change: &Change<'_>, column: &str) -> Result<Option<String>, DbError> {
    if column == "stage" {
        Ok(records::deal_stage(client, change.local_id)
            .await?
            .map(|(stage, _)| stage))
    } else {
        records::column_text(client, change.kind, change.local_id, column).await
    }
}

/// HubSpot's value as the local column holds it, or how the event ends instead: a stage goes through the pipeline
/// map (a stage of another pipeline the deal moved to is not ours; one our map lacks is an error).
async fn new_value(
    client: &impl Db,
    change: &Change<'_>,
    column: &str,
    context: &PassContext<'_>,
) -> Result<Result<NewValue, Outcome>, DbError> {
    if column != "stage" {
        return Ok(match column_value(column, change.value) {
            Ok(value) => Ok(NewValue::Column(value)),
            Err(error) => {
                tracing::info!(%error, "HubSpot value not stored");
                Err(Outcome::Skipped("invalid_value"))
            }
        });
    }
    let Some(pipeline) = context.pipeline else {
        return Ok(Err(Outcome::Wait(
            "no pipeline map yet: run `crmsync hubspot-setup`".into(),
        )));
    };
    Ok(match local_stage(pipeline, change.value) {
        Some(stage) => Ok(NewValue::Stage(stage)),
        None if context.leaving_pipeline.contains(change.hubspot_id)
            || records::field_changed_at(client, change.kind, change.local_id, LEFT_PIPELINE)
                .await?
                .is_some() =>
        {
            // A stage of the other pipeline the deal was moved to: not ours to map.
            Err(Outcome::Skipped("other_pipeline"))
        }
        None => Err(Outcome::Error("unknown_stage", unknown_stage(pipeline, change.value))),
    })
}

/// Writes the new value; a stage move is logged as a `stage_change` activity on the deal and its company.
async fn write(
    client: &impl Db,
    change: &Change<'_>,
    column: &str,
    new_value: NewValue,
) -> Result<&'static str, DbError> {
    match new_value {
        NewValue::Stage(stage) => {
            let (from, company) = records::deal_stage(client, change.local_id).await?.unwrap_or_default();
            records::set_deal_stage(client, change.local_id, stage, change.occurred).await?;
            let activity = stage_change_activity(&from, stage.as_str(), StageMover::HubSpot);
            let activity = NewActivity::stage_change(change.local_id, company, Some(change.occurred), activity);
            crm::insert_activity(client, &activity).await?;
            Ok("stage_changed")
        }
        NewValue::Column(value) => {
            records::set_column(client, change.kind, change.local_id, column, value.as_deref()).await?;
            Ok("applied")
        }
    }
}

/// The hash the outbound sync would have stored for a local column's value (for conflict detection): the stage
/// goes through the pipeline map, everything else is sent as it is.
fn hash_of_local(context: &PassContext<'_>, column: &str, value: Option<&str>) -> String {
    let value = value.unwrap_or_default();
    if column == "stage" {
        let id = context
            .pipeline
            .and_then(|p| p.stage_ids.get(value))
            .map(String::as_str)
            .unwrap_or(value);
        value_hash(id)
    } else {
        value_hash(value)
    }
}
