//! The one "send what changed" path for companies, contacts and deals: hash the properties, complete what is
//! unchanged, postpone what the deadline leaves unsent, batch-upsert the rest on `crmsync_id`, tally, and record
//! what HubSpot accepted. Each entity's own part stays small: [`Outbound`] describes it, a deal waits for its
//! company and needs the pipeline, a contact and a deal get their primary company association.

use std::collections::HashMap;

use crmsync_app::AppError;
use crmsync_db::sync::{CompanyState, SyncedEntity};
use crmsync_domain::DomainError;
use crmsync_domain::failure::FailureClass;
use crmsync_domain::ports::RetryQueue;
use crmsync_domain::sync::{
    COMPANY_ASSOCIATION, CompanyRecord, ContactRecord, DealRecord, EntityType, Properties, SyncItem,
    changed_properties, company_properties, contact_properties, deal_properties, value_hash,
};
use crmsync_domain::webhook::ObjectKind;
use crmsync_hubspot::associations::{AssociationInput, AssociationSpec, type_ids};
use crmsync_hubspot::objects::NewAssociation;
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use crmsync_hubspot::{CreateInput, ErrorClass, HubSpotError, ObjectType, PermanentKind, UpdateInput, UpsertInput};
use uuid::Uuid;

use crate::drain::OutboundSync;
use crate::round::{ByEntity, RoundOutcome, items_of};
use crate::settings::SyncReport;

/// One entity type's part in the send path.
pub(crate) trait Outbound {
    const ENTITY: EntityType;
    const OBJECT: ObjectType;
    /// The HubSpot association type of its primary company, when it has one.
    const COMPANY_ASSOCIATION_TYPE: Option<u32> = None;
    /// HubSpot deduplicates it by a unique property (contacts by email): an upsert that meets an existing record
    /// (409 with its id) updates that record instead.
    const UPDATE_ON_CONFLICT: bool = false;
    /// The deadline is checked before anything is read (contacts), not only before the upsert.
    const DEADLINE_FIRST: bool = false;
    /// A record's first attempt at being created goes as a batch create carrying its company association (deals:
    /// one request instead of an upsert and an association batch). Safe to repeat because `crmsync_id` is unique in
    /// HubSpot: a create that meets an earlier attempt's record fails, and falls back to the upsert.
    const CREATE_WITH_ASSOCIATION: bool = false;

    fn id(&self) -> Uuid;
    fn hubspot_id(&self) -> Option<&String>;
    /// The local company whose HubSpot record this one is associated with.
    fn company_id(&self) -> Option<Uuid> {
        None
    }
    fn tally(report: &mut SyncReport, created: bool);
}

impl Outbound for CompanyRecord {
    const ENTITY: EntityType = EntityType::Company;
    const OBJECT: ObjectType = ObjectType::Companies;

    fn id(&self) -> Uuid {
        self.id
    }
    fn hubspot_id(&self) -> Option<&String> {
        self.hubspot_company_id.as_ref()
    }
    fn tally(report: &mut SyncReport, created: bool) {
        *if created {
            &mut report.companies_created
        } else {
            &mut report.companies_updated
        } += 1;
    }
}

impl Outbound for ContactRecord {
    const ENTITY: EntityType = EntityType::Contact;
    const OBJECT: ObjectType = ObjectType::Contacts;
    const COMPANY_ASSOCIATION_TYPE: Option<u32> = Some(type_ids::CONTACT_TO_COMPANY_PRIMARY);
    const UPDATE_ON_CONFLICT: bool = true;
    const DEADLINE_FIRST: bool = true;

    fn id(&self) -> Uuid {
        self.id
    }
    fn hubspot_id(&self) -> Option<&String> {
        self.hubspot_contact_id.as_ref()
    }
    fn company_id(&self) -> Option<Uuid> {
        self.company_id
    }
    fn tally(report: &mut SyncReport, created: bool) {
        *if created {
            &mut report.contacts_created
        } else {
            &mut report.contacts_updated
        } += 1;
    }
}

impl Outbound for DealRecord {
    const ENTITY: EntityType = EntityType::Deal;
    const OBJECT: ObjectType = ObjectType::Deals;
    const COMPANY_ASSOCIATION_TYPE: Option<u32> = Some(type_ids::DEAL_TO_COMPANY_PRIMARY);
    const CREATE_WITH_ASSOCIATION: bool = true;

    fn id(&self) -> Uuid {
        self.id
    }
    fn hubspot_id(&self) -> Option<&String> {
        self.hubspot_deal_id.as_ref()
    }
    fn company_id(&self) -> Option<Uuid> {
        self.company_id
    }
    fn tally(report: &mut SyncReport, created: bool) {
        *if created {
            &mut report.deals_created
        } else {
            &mut report.deals_updated
        } += 1;
    }
}

/// What the deals and contacts of a round know about the companies they are associated with.
pub(crate) struct CompanyLinks<'a> {
    /// HubSpot ids of the companies in HubSpot (recorded before the round, or written by it).
    pub hubspot_ids: &'a HashMap<Uuid, String>,
    /// Companies that cannot be written, with the reason.
    pub blocked: &'a HashMap<Uuid, String>,
}

/// A record to send: its changed properties, and the company to associate it with when that changed.
struct Change<'r, R> {
    record: &'r R,
    changed: Properties,
    association: Option<String>,
}

/// A record HubSpot accepted: what to write back, its items, and the company association it still needs.
type Upserted = (SyncedEntity, Vec<SyncItem>, Option<String>);

/// The round's context of one send: its items by entity, its results, and the run's report.
pub(crate) struct Round<'a> {
    pub by_entity: &'a ByEntity,
    pub outcome: &'a mut RoundOutcome,
    pub report: &'a mut SyncReport,
}

impl<'a> Round<'a> {
    fn items<R: Outbound>(&self, record: &R) -> &'a [SyncItem] {
        items_of(self.by_entity, R::ENTITY, record.id())
    }
}

impl<Q: RetryQueue> OutboundSync<Q> {
    /// Sends the companies that changed, except those `held_back` (brought in for their deals, but they come on
    /// their own or cannot be written); returns the HubSpot id of every company known after this step. Ids already
    /// recorded count as known before the upsert, so a company whose update fails still has its deals associated.
    pub(crate) async fn send_companies(
        &self,
        companies: &[CompanyRecord],
        held_back: &HashMap<Uuid, CompanyState>,
        by_entity: &ByEntity,
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) -> Result<HashMap<Uuid, String>, AppError> {
        let mut hubspot_ids: HashMap<Uuid, String> = companies
            .iter()
            .filter_map(|c| c.hubspot_company_id.clone().map(|id| (c.id, id)))
            .collect();
        let to_send: Vec<&CompanyRecord> = companies.iter().filter(|c| !held_back.contains_key(&c.id)).collect();
        let mut round = Round {
            by_entity,
            outcome,
            report,
        };
        let sent = self
            .send_changed(&to_send, |c| Ok(company_properties(c)), None, &mut round)
            .await?;
        hubspot_ids.extend(sent);
        Ok(hubspot_ids)
    }

    /// Sends the contacts that changed and sets their primary company association. A contact whose email already
    /// exists in HubSpot (HubSpot deduplicates contacts by email) is linked to that record instead.
    pub(crate) async fn send_contacts(
        &self,
        contacts: &[ContactRecord],
        links: &CompanyLinks<'_>,
        by_entity: &ByEntity,
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) -> Result<(), AppError> {
        let contacts: Vec<&ContactRecord> = contacts.iter().collect();
        let mut round = Round {
            by_entity,
            outcome,
            report,
        };
        self.send_changed(&contacts, |c| Ok(contact_properties(c)), Some(links), &mut round)
            .await?;
        Ok(())
    }

    /// Sends the deals that changed and sets their primary company association. Without the pipeline
    /// hubspot-setup records, deals wait: their stages have no HubSpot ids yet.
    pub(crate) async fn send_deals(
        &self,
        deals: &[DealRecord],
        links: &CompanyLinks<'_>,
        by_entity: &ByEntity,
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) -> Result<(), AppError> {
        if deals.is_empty() {
            return Ok(());
        }
        let Some(pipeline) = self.store.pipeline_map().await? else {
            let ids = deals
                .iter()
                .flat_map(|d| items_of(by_entity, EntityType::Deal, d.id))
                .map(|i| i.id)
                .collect();
            outcome
                .deferred
                .push((ids, "no HubSpot pipeline recorded: run `crmsync hubspot-setup`".into()));
            return Ok(());
        };
        let deals: Vec<&DealRecord> = deals.iter().collect();
        let mut round = Round {
            by_entity,
            outcome,
            report,
        };
        self.send_changed(&deals, |d| deal_properties(d, &pipeline), Some(links), &mut round)
            .await?;
        Ok(())
    }

    /// The send path: what changed is upserted, then recorded (with its company association when `R` has one).
    /// `links` is what the round knows about companies, for records associated with one. Returns the (local id,
    /// HubSpot id) of each record upserted.
    async fn send_changed<R: Outbound>(
        &self,
        records: &[&R],
        properties: impl Fn(&R) -> Result<Properties, DomainError>,
        links: Option<&CompanyLinks<'_>>,
        round: &mut Round<'_>,
    ) -> Result<Vec<(Uuid, String)>, AppError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if R::DEADLINE_FIRST && round.outcome.out_of_time() {
            self.postpone(records.iter().copied(), round);
            return Ok(Vec::new());
        }
        let changes = self.changes(records, properties, links, round).await?;
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        if round.outcome.out_of_time() {
            self.postpone(changes.iter().map(|c| c.record), round);
            return Ok(Vec::new());
        }
        let (mut sent, changes) = match R::COMPANY_ASSOCIATION_TYPE {
            Some(type_id) if R::CREATE_WITH_ASSOCIATION => self.create_with_association(changes, type_id, round).await,
            _ => (Vec::new(), changes),
        };
        let upserted = self.upsert_changes(&changes, round).await;
        sent.extend(upserted.iter().map(|(e, ..)| (e.entity_id, e.hubspot_id.clone())));
        match R::COMPANY_ASSOCIATION_TYPE {
            Some(type_id) => {
                self.associate_with_companies(R::OBJECT, type_id, upserted, round.outcome, round.report)
                    .await
            }
            None => {
                for (entity, items, _) in upserted {
                    round.outcome.complete(&items);
                    round.outcome.synced.push(entity);
                }
            }
        }
        Ok(sent)
    }

    fn postpone<'r, R: Outbound + 'r>(&self, records: impl IntoIterator<Item = &'r R>, round: &mut Round<'_>) {
        for record in records {
            let items = items_of(round.by_entity, R::ENTITY, record.id());
            round.outcome.postpone(items);
        }
    }

    /// What changed since the last sync, per record. Unchanged records complete here; records whose company is not
    /// in HubSpot wait for it (or fail when it cannot be written); records whose properties cannot be built fail.
    async fn changes<'r, R: Outbound>(
        &self,
        records: &[&'r R],
        properties: impl Fn(&R) -> Result<Properties, DomainError>,
        links: Option<&CompanyLinks<'_>>,
        round: &mut Round<'_>,
    ) -> Result<Vec<Change<'r, R>>, AppError> {
        let ids: Vec<Uuid> = records.iter().map(|r| r.id()).collect();
        let hashes = self.store.property_hashes(R::ENTITY, &ids).await?;
        let mut changes = Vec::new();
        for &record in records {
            let items = round.items(record);
            let company = match links {
                Some(links) => match company_or_wait(record.company_id(), links, items, round.outcome) {
                    Some(company) => company,
                    None => continue,
                },
                None => None,
            };
            let current = match properties(record) {
                Ok(current) => current,
                Err(error) => {
                    round
                        .outcome
                        .fail(items.to_vec(), error.to_string(), FailureClass::Permanent);
                    continue;
                }
            };
            let last = hashes.get(&record.id()).cloned().unwrap_or_default();
            let current = self.sendable(R::ENTITY, current, record.hubspot_id().is_none(), &last);
            let changed = changed_properties(&current, &last);
            let association = company
                .filter(|id| record.hubspot_id().is_none() || last.get(COMPANY_ASSOCIATION) != Some(&value_hash(id)));
            if changed.is_empty() && association.is_none() && record.hubspot_id().is_some() {
                round.report.unchanged += items.len() as u64;
                round.outcome.complete(items);
            } else {
                changes.push(Change {
                    record,
                    changed,
                    association,
                });
            }
        }
        Ok(changes)
    }

    /// The properties the field policies let the sync send: one HubSpot owns goes only with the record's creation,
    /// an ignored one never, and so on ([`crmsync_domain::policy::FieldPolicies::sends`]).
    pub(crate) fn sendable(
        &self,
        entity: EntityType,
        properties: Properties,
        creating: bool,
        last_written: &HashMap<String, String>,
    ) -> Properties {
        let Some(kind) = ObjectKind::parse_object_type(entity.as_str()) else {
            return properties;
        };
        let blank_hash = value_hash("");
        properties
            .into_iter()
            .filter(|(name, value)| {
                let hubspot_holds_blank = last_written.get(name).is_none_or(|hash| *hash == blank_hash);
                self.settings
                    .field_policies
                    .sends(kind, name, value, creating, hubspot_holds_blank)
            })
            .collect()
    }

    /// Creates, with their company association in the same request, the records in `changes` making their first
    /// attempt at creation (not in HubSpot, with a company, every item on its first attempt and not taken over from
    /// a crashed run) and records what HubSpot created. Returns the (local id, HubSpot id) of each record created,
    /// and the changes left for the upsert: the rest, and the creates HubSpot refused as a whole (a record an earlier
    /// attempt made after all: `crmsync_id` is unique, so the upsert finds it). A retryable failure fails the items:
    /// their retry goes by upsert.
    async fn create_with_association<'r, R: Outbound>(
        &self,
        changes: Vec<Change<'r, R>>,
        type_id: u32,
        round: &mut Round<'_>,
    ) -> (Vec<(Uuid, String)>, Vec<Change<'r, R>>) {
        let (creates, mut rest): (Vec<Change<'r, R>>, Vec<Change<'r, R>>) = changes.into_iter().partition(|change| {
            change.record.hubspot_id().is_none() && change.association.is_some() && {
                let items = round.items(change.record);
                !items.is_empty() && items.iter().all(|item| item.attempts == 0 && !item.taken_over)
            }
        });
        if creates.is_empty() {
            return (Vec::new(), rest);
        }
        let inputs: Vec<CreateInput> = creates
            .iter()
            .map(|change| {
                let mut properties = change.changed.clone();
                properties.insert(LOCAL_ID_PROPERTY.to_owned(), change.record.id().to_string());
                CreateInput {
                    properties,
                    associations: change
                        .association
                        .iter()
                        .map(|company| NewAssociation {
                            to_id: company.clone(),
                            types: vec![AssociationSpec::hubspot_defined(type_id)],
                        })
                        .collect(),
                }
            })
            .collect();
        let results = match self.hubspot.batch_create(R::OBJECT, &inputs).await {
            Ok(outcome) => outcome.into_results(),
            Err(error) => vec![Err(error); inputs.len()],
        };
        let mut created = Vec::new();
        for (change, result) in creates.into_iter().zip(results) {
            let items = round.items(change.record).to_vec();
            match result {
                Ok(object) => {
                    R::tally(round.report, true);
                    round.report.associations += 1;
                    let mut written = change.changed.clone();
                    written.insert(
                        COMPANY_ASSOCIATION.to_owned(),
                        change.association.clone().unwrap_or_default(),
                    );
                    created.push((change.record.id(), object.id.clone()));
                    round.outcome.complete(&items);
                    round.outcome.synced.push(SyncedEntity {
                        entity_type: R::ENTITY,
                        entity_id: change.record.id(),
                        object_type: R::OBJECT.as_str(),
                        hubspot_id: object.id,
                        written,
                        settled: true,
                    });
                }
                Err(error) if matches!(error.class(), ErrorClass::Permanent(_)) => {
                    tracing::info!(entity = %R::ENTITY, id = %change.record.id(), %error,
                        "create refused; upserting it instead");
                    rest.push(change);
                }
                Err(error) => round.outcome.fail_hubspot(items, "", &error),
            }
        }
        (created, rest)
    }

    /// Batch-upserts the changes and tallies the answers: what HubSpot accepted, to be recorded; the rest fail.
    async fn upsert_changes<R: Outbound>(&self, changes: &[Change<'_, R>], round: &mut Round<'_>) -> Vec<Upserted> {
        let inputs: Vec<UpsertInput> = changes
            .iter()
            .map(|change| UpsertInput {
                id: change.record.id().to_string(),
                properties: change.changed.clone(),
            })
            .collect();
        let mut results = self.upsert(R::OBJECT, &inputs).await;
        if R::UPDATE_ON_CONFLICT {
            self.update_conflicts(R::OBJECT, &inputs, &mut results).await;
        }
        let mut upserted = Vec::new();
        for (change, result) in changes.iter().zip(results) {
            let id = change.record.id();
            let items = round.items(change.record).to_vec();
            match result {
                Ok((hubspot_id, created)) => {
                    R::tally(round.report, created);
                    let entity = SyncedEntity {
                        entity_type: R::ENTITY,
                        entity_id: id,
                        object_type: R::OBJECT.as_str(),
                        hubspot_id,
                        written: change.changed.clone(),
                        settled: true,
                    };
                    upserted.push((entity, items, change.association.clone()));
                }
                Err(error) if items.is_empty() => {
                    tracing::warn!(entity = %R::ENTITY, id = %id, %error, "record brought in for its deals failed")
                }
                Err(error) => round.outcome.fail_hubspot(items, "", &error),
            }
        }
        upserted
    }

    /// Batch-upserts on `crmsync_id`; one result per input, in order: (HubSpot id, created).
    async fn upsert(
        &self,
        object_type: ObjectType,
        inputs: &[UpsertInput],
    ) -> Vec<Result<(String, bool), HubSpotError>> {
        match self.hubspot.batch_upsert(object_type, LOCAL_ID_PROPERTY, inputs).await {
            Ok(outcome) => outcome
                .into_results()
                .into_iter()
                .map(|r| r.map(|u| (u.object.id, u.created)))
                .collect(),
            Err(error) => vec![Err(error); inputs.len()],
        }
    }

    /// Upserts that met a record HubSpot already has under its unique property (a contact's email): updates that
    /// record by its id, writing our key onto it, and replaces the conflict with the update's answer.
    async fn update_conflicts(
        &self,
        object_type: ObjectType,
        inputs: &[UpsertInput],
        results: &mut [Result<(String, bool), HubSpotError>],
    ) {
        let conflicts: Vec<(usize, UpdateInput)> = results
            .iter()
            .enumerate()
            .filter_map(|(index, result)| match result.as_ref().err().map(HubSpotError::class) {
                Some(ErrorClass::Permanent(PermanentKind::Conflict {
                    existing_id: Some(existing),
                })) => {
                    let mut properties = inputs[index].properties.clone();
                    properties.insert(LOCAL_ID_PROPERTY.to_owned(), inputs[index].id.clone());
                    Some((
                        index,
                        UpdateInput {
                            id: existing,
                            properties,
                        },
                    ))
                }
                _ => None,
            })
            .collect();
        if conflicts.is_empty() {
            return;
        }
        let updates: Vec<UpdateInput> = conflicts.iter().map(|(_, input)| input.clone()).collect();
        let answers = match self.hubspot.batch_update(object_type, None, &updates).await {
            Ok(outcome) => outcome.into_results(),
            Err(error) => vec![Err(error); updates.len()],
        };
        for ((index, _), answer) in conflicts.into_iter().zip(answers) {
            results[index] = answer.map(|object| (object.id, false));
        }
    }

    /// Creates the primary company association of each upserted record that needs one (≤2,000 per call), then
    /// records the results: a record whose association failed keeps its HubSpot id and its properties' new hashes,
    /// is not `synced`, and only the association is retried.
    async fn associate_with_companies(
        &self,
        from: ObjectType,
        type_id: u32,
        upserted: Vec<Upserted>,
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) {
        if outcome.out_of_time() && upserted.iter().any(|(_, _, company)| company.is_some()) {
            // The properties are in HubSpot (their hashes are kept); the association is sent on the next run, and
            // the record is not synced until then.
            for (mut entity, items, company) in upserted {
                match company {
                    Some(_) => {
                        entity.settled = false;
                        outcome.postpone(&items);
                    }
                    None => outcome.complete(&items),
                }
                outcome.synced.push(entity);
            }
            return;
        }
        let inputs: Vec<AssociationInput> = upserted
            .iter()
            .filter_map(|(entity, _, company)| {
                company.as_ref().map(|company| AssociationInput {
                    from_id: entity.hubspot_id.clone(),
                    to_id: company.clone(),
                    types: vec![AssociationSpec::hubspot_defined(type_id)],
                })
            })
            .collect();
        let mut results = match self
            .hubspot
            .batch_create_associations(from, ObjectType::Companies, &inputs)
            .await
        {
            Ok(outcome) => outcome.into_results().into_iter(),
            Err(error) => vec![Err(error); inputs.len()].into_iter(),
        };
        for (mut entity, items, company) in upserted {
            let result = match &company {
                Some(_) => results.next().unwrap_or(Ok(())),
                None => Ok(()),
            };
            match (result, company) {
                (Ok(()), Some(company)) => {
                    report.associations += 1;
                    entity.written.insert(COMPANY_ASSOCIATION.to_owned(), company);
                    outcome.complete(&items);
                }
                (Ok(()), None) => outcome.complete(&items),
                // Creating an association is idempotent: an answer without a result for it (outcome unknown) is
                // retried like any retryable failure. Until it is done the record is not synced.
                (Err(error), _) => {
                    entity.settled = false;
                    outcome.fail_hubspot(items, "association: ", &error);
                }
            }
            outcome.synced.push(entity);
        }
    }
}

/// The company's HubSpot id when the record has a company that is in HubSpot (`Some(Some(id))`) or has no company
/// (`Some(None)`). `None` after deferring the items when the company is not in HubSpot yet, or failing them when it
/// cannot be written (deleted, or its own sync item is dead): they would wait forever.
fn company_or_wait(
    company_id: Option<Uuid>,
    links: &CompanyLinks<'_>,
    items: &[SyncItem],
    outcome: &mut RoundOutcome,
) -> Option<Option<String>> {
    let Some(company_id) = company_id else {
        return Some(None);
    };
    if let Some(id) = links.hubspot_ids.get(&company_id) {
        return Some(Some(id.clone()));
    }
    match links.blocked.get(&company_id) {
        Some(reason) => outcome.fail(
            items.to_vec(),
            format!("company {company_id} cannot be synced: {reason}"),
            FailureClass::Permanent,
        ),
        None => outcome
            .waiting_for_company
            .extend(items.iter().map(|i| (i.id, company_id))),
    }
    None
}
