//! `hubspot-setup`: makes the portal hold what the sync needs (contract.md) — property group "b2g", the
//! properties on companies, contacts and deals, and the "B2G Opportunities" deal pipeline with its stages —
//! creating only what is missing, so a second run sends no write at all.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::client::HubSpotClient;
use crate::error::{ErrorClass, HubSpotError, PermanentKind};
use crate::objects::ObjectType;
use crate::pipelines::{Pipeline, PipelineInput, PipelineStage, StageInput, StagePatch};
use crate::properties::{PropertyCreate, PropertyGroupCreate, PropertyType};

/// The property group holding the sync's properties.
pub const GROUP_NAME: &str = "b2g";
/// Its label.
pub const GROUP_LABEL: &str = "B2G";
/// Unique property holding our local uuid; the batch-upsert key on companies, contacts and deals.
pub const LOCAL_ID_PROPERTY: &str = "crmsync_id";
/// Label of the sync's deal pipeline.
pub const PIPELINE_LABEL: &str = "B2G Opportunities";

/// One property setup ensures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropertySpec {
    pub object_type: ObjectType,
    pub name: &'static str,
    pub label: &'static str,
    pub property_type: PropertyType,
    pub unique: bool,
}

const fn prop(
    object_type: ObjectType,
    name: &'static str,
    label: &'static str,
    property_type: PropertyType,
    unique: bool,
) -> PropertySpec {
    PropertySpec {
        object_type,
        name,
        label,
        property_type,
        unique,
    }
}

/// The properties of contract.md, plus `crmsync_id` on the five activity types: not unique (HubSpot does not
/// promise unique values there), but searchable, so a retried engagement create can first look for itself.
pub const PROPERTIES: [PropertySpec; 15] = [
    prop(
        ObjectType::Companies,
        LOCAL_ID_PROPERTY,
        "CRMSync ID",
        PropertyType::String,
        true,
    ),
    prop(
        ObjectType::Contacts,
        LOCAL_ID_PROPERTY,
        "CRMSync ID",
        PropertyType::String,
        true,
    ),
    prop(
        ObjectType::Deals,
        LOCAL_ID_PROPERTY,
        "CRMSync ID",
        PropertyType::String,
        true,
    ),
    prop(
        ObjectType::Deals,
        "b2g_match_score",
        "Match score",
        PropertyType::Number,
        false,
    ),
    prop(
        ObjectType::Deals,
        "b2g_win_probability",
        "Win probability",
        PropertyType::Number,
        false,
    ),
    prop(
        ObjectType::Deals,
        "b2g_notice_id",
        "Notice ID",
        PropertyType::String,
        false,
    ),
    prop(
        ObjectType::Companies,
        "b2g_readiness_score",
        "Readiness score",
        PropertyType::Number,
        false,
    ),
    prop(ObjectType::Companies, "b2g_uei", "UEI", PropertyType::String, false),
    prop(
        ObjectType::Companies,
        "b2g_cage_code",
        "CAGE code",
        PropertyType::String,
        false,
    ),
    prop(
        ObjectType::Companies,
        "b2g_primary_naics",
        "Primary NAICS",
        PropertyType::String,
        false,
    ),
    prop(
        ObjectType::Notes,
        LOCAL_ID_PROPERTY,
        "CRMSync ID",
        PropertyType::String,
        false,
    ),
    prop(
        ObjectType::Calls,
        LOCAL_ID_PROPERTY,
        "CRMSync ID",
        PropertyType::String,
        false,
    ),
    prop(
        ObjectType::Emails,
        LOCAL_ID_PROPERTY,
        "CRMSync ID",
        PropertyType::String,
        false,
    ),
    prop(
        ObjectType::Meetings,
        LOCAL_ID_PROPERTY,
        "CRMSync ID",
        PropertyType::String,
        false,
    ),
    prop(
        ObjectType::Tasks,
        LOCAL_ID_PROPERTY,
        "CRMSync ID",
        PropertyType::String,
        false,
    ),
];

/// One deal stage of the pipeline: local key, label, probability, closed flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageSpec {
    pub key: &'static str,
    pub label: &'static str,
    pub probability: &'static str,
    pub closed: bool,
}

const fn stage(key: &'static str, label: &'static str, probability: &'static str, closed: bool) -> StageSpec {
    StageSpec {
        key,
        label,
        probability,
        closed,
    }
}

/// The stages of contract.md, in order. The local key is matched to HubSpot's generated stage id by label.
pub const STAGES: [StageSpec; 8] = [
    stage("new_match", "New Match", "0.1", false),
    stage("initial_outreach", "Initial Outreach", "0.2", false),
    stage("contact_made", "Contact Made", "0.3", false),
    stage("qualified", "Qualified", "0.4", false),
    stage("proposal_sent", "Proposal Sent", "0.6", false),
    stage("negotiation", "Negotiation", "0.8", false),
    stage("closed_won", "Closed Won", "1.0", true),
    stage("closed_lost", "Closed Lost", "0.0", true),
];

impl StageSpec {
    fn input(&self, display_order: i32) -> StageInput {
        StageInput::deal_stage(self.label, display_order, self.probability(), self.closed)
    }

    /// The stage's probability as a decimal.
    pub fn probability(&self) -> Decimal {
        Decimal::from_str(self.probability).expect("stage probabilities are decimals")
    }
}

/// What setup found or made. Stored by the lead in schema `crmsync`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupReport {
    /// HubSpot id of the "B2G Opportunities" deal pipeline.
    pub pipeline_id: String,
    /// Local stage key (`new_match` ...) → HubSpot stage id.
    pub stage_ids: BTreeMap<String, String>,
    /// What this run created, e.g. `property deals.b2g_match_score`; empty when everything existed.
    pub created: Vec<String>,
    /// Stages whose probability or closed flag this run corrected.
    pub updated: Vec<String>,
}

/// Ensures the group, properties and pipeline of contract.md exist. Reads first (one group list and one property
/// list for each of the 8 object types, then 1 pipeline list) and writes only what is missing or drifted: a
/// second run creates nothing and sends no write. Stages are matched by label; a missing stage is added and a
/// wrong probability or closed flag is corrected.
///
/// Safe to run concurrently with itself: a 409 from a create another run won is answered by reading what that run
/// made (the property, which must still have the right type and unique flag; the pipeline or stage, found by
/// label) instead of failing. A write whose answer was lost (a connection dropped after HubSpot applied it, a
/// timeout, a 5xx) is read back the same way; when the read finds nothing, the create is sent once more.
///
/// Fails with [`HubSpotError::SetupConflict`] when an existing property cannot serve (wrong type, or
/// `crmsync_id` without unique values, which HubSpot cannot change afterwards); the error names the property.
pub async fn ensure_b2g_setup(client: &HubSpotClient) -> Result<SetupReport, HubSpotError> {
    let mut report = SetupReport::default();
    for object_type in ObjectType::ALL {
        ensure_group(client, object_type, &mut report).await?;
        ensure_properties(client, object_type, &mut report).await?;
    }
    ensure_pipeline(client, &mut report).await?;
    Ok(report)
}

fn is_conflict(error: &HubSpotError) -> bool {
    matches!(error.class(), ErrorClass::Permanent(PermanentKind::Conflict { .. }))
}

/// The write may have been applied though its answer was lost (a connection dropped after sending, a timeout, a
/// 5xx): read back before deciding.
fn outcome_unknown(error: &HubSpotError) -> bool {
    error.class().is_retryable() && !error.request_not_applied()
}

/// What to do after a create failed with `error` and a read-back found nothing: send the create once more when it
/// surely was not applied before (`tries` so far), or give up with the error.
fn create_again(error: HubSpotError, tries: u32) -> Result<(), HubSpotError> {
    if outcome_unknown(&error) && tries < CREATE_TRIES {
        tracing::warn!(%error, "a setup write's answer was lost and nothing was made: sending it again");
        Ok(())
    } else {
        Err(error)
    }
}

/// Creates per setup item: a create whose answer was lost and that made nothing is sent once more.
const CREATE_TRIES: u32 = 2;

async fn ensure_group(
    client: &HubSpotClient,
    object_type: ObjectType,
    report: &mut SetupReport,
) -> Result<(), HubSpotError> {
    let groups = client.list_property_groups(object_type).await?;
    if groups.iter().any(|g| g.name == GROUP_NAME) {
        return Ok(());
    }
    let input = PropertyGroupCreate {
        name: GROUP_NAME.into(),
        label: GROUP_LABEL.into(),
        display_order: -1,
    };
    let created = format!("property group {object_type}.{GROUP_NAME}");
    for tries in 1.. {
        match client.create_property_group(object_type, &input).await {
            Ok(_) => break,
            // Another setup run created it meanwhile.
            Err(e) if is_conflict(&e) => return Ok(()),
            // The answer was lost: the group exists if the create was applied.
            Err(e) if outcome_unknown(&e) => {
                let groups = client.list_property_groups(object_type).await?;
                if groups.iter().any(|g| g.name == GROUP_NAME) {
                    break;
                }
                create_again(e, tries)?;
            }
            Err(e) => return Err(e),
        }
    }
    report.created.push(created);
    Ok(())
}

async fn ensure_properties(
    client: &HubSpotClient,
    object_type: ObjectType,
    report: &mut SetupReport,
) -> Result<(), HubSpotError> {
    let existing = client.list_properties(object_type).await?;
    for spec in PROPERTIES.iter().filter(|p| p.object_type == object_type) {
        if let Some(found) = existing.iter().find(|p| p.name == spec.name) {
            check_property(spec, found)?;
            continue;
        }
        let input = PropertyCreate {
            name: spec.name.into(),
            label: spec.label.into(),
            property_type: spec.property_type,
            field_type: match spec.property_type {
                PropertyType::Number => "number".into(),
                _ => "text".into(),
            },
            group_name: GROUP_NAME.into(),
            description: String::new(),
            has_unique_value: spec.unique,
            form_field: false,
        };
        for tries in 1.. {
            match client.create_property(object_type, &input).await {
                Ok(_) => {
                    report.created.push(format!("property {object_type}.{}", spec.name));
                    break;
                }
                // Another setup run (or a person) created it meanwhile: it must still be what the sync needs.
                Err(e) if is_conflict(&e) => {
                    let found = client.get_property(object_type, spec.name).await?;
                    check_property(spec, &found)?;
                    break;
                }
                // The answer was lost: read back what the create made, if it was applied.
                Err(e) if outcome_unknown(&e) => match client.get_property(object_type, spec.name).await {
                    Ok(found) => {
                        check_property(spec, &found)?;
                        report.created.push(format!("property {object_type}.{}", spec.name));
                        break;
                    }
                    Err(read) if read.is_not_found() => create_again(e, tries)?,
                    Err(read) => return Err(read),
                },
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// An existing property serves only with the spec's type and, for the upsert key, unique values.
fn check_property(spec: &PropertySpec, found: &crate::properties::Property) -> Result<(), HubSpotError> {
    let what = || format!("property {}.{}", spec.object_type, spec.name);
    if found.property_type != spec.property_type {
        return Err(HubSpotError::SetupConflict {
            what: what(),
            reason: format!(
                "exists with type {:?}, the sync needs {:?}",
                found.property_type, spec.property_type
            ),
        });
    }
    if spec.unique && !found.has_unique_value {
        return Err(HubSpotError::SetupConflict {
            what: what(),
            reason: "exists without hasUniqueValue, which HubSpot cannot change; archive it and rerun".into(),
        });
    }
    Ok(())
}

fn find_pipeline(pipelines: Vec<Pipeline>) -> Option<Pipeline> {
    pipelines.into_iter().find(|p| p.label == PIPELINE_LABEL && !p.archived)
}

fn find_stage(pipeline: &Pipeline, label: &str) -> Option<PipelineStage> {
    pipeline
        .stages
        .iter()
        .find(|s| s.label == label && !s.archived)
        .cloned()
}

async fn ensure_pipeline(client: &HubSpotClient, report: &mut SetupReport) -> Result<(), HubSpotError> {
    let found = find_pipeline(client.list_pipelines(ObjectType::Deals).await?);
    let mut pipeline = match found {
        Some(pipeline) => pipeline,
        None => {
            let input = PipelineInput {
                label: PIPELINE_LABEL.into(),
                display_order: 1,
                stages: STAGES.iter().zip(0..).map(|(s, order)| s.input(order)).collect(),
            };
            create_pipeline(client, &input, report).await?
        }
    };
    for (spec, order) in STAGES.iter().zip(0..) {
        let existing = find_stage(&pipeline, spec.label);
        let stage = match existing {
            None => create_stage(client, &mut pipeline, spec, order, report).await?,
            Some(stage)
                if stage.probability() != Some(spec.probability()) || stage.is_closed() != Some(spec.closed) =>
            {
                let patch = StagePatch {
                    metadata: spec.input(order).metadata,
                    ..StagePatch::default()
                };
                let updated = match client
                    .update_pipeline_stage(ObjectType::Deals, &pipeline.id, &stage.id, &patch)
                    .await
                {
                    Ok(updated) => updated,
                    // The answer was lost: the stage is right if the update was applied.
                    Err(e) if outcome_unknown(&e) => {
                        pipeline = client.get_pipeline(ObjectType::Deals, &pipeline.id).await?;
                        find_stage(&pipeline, spec.label)
                            .filter(|s| {
                                s.probability() == Some(spec.probability()) && s.is_closed() == Some(spec.closed)
                            })
                            .ok_or(e)?
                    }
                    Err(e) => return Err(e),
                };
                report.updated.push(format!("deals pipeline stage {}", spec.label));
                updated
            }
            Some(stage) => stage,
        };
        report.stage_ids.insert(spec.key.to_owned(), stage.id);
    }
    report.pipeline_id = pipeline.id;
    Ok(())
}

/// Creates the sync's deal pipeline, or finds the one another setup run made (labels are unique) or the one a
/// create whose answer was lost made.
async fn create_pipeline(
    client: &HubSpotClient,
    input: &PipelineInput,
    report: &mut SetupReport,
) -> Result<Pipeline, HubSpotError> {
    for tries in 1.. {
        match client.create_pipeline(ObjectType::Deals, input).await {
            Ok(created) => {
                report.created.push(format!("deals pipeline {PIPELINE_LABEL}"));
                return Ok(created);
            }
            Err(e) if is_conflict(&e) => {
                return find_pipeline(client.list_pipelines(ObjectType::Deals).await?).ok_or(e);
            }
            Err(e) if outcome_unknown(&e) => {
                if let Some(found) = find_pipeline(client.list_pipelines(ObjectType::Deals).await?) {
                    report.created.push(format!("deals pipeline {PIPELINE_LABEL}"));
                    return Ok(found);
                }
                create_again(e, tries)?;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns or fails within CREATE_TRIES")
}

/// Adds a stage to `pipeline`, or finds the one another setup run added (the next run checks its metadata) or the
/// one a create whose answer was lost added.
async fn create_stage(
    client: &HubSpotClient,
    pipeline: &mut Pipeline,
    spec: &StageSpec,
    order: i32,
    report: &mut SetupReport,
) -> Result<PipelineStage, HubSpotError> {
    for tries in 1.. {
        match client
            .create_pipeline_stage(ObjectType::Deals, &pipeline.id, &spec.input(order))
            .await
        {
            Ok(created) => {
                report.created.push(format!("deals pipeline stage {}", spec.label));
                pipeline.stages.push(created.clone());
                return Ok(created);
            }
            Err(e) if is_conflict(&e) => {
                *pipeline = client.get_pipeline(ObjectType::Deals, &pipeline.id).await?;
                return find_stage(pipeline, spec.label).ok_or(e);
            }
            Err(e) if outcome_unknown(&e) => {
                *pipeline = client.get_pipeline(ObjectType::Deals, &pipeline.id).await?;
                if let Some(found) = find_stage(pipeline, spec.label) {
                    report.created.push(format!("deals pipeline stage {}", spec.label));
                    return Ok(found);
                }
                create_again(e, tries)?;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns or fails within CREATE_TRIES")
}
