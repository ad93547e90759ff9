//! Property change events, a run at a time. The run's records are read and locked with a statement per kind
//! of read (their mapped values and origin, their fields' change times, the hashes of what HubSpot holds, the echo
//! ledger), every event is decided in memory in apply order by its field policy ([`crmsync_domain::policy`]), and
//! what the run decided is written with a statement per kind of write ([`ChangeSet`]). A few statements per run
//! instead of several per event: that is what lets the background applier keep up with HubSpot's bursts.
//!
//! Stage moves map through the pipeline map, close or reopen the deal and are logged as a `stage_change`
//! activity. A deal's `pipeline` is not a run's business: moves out of our pipeline are handled per event
//! ([`pipeline_move`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crmsync_db::hubspot_records as records;
use crmsync_db::property_changes::{self as batch, ChangeSet, ConflictRow, EchoProbe, LocalFields};
use crmsync_db::{Db, DbError};
use crmsync_domain::crm::NewActivity;
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::policy::{Decision, FieldPolicy, FieldState, Side, decide, field_spec};
use crmsync_domain::stage::{DealStage, StageMover, stage_change_activity};
use crmsync_domain::sync::value_hash;
use crmsync_domain::webhook::{ECHO_WINDOW_MS, EventKind, ObjectKind, WebhookEvent, column_value, local_stage};
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;

use crate::event::{EventTarget, LEFT_PIPELINE, Outcome, PassContext, millis, unknown_stage};

/// A property change event a run applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PropertyEvent<'e> {
    pub(crate) target: EventTarget,
    pub(crate) kind: ObjectKind,
    pub(crate) hubspot_id: &'e str,
    pub(crate) property: &'e str,
    pub(crate) value: &'e str,
    pub(crate) occurred_at_ms: i64,
}

impl<'e> PropertyEvent<'e> {
    /// The event as a run takes it: a property change of a record we keep, other than its `pipeline` (see
    /// [`pipeline_move`]). `None` for every other event.
    pub(crate) fn of(target: EventTarget, event: &'e WebhookEvent) -> Option<Self> {
        let EventKind::PropertyChange { name, value } = &event.kind else {
            return None;
        };
        let kind = event.object?;
        if kind == ObjectKind::Deal && name == "pipeline" {
            return None;
        }
        Some(Self {
            target,
            kind,
            hubspot_id: event.object_id.as_deref()?,
            property: name,
            value,
            occurred_at_ms: event.occurred_at,
        })
    }

    fn occurred(&self) -> DateTime<Utc> {
        millis(self.occurred_at_ms)
    }
}

/// What the run knows about its records, kept current as it decides (a later event sees an earlier one's effect).
struct RunState {
    records: HashMap<(ObjectKind, String), LocalFields>,
    changes: HashMap<(uuid::Uuid, String), (DateTime<Utc>, Side)>,
    hashes: HashMap<(uuid::Uuid, String), String>,
}

/// Applies a run of property changes (in apply order) and returns each event's outcome, in the same order.
pub(crate) async fn property_changes(
    client: &impl Db,
    events: &[PropertyEvent<'_>],
    context: &PassContext<'_>,
) -> Result<Vec<Outcome>, DbError> {
    let mut state = read_state(client, events).await?;
    let hashes: Vec<String> = events.iter().map(|e| value_hash(e.value)).collect();
    let probes: Vec<EchoProbe> = events
        .iter()
        .zip(&hashes)
        .map(|(event, hash)| EchoProbe {
            kind: event.kind,
            hubspot_id: event.hubspot_id,
            property: event.property,
            value_hash: hash,
            at: event.occurred(),
        })
        .collect();
    let echoes = batch::echoes(client, &probes, ECHO_WINDOW_MS).await?;
    let mut writes = ChangeSet::default();
    let outcomes = events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            if echoes.contains(&i) {
                Outcome::Skipped("echo")
            } else {
                decide_event(event, &hashes[i], &mut state, &mut writes, context)
            }
        })
        .collect();
    if !writes.is_empty() {
        writes.write(client).await?;
    }
    Ok(outcomes)
}

/// Locks and reads the run's records, then their change times and hashes.
async fn read_state(client: &impl Db, events: &[PropertyEvent<'_>]) -> Result<RunState, DbError> {
    let mut records = HashMap::new();
    for kind in ObjectKind::ALL {
        let mut ids: Vec<&str> = events.iter().filter(|e| e.kind == kind).map(|e| e.hubspot_id).collect();
        ids.sort_unstable();
        ids.dedup();
        for (hubspot_id, fields) in batch::lock_records(client, kind, &ids).await? {
            records.insert((kind, hubspot_id), fields);
        }
    }
    let keys: Vec<(ObjectKind, uuid::Uuid)> = records.iter().map(|((kind, _), r)| (*kind, r.id)).collect();
    Ok(RunState {
        changes: batch::field_changes(client, &keys).await?,
        hashes: batch::property_hashes(client, &keys).await?,
        records,
    })
}

/// Decides one event against the run's state, updating the state and the writes.
fn decide_event(
    event: &PropertyEvent<'_>,
    hubspot_hash: &str,
    state: &mut RunState,
    writes: &mut ChangeSet,
    context: &PassContext<'_>,
) -> Outcome {
    let (kind, property) = (event.kind, event.property);
    let spec = field_spec(kind, property);
    if spec.is_none() && property != LOCAL_ID_PROPERTY {
        return Outcome::Skipped("unmapped_property");
    }
    let Some(local) = state.records.get(&(kind, event.hubspot_id.to_owned())) else {
        return Outcome::Wait(format!(
            "{} {} is not in the local CRM yet",
            kind.singular(),
            event.hubspot_id
        ));
    };
    if local.hubspot_sync_status == HubSpotSyncStatus::Deleted {
        return Outcome::Skipped("deleted_locally");
    }
    let local_id = local.id;
    let Some(spec) = spec else {
        // Our upsert key: never theirs to change. Ours coming back is an echo; anything else is written back.
        if event.value.trim() == local_id.to_string() {
            return Outcome::Skipped("echo");
        }
        let conflict = conflict_row(event, local_id, None, "local", FieldPolicy::Local, None);
        revert(event, local_id, conflict, state, writes);
        return Outcome::Skipped("reverted");
    };
    let policy = context
        .policies
        .effective(kind, property, local.origin)
        .unwrap_or(spec.default);
    let column = spec.column;
    let local_value = column.and_then(|c| local.values.get(c).cloned().flatten());
    let known_hash = state.hashes.get(&(local_id, property.to_owned())).cloned();
    let last_change = column.and_then(|c| {
        state
            .changes
            .get(&(local_id, c.to_owned()))
            .map(|(at, side)| (at.timestamp_millis(), *side))
    });
    let local_changed_at = last_change
        .filter(|(_, side)| *side == Side::Local)
        .map(|(at, _)| millis(at));
    let local_unsynced = local_changed_at.is_some()
        && column
            .is_some_and(|c| known_hash.as_deref() != Some(hash_of_local(context, c, local_value.as_deref()).as_str()));
    let field_state = FieldState {
        local_value: local_value.as_deref(),
        last_change,
        hubspot_matches_known: known_hash.as_deref() == Some(hubspot_hash),
        local_unsynced,
    };
    match decide(policy, event.value, event.occurred_at_ms, field_state) {
        Decision::Skip(label) => Outcome::Skipped(label),
        Decision::Revert => {
            let conflict = conflict_row(event, local_id, local_value, "local", policy, local_changed_at);
            revert(event, local_id, conflict, state, writes);
            Outcome::Skipped("reverted")
        }
        Decision::KeepNewer { conflict: true } => {
            let row = conflict_row(event, local_id, local_value, "local", policy, local_changed_at);
            writes.conflicts.push(row);
            Outcome::Skipped("older_than_local")
        }
        Decision::KeepNewer { conflict: false } => Outcome::Skipped("older_change"),
        Decision::Apply { dropped_local } => {
            let Some(column) = column else {
                return Outcome::Skipped("no_local_column");
            };
            let new_value = match new_value(event, column, local_id, state, context) {
                Ok(value) => value,
                Err(outcome) => return outcome,
            };
            let label = if local_value == new_value.text() {
                "unchanged"
            } else {
                if dropped_local {
                    let row = conflict_row(
                        event,
                        local_id,
                        local_value.clone(),
                        "hubspot",
                        policy,
                        local_changed_at,
                    );
                    writes.conflicts.push(row);
                }
                write(
                    event,
                    local_id,
                    column,
                    local_value.as_deref(),
                    new_value,
                    state,
                    writes,
                )
            };
            // HubSpot's change time and value are what we hold now: the outbound sync does not send it back.
            writes
                .hubspot_changes
                .insert((kind, local_id, column), event.occurred());
            writes
                .hashes
                .insert((kind, local_id, property.to_owned()), Some(hubspot_hash.to_owned()));
            state
                .changes
                .insert((local_id, column.to_owned()), (event.occurred(), Side::HubSpot));
            state
                .hashes
                .insert((local_id, property.to_owned()), hubspot_hash.to_owned());
            Outcome::Applied(label)
        }
    }
}

fn conflict_row(
    event: &PropertyEvent<'_>,
    local_id: uuid::Uuid,
    local_value: Option<String>,
    winner: &'static str,
    policy: FieldPolicy,
    local_changed_at: Option<DateTime<Utc>>,
) -> ConflictRow {
    ConflictRow {
        kind: event.kind,
        entity_id: local_id,
        hubspot_id: event.hubspot_id.to_owned(),
        property: event.property.to_owned(),
        local_value,
        hubspot_value: Some(event.value.to_owned()),
        winner,
        policy: policy.as_str(),
        local_changed_at,
        hubspot_changed_at: event.occurred(),
        inbox_id: Some(event.target.inbox_id),
    }
}

/// Local wins: HubSpot's value is forgotten as what it holds, so the next sync (queued now) writes ours back.
fn revert(
    event: &PropertyEvent<'_>,
    local_id: uuid::Uuid,
    conflict: ConflictRow,
    state: &mut RunState,
    writes: &mut ChangeSet,
) {
    state.hashes.remove(&(local_id, event.property.to_owned()));
    writes
        .hashes
        .insert((event.kind, local_id, event.property.to_owned()), None);
    writes.requeue.insert((event.kind, local_id));
    writes.conflicts.push(conflict);
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

/// HubSpot's value as the local column holds it, or how the event ends instead: a stage goes through the pipeline
/// map (a stage of another pipeline the deal moved to is not ours; one our map lacks is an error).
fn new_value(
    event: &PropertyEvent<'_>,
    column: &str,
    local_id: uuid::Uuid,
    state: &RunState,
    context: &PassContext<'_>,
) -> Result<NewValue, Outcome> {
    if column != "stage" {
        return match column_value(column, event.value) {
            Ok(value) => Ok(NewValue::Column(value)),
            Err(error) => {
                tracing::info!(%error, "HubSpot value not stored");
                Err(Outcome::Skipped("invalid_value"))
            }
        };
    }
    let Some(pipeline) = context.pipeline else {
        return Err(Outcome::Wait("no pipeline map yet: run `crmsync hubspot-setup`".into()));
    };
    match local_stage(pipeline, event.value) {
        Some(stage) => Ok(NewValue::Stage(stage)),
        None if context.leaving_pipeline.contains(event.hubspot_id)
            || state.changes.contains_key(&(local_id, LEFT_PIPELINE.to_owned())) =>
        {
            // A stage of the other pipeline the deal was moved to: not ours to map.
            Err(Outcome::Skipped("other_pipeline"))
        }
        None => Err(Outcome::Error("unknown_stage", unknown_stage(pipeline, event.value))),
    }
}

/// Records the new value in the writes and the run's state; a stage move closes or reopens the deal and is logged
/// as a `stage_change` activity on the deal and its company.
fn write(
    event: &PropertyEvent<'_>,
    local_id: uuid::Uuid,
    column: &'static str,
    from: Option<&str>,
    new_value: NewValue,
    state: &mut RunState,
    writes: &mut ChangeSet,
) -> &'static str {
    let key = (event.kind, event.hubspot_id.to_owned());
    let text = new_value.text();
    let label = match new_value {
        NewValue::Stage(stage) => {
            let closed_at = stage.is_closed().then(|| event.occurred());
            writes.stages.insert(local_id, (stage.as_str().to_owned(), closed_at));
            let company = state.records.get(&key).and_then(|r| r.company_id);
            let activity = stage_change_activity(from.unwrap_or_default(), stage.as_str(), StageMover::HubSpot);
            writes.activities.push(NewActivity::stage_change(
                local_id,
                company,
                Some(event.occurred()),
                activity,
            ));
            "stage_changed"
        }
        NewValue::Column(value) => {
            writes
                .columns
                .entry((event.kind, column))
                .or_default()
                .insert(local_id, value);
            if event.kind == ObjectKind::Contact && ["first_name", "last_name", "email"].contains(&column) {
                writes.contact_names.insert(local_id);
            }
            "applied"
        }
    };
    if let Some(record) = state.records.get_mut(&key) {
        record.values.insert(column, text);
    }
    label
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

/// A deal's `pipeline` changed in HubSpot. Moved out of our pipeline: recorded (the event and a marker, so its
/// stage changes in that pipeline are recognised), not applied. Back in (or still in) our pipeline: the marker goes.
/// Either way our pipeline stays what the sync sends, so a move back is not forced.
pub(crate) async fn pipeline_move(
    client: &impl Db,
    event: &WebhookEvent,
    hubspot_id: &str,
    value: &str,
    context: &PassContext<'_>,
) -> Result<Outcome, DbError> {
    let Some(pipeline) = context.pipeline else {
        return Ok(Outcome::Wait("no pipeline map yet: run `crmsync hubspot-setup`".into()));
    };
    let Some(local) = records::find_local(client, ObjectKind::Deal, hubspot_id).await? else {
        return Ok(Outcome::Wait(format!("deal {hubspot_id} is not in the local CRM yet")));
    };
    if local.hubspot_sync_status == HubSpotSyncStatus::Deleted {
        return Ok(Outcome::Skipped("deleted_locally"));
    }
    if value.trim() != pipeline.pipeline_id {
        records::record_hubspot_change(
            client,
            ObjectKind::Deal,
            local.id,
            LEFT_PIPELINE,
            millis(event.occurred_at),
        )
        .await?;
        return Ok(Outcome::Skipped("left_pipeline"));
    }
    records::forget_field_change(client, ObjectKind::Deal, local.id, LEFT_PIPELINE).await?;
    Ok(Outcome::Skipped("our_pipeline"))
}
