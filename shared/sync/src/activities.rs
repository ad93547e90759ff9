//! Activities become HubSpot engagements (notes, calls, emails, meetings, tasks), created once and associated with
//! their deal, company and contact. Engagements have no unique key in HubSpot, so a retried create first looks for
//! the one an earlier attempt may have made.

use std::collections::BTreeMap;

use crmsync_app::AppError;
use crmsync_db::sync::SyncedEntity;
use crmsync_domain::ports::RetryQueue;
use crmsync_domain::sync::{ActivityRecord, EntityType, Properties, SyncItem, activity_properties, engagement_object};
use crmsync_hubspot::associations::AssociationSpec;
use crmsync_hubspot::objects::NewAssociation;
use crmsync_hubspot::search::{Filter, FilterGroup, Operator, SearchRequest};
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use crmsync_hubspot::{CreateInput, HubSpotError, ObjectType};
use uuid::Uuid;

use crate::drain::OutboundSync;
use crate::round::{ByEntity, RoundOutcome, items_of};
use crate::settings::SyncReport;

/// An engagement to create: its activity, the properties sent, and the create input.
type NewEngagement<'a> = (&'a ActivityRecord, Properties, CreateInput);

impl<Q: RetryQueue> OutboundSync<Q> {
    /// Creates engagements for new activities, associated with their deal, company and contact, one batch per
    /// engagement type.
    pub(crate) async fn sync_activities(
        &self,
        activities: &[ActivityRecord],
        by_entity: &ByEntity,
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) -> Result<(), AppError> {
        let mut creates: BTreeMap<&'static str, Vec<NewEngagement<'_>>> = BTreeMap::new();
        for activity in activities {
            let items = items_of(by_entity, EntityType::Activity, activity.id);
            if outcome.out_of_time() {
                outcome.postpone(items);
                continue;
            }
            if let Some((object, create)) = self.prepare_engagement(activity, items, outcome, report).await {
                creates.entry(object).or_default().push(create);
            }
        }
        for (object, batch) in creates {
            if outcome.out_of_time() {
                for (activity, ..) in &batch {
                    outcome.postpone(items_of(by_entity, EntityType::Activity, activity.id));
                }
                continue;
            }
            self.create_engagements(object, batch, by_entity, outcome, report).await;
        }
        Ok(())
    }

    /// The engagement to create for `activity`, or `None` when its items are settled here: local-only types and
    /// engagements already created complete, activities whose targets are not in HubSpot wait, and one an earlier
    /// attempt already created is linked.
    async fn prepare_engagement<'a>(
        &self,
        activity: &'a ActivityRecord,
        items: &[SyncItem],
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) -> Option<(&'static str, NewEngagement<'a>)> {
        let (Some(object), Some(properties)) = (
            engagement_object(&activity.activity_type),
            activity_properties(activity),
        ) else {
            outcome.complete(items);
            return None;
        };
        if activity.hubspot_engagement_id.is_some() {
            // Engagements are created once; later local edits stay local.
            report.unchanged += items.len() as u64;
            outcome.complete(items);
            return None;
        }
        let object_type = engagement_type(object);
        let associations = match engagement_associations(activity, object_type) {
            Ok(associations) => associations,
            Err(waiting) => {
                outcome.deferred.push((items.iter().map(|i| i.id).collect(), waiting));
                return None;
            }
        };
        // An earlier attempt, or a run that died holding this row, may have created the engagement already.
        if items.iter().any(|i| i.attempts > 0 || i.taken_over) {
            match self.find_engagement(object_type, activity.id).await {
                Ok(Some(hubspot_id)) => {
                    outcome.complete(items);
                    outcome
                        .synced
                        .push(engagement_synced(activity.id, object, hubspot_id, properties));
                    return None;
                }
                Ok(None) => {}
                Err(error) => {
                    outcome.fail_hubspot(items.to_vec(), "", &error);
                    return None;
                }
            }
        }
        let input = CreateInput {
            properties: properties.clone(),
            associations,
        };
        Some((object, (activity, properties, input)))
    }

    /// Creates one type's engagements in one batch and records the answers.
    async fn create_engagements(
        &self,
        object: &'static str,
        batch: Vec<NewEngagement<'_>>,
        by_entity: &ByEntity,
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) {
        let inputs: Vec<CreateInput> = batch.iter().map(|(_, _, input)| input.clone()).collect();
        let results = match self.hubspot.batch_create(engagement_type(object), &inputs).await {
            Ok(answer) => answer.into_results(),
            Err(error) => vec![Err(error); inputs.len()],
        };
        for ((activity, properties, _), result) in batch.into_iter().zip(results) {
            let items = items_of(by_entity, EntityType::Activity, activity.id).to_vec();
            match result {
                Ok(created) => {
                    report.engagements_created += 1;
                    outcome.complete(&items);
                    outcome
                        .synced
                        .push(engagement_synced(activity.id, object, created.id, properties));
                }
                Err(error) => outcome.fail_hubspot(items, "", &error),
            }
        }
    }

    /// An engagement an earlier attempt created, found by its `crmsync_id` (search lags by seconds; retries come
    /// later than that).
    async fn find_engagement(
        &self,
        object_type: ObjectType,
        activity_id: Uuid,
    ) -> Result<Option<String>, HubSpotError> {
        let request = SearchRequest {
            filter_groups: vec![FilterGroup {
                filters: vec![Filter::new(LOCAL_ID_PROPERTY, Operator::Eq, activity_id.to_string())],
            }],
            limit: 1,
            ..SearchRequest::default()
        };
        Ok(self
            .hubspot
            .search_page(object_type, &request, None)
            .await?
            .results
            .into_iter()
            .next()
            .map(|o| o.id))
    }
}

/// The associations of an engagement with the activity's deal, company and contact; `Err` with the reason when one
/// of them is not in HubSpot yet.
fn engagement_associations(activity: &ActivityRecord, object_type: ObjectType) -> Result<Vec<NewAssociation>, String> {
    let mut associations = Vec::new();
    let mut waiting = None;
    for (target, target_type) in [
        (&activity.deal, ObjectType::Deals),
        (&activity.company, ObjectType::Companies),
        (&activity.contact, ObjectType::Contacts),
    ] {
        match target {
            Some((_, Some(hubspot_id))) => {
                if let Some(type_id) = crmsync_hubspot::associations::default_type_id(object_type, target_type) {
                    associations.push(NewAssociation {
                        to_id: hubspot_id.clone(),
                        types: vec![AssociationSpec::hubspot_defined(type_id)],
                    });
                }
            }
            Some((local, None)) => waiting = Some(format!("waiting for {target_type} {local} to reach HubSpot")),
            None => {}
        }
    }
    match waiting {
        Some(reason) => Err(reason),
        None => Ok(associations),
    }
}

fn engagement_synced(activity_id: Uuid, object: &'static str, hubspot_id: String, written: Properties) -> SyncedEntity {
    SyncedEntity {
        entity_type: EntityType::Activity,
        entity_id: activity_id,
        object_type: object,
        hubspot_id,
        written,
        settled: true,
    }
}

/// The client's object type for an engagement object name from the domain.
pub(crate) fn engagement_type(object: &str) -> ObjectType {
    match object {
        "calls" => ObjectType::Calls,
        "emails" => ObjectType::Emails,
        "meetings" => ObjectType::Meetings,
        "tasks" => ObjectType::Tasks,
        _ => ObjectType::Notes,
    }
}
