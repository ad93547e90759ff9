//! Creation events: reading the records created in HubSpot (batch read before the pass's transaction), creating
//! them locally (deals only of our pipeline), and queueing the write-back of our id to their HubSpot copy.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use crmsync_db::hubspot_records::{self as records, NewCompany, NewContact, NewDeal};
use crmsync_db::{Db, DbError};
use crmsync_domain::email::is_email;
use crmsync_domain::sync::{PipelineMap, value_hash};
use crmsync_domain::webhook::{EventKind, ObjectKind, WebhookEvent, column_value, contact_full_name, local_stage};
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use crmsync_hubspot::{HubSpotObject, ObjectType};
use uuid::Uuid;

use crate::applier::Applier;
use crate::event::{EventTarget, Outcome, PassContext, unknown_stage};
use crate::write_back::Created;

/// Creates the local record of a record created in HubSpot (read before the pass), unless it is ours or known
/// already; a record an earlier pass created without writing our id back gets its write-back now.
pub(crate) async fn creation(
    client: &impl Db,
    target: EventTarget,
    kind: ObjectKind,
    hubspot_id: &str,
    context: &PassContext<'_>,
    created: &mut Vec<Created>,
) -> Result<Outcome, DbError> {
    let fetched = context.fetched.get(&(kind, hubspot_id.to_owned()));
    let created_as = |label: &'static str, local_id: Uuid| Created {
        inbox_id: target.inbox_id,
        label,
        attempts_before: target.attempts_before,
        kind,
        hubspot_id: hubspot_id.to_owned(),
        local_id,
    };
    if let Some(local) = records::find_local(client, kind, hubspot_id).await? {
        // Created by an earlier pass whose write-back of our id did not happen (cut off, or HubSpot failed): make
        // it now. Otherwise the record is simply known already.
        if let Some(Ok(Some(object))) = fetched
            && !carries_our_id(object)
        {
            created.push(created_as("written_back", local.id));
            return Ok(Outcome::Created("written_back"));
        }
        return Ok(Outcome::Skipped("already_local"));
    }
    let object = match fetched {
        Some(Ok(Some(object))) => object,
        Some(Ok(None)) => return Ok(Outcome::Skipped("gone_from_hubspot")),
        Some(Err(error)) => return Ok(Outcome::Wait(format!("could not read it from HubSpot: {error}"))),
        None if context.reads_cut => return Ok(Outcome::Leave),
        None => return Ok(Outcome::Wait("not read from HubSpot in this pass".into())),
    };
    if carries_our_id(object) {
        // One of ours (created by the outbound sync): already linked by the sync's write-back.
        return Ok(Outcome::Skipped("ours"));
    }
    let id = match kind {
        ObjectKind::Company => records::insert_company(client, &new_company(object, hubspot_id)).await?,
        ObjectKind::Contact => records::insert_contact(client, &new_contact(object, hubspot_id)).await?,
        ObjectKind::Deal => match new_deal(object, hubspot_id, context.pipeline) {
            Ok(deal) => records::insert_deal(client, &deal).await?,
            Err(outcome) => return Ok(outcome),
        },
    };
    let Some(id) = id else {
        return Ok(Outcome::Skipped("already_local"));
    };
    // What HubSpot holds is what we hold: the outbound sync has nothing to send for these values.
    for property in creation_properties(kind) {
        if let Some(value) = object.property(property) {
            records::set_property_hash(client, kind, id, property, &value_hash(value)).await?;
        }
    }
    created.push(created_as("created", id));
    Ok(Outcome::Created("created"))
}

/// True when the record carries a local id: one of ours, or one whose write-back is done.
pub(crate) fn carries_our_id(object: &HubSpotObject) -> bool {
    object.property(LOCAL_ID_PROPERTY).is_some_and(|v| !v.trim().is_empty())
}

/// A property's trimmed value; `None` when absent or blank.
fn text(object: &HubSpotObject, name: &str) -> Option<String> {
    object
        .property(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A property's value as the local `column` accepts it; `None` when absent, blank or not storable.
fn checked(object: &HubSpotObject, column: &str, name: &str) -> Option<String> {
    text(object, name).and_then(|v| column_value(column, &v).ok().flatten())
}

pub(crate) fn new_company(object: &HubSpotObject, hubspot_id: &str) -> NewCompany {
    let text = |name: &str| text(object, name);
    NewCompany {
        hubspot_id: hubspot_id.to_owned(),
        name: text("name")
            .or_else(|| text("domain"))
            .unwrap_or_else(|| format!("HubSpot company {hubspot_id}")),
        website: text("website").or_else(|| text("domain")),
        phone: text("phone"),
        address: text("address"),
        city: text("city"),
        state: text("state"),
        zip: text("zip"),
        lifecycle_stage: checked(object, "lifecycle_stage", "lifecyclestage"),
        description: text("description"),
        owner_id: text("hubspot_owner_id"),
    }
}

pub(crate) fn new_contact(object: &HubSpotObject, hubspot_id: &str) -> NewContact {
    let text = |name: &str| text(object, name);
    let email = text("email").filter(|e| is_email(e));
    NewContact {
        hubspot_id: hubspot_id.to_owned(),
        full_name: contact_full_name(
            text("firstname").as_deref(),
            text("lastname").as_deref(),
            email.as_deref(),
            hubspot_id,
        ),
        first_name: text("firstname"),
        last_name: text("lastname"),
        email,
        phone: text("phone"),
        mobile_phone: text("mobilephone"),
        job_title: text("jobtitle"),
        lifecycle_stage: checked(object, "lifecycle_stage", "lifecyclestage"),
        owner_id: text("hubspot_owner_id"),
    }
}

/// The local deal of a deal created in HubSpot, or how the event ends instead. Only deals of our pipeline are ours:
/// a deal in another pipeline is recorded and left alone, and a stage of our pipeline that the map does not know is
/// an error, never a silent new_match.
pub(crate) fn new_deal(
    object: &HubSpotObject,
    hubspot_id: &str,
    pipeline: Option<&PipelineMap>,
) -> Result<NewDeal, Outcome> {
    let text = |name: &str| text(object, name);
    let Some(pipeline) = pipeline else {
        return Err(Outcome::Wait("no pipeline map yet: run `crmsync hubspot-setup`".into()));
    };
    if text("pipeline").as_deref() != Some(pipeline.pipeline_id.as_str()) {
        return Err(Outcome::Skipped("other_pipeline"));
    }
    let stage_id = text("dealstage").unwrap_or_default();
    let Some(stage) = local_stage(pipeline, &stage_id) else {
        return Err(Outcome::Error("unknown_stage", unknown_stage(pipeline, &stage_id)));
    };
    Ok(NewDeal {
        hubspot_id: hubspot_id.to_owned(),
        deal_name: text("dealname").unwrap_or_else(|| format!("HubSpot deal {hubspot_id}")),
        deal_value: text("amount")
            .and_then(|a| a.parse::<rust_decimal::Decimal>().ok())
            .filter(|a| !a.is_sign_negative()),
        expected_close_date: text("closedate").and_then(|d| {
            d.get(..10)
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        }),
        stage: stage.as_str().to_owned(),
        closed_at: stage.is_closed().then(|| object.updated_at.unwrap_or_else(Utc::now)),
        description: text("description"),
        owner_id: text("hubspot_owner_id"),
    })
}

impl Applier {
    /// Reads the records that creation events name (not our own writes), ≤100 per call.
    pub(crate) async fn fetch_created(
        &self,
        events: &[(Uuid, WebhookEvent)],
    ) -> HashMap<(ObjectKind, String), Result<Option<HubSpotObject>, String>> {
        let mut fetched = HashMap::new();
        for kind in ObjectKind::ALL {
            let ids: Vec<String> = events
                .iter()
                .filter(|(_, e)| {
                    e.kind == EventKind::Creation
                        && e.object == Some(kind)
                        && !e.is_own_write(self.app_id.as_deref())
                        && !crate::event::is_other_portal(e, self.portal_id)
                })
                .filter_map(|(_, e)| e.object_id.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if ids.is_empty() {
                continue;
            }
            let object_type = hubspot_type(kind);
            match self
                .hubspot
                .batch_read(object_type, &ids, None, creation_properties(kind))
                .await
            {
                Ok(outcome) => {
                    let mut found: HashMap<String, HubSpotObject> = HashMap::new();
                    for (_, object) in outcome.succeeded {
                        found.insert(object.id.clone(), object);
                    }
                    let failed: HashMap<usize, String> =
                        outcome.failed.into_iter().map(|(i, e)| (i, e.to_string())).collect();
                    for (index, id) in ids.into_iter().enumerate() {
                        let result = match (found.remove(&id), failed.get(&index)) {
                            (Some(object), _) => Ok(Some(object)),
                            // A 207 "not found" entry: the record is gone (deleted or merged since).
                            (None, Some(error))
                                if error.contains("404") || error.to_lowercase().contains("not found") =>
                            {
                                Ok(None)
                            }
                            (None, Some(error)) => Err(error.clone()),
                            (None, None) => Ok(None),
                        };
                        fetched.insert((kind, id), result);
                    }
                }
                Err(error) => {
                    let text = error.to_string();
                    for id in ids {
                        fetched.insert((kind, id), Err(text.clone()));
                    }
                }
            }
        }
        fetched
    }
}

pub(crate) fn hubspot_type(kind: ObjectKind) -> ObjectType {
    match kind {
        ObjectKind::Company => ObjectType::Companies,
        ObjectKind::Contact => ObjectType::Contacts,
        ObjectKind::Deal => ObjectType::Deals,
    }
}

pub(crate) fn creation_properties(kind: ObjectKind) -> &'static [&'static str] {
    match kind {
        ObjectKind::Company => &[
            "name",
            "domain",
            "website",
            "phone",
            "address",
            "city",
            "state",
            "zip",
            "lifecyclestage",
            "description",
            "hubspot_owner_id",
            LOCAL_ID_PROPERTY,
        ],
        ObjectKind::Contact => &[
            "firstname",
            "lastname",
            "email",
            "phone",
            "mobilephone",
            "jobtitle",
            "lifecyclestage",
            "hubspot_owner_id",
            LOCAL_ID_PROPERTY,
        ],
        ObjectKind::Deal => &[
            "dealname",
            "amount",
            "closedate",
            "dealstage",
            "pipeline",
            "description",
            "hubspot_owner_id",
            LOCAL_ID_PROPERTY,
        ],
    }
}
