//! The outbound sync use case: drain due sync_queue rows to HubSpot in batches. Replaces the guide's Step C
//! (10 rows per run, one call each).
//!
//! A round claims due rows (lease + SKIP LOCKED), coalesces them per entity, writes companies first (batch
//! upsert on `crmsync_id`, ≤100 per call), then deals with their primary company association (≤2,000 per call),
//! sends only the properties whose value hash changed since the last successful sync, and writes the results back
//! in one transaction per entity type. Retryable failures back off (Postgres `next_attempt_at`, plus a delayed
//! SQS message when a retry queue is configured); permanent ones fail only their own items.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crmsync_db::PgSyncStore;
use crmsync_db::sync::{CompanyState, RETRY_DUE_SLACK, SyncedEntity};
use crmsync_domain::ports::RetryQueue;
use crmsync_domain::sync::{
    ActivityRecord, COMPANY_ASSOCIATION, CompanyRecord, ContactRecord, DealRecord, EntityType, MAX_SQS_DELAY,
    Properties, RetryDecision, RetryMessage, RetryPolicy, SyncItem, activity_properties, changed_properties,
    company_properties, contact_properties, deal_properties, engagement_object,
};
use crmsync_hubspot::associations::{AssociationInput, AssociationSpec, type_ids};
use crmsync_hubspot::objects::NewAssociation;
use crmsync_hubspot::search::{Filter, FilterGroup, Operator, SearchRequest};
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use crmsync_hubspot::{CreateInput, ErrorClass, HubSpotClient, HubSpotError, ObjectType, UpdateInput, UpsertInput};
use serde::Serialize;
use uuid::Uuid;

use crmsync_app::AppError;

/// How long a deal waits before its next try when its company is not in HubSpot yet. Not an attempt.
pub const WAIT_FOR_COMPANY: Duration = Duration::from_secs(60);

/// Tunables of a drain.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Rows claimed per round.
    pub batch_size: i64,
    /// How long a claim holds its rows; a crashed run's rows come back after it.
    pub lease: Duration,
    pub retry: RetryPolicy,
    /// This process's name. Each claim writes `<worker>/<claim id>` to `sync_queue.locked_by`, and write-backs
    /// check it, so a run whose lease expired cannot overwrite the result of the run that took its rows over.
    pub worker: String,
}

/// A name unique to this process: pids repeat across Lambda containers (often pid 1 or a small number).
fn process_worker_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| format!("crmsync-{}-{}", std::process::id(), Uuid::new_v4().simple()))
        .clone()
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            batch_size: 5_000,
            lease: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            worker: process_worker_name(),
        }
    }
}

/// What a drain did. Serialized into the run's log line and its crmsync.sync_runs row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub rounds: u64,
    pub claimed: u64,
    pub companies_created: u64,
    pub companies_updated: u64,
    pub deals_created: u64,
    pub deals_updated: u64,
    pub contacts_created: u64,
    pub contacts_updated: u64,
    pub engagements_created: u64,
    pub associations: u64,
    /// Items completed without a HubSpot call: nothing changed since the last sync.
    pub unchanged: u64,
    /// Items put back to wait for another record (a deal for its company).
    pub deferred: u64,
    /// Items claimed but not sent before the time budget ran out: due again at once, no attempt counted.
    pub postponed: u64,
    /// Items failed with a retryable error, to be retried.
    pub failed: u64,
    /// Items that are dead: attempts spent, or a permanent error.
    pub dead: u64,
    /// Retry messages sent to SQS.
    pub retry_messages: u64,
    /// True when HubSpot's daily limit stopped the run.
    pub daily_limit_reached: bool,
    /// HubSpot requests this run sent, and 429s it got. From the client's counters, which are per process: runs
    /// that overlap in one process (`crmsync serve`'s schedule and retry poller) count each other's too.
    pub hubspot_requests: u64,
    pub hubspot_429: u64,
    pub elapsed_ms: u64,
}

/// What a dry run would send, per entity type: `{"company": {"create": 2, "update": 1, "unchanged": 0}, ...}`.
pub type DryRunReport = BTreeMap<String, BTreeMap<String, u64>>;

/// The outbound sync, built once per process and lent to handlers.
#[derive(Debug, Clone)]
pub struct OutboundSync<Q> {
    store: PgSyncStore,
    hubspot: HubSpotClient,
    retry_queue: Option<Q>,
    settings: SyncSettings,
    /// Applies waiting webhook events before each drain, and inbox retry messages.
    inbox: Option<crmsync_inbound::Applier>,
}

/// Per-item results of one round, gathered before they are written.
#[derive(Default)]
struct RoundOutcome {
    /// The claim's `locked_by`: write-backs only change rows still held under it.
    lease: String,
    /// No HubSpot batch starts after this; items not sent by then go back at once.
    deadline: Option<Instant>,
    synced: Vec<SyncedEntity>,
    completed: Vec<Uuid>,
    /// (items, error text, class)
    failures: Vec<(Vec<SyncItem>, String, ErrorClass)>,
    deferred: Vec<(Vec<Uuid>, String)>,
    /// (item, company) for items that wait for their company to reach HubSpot.
    waiting_for_company: Vec<(Uuid, Uuid)>,
    /// Items whose attempts ran out through takeovers: the runs holding them kept dying.
    crashed: Vec<SyncItem>,
    /// Items not sent before the deadline.
    unsent: Vec<Uuid>,
}

impl RoundOutcome {
    /// True once the round's deadline has passed: no new HubSpot batch may start.
    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Puts these items back unsent (the deadline passed before their batch started).
    fn postpone<'a>(&mut self, items: impl IntoIterator<Item = &'a SyncItem>) {
        self.unsent.extend(items.into_iter().map(|i| i.id));
    }
}

impl<Q: RetryQueue> OutboundSync<Q> {
    pub fn new(store: PgSyncStore, hubspot: HubSpotClient, retry_queue: Option<Q>, settings: SyncSettings) -> Self {
        Self {
            store,
            hubspot,
            retry_queue,
            settings,
            inbox: None,
        }
    }

    /// Also applies waiting webhook events (HubSpot's changes land before ours are sent) and handles the retry
    /// queue's inbox messages.
    pub fn with_inbox(mut self, applier: crmsync_inbound::Applier) -> Self {
        self.inbox = Some(applier);
        self
    }

    pub fn store(&self) -> &PgSyncStore {
        &self.store
    }

    pub fn hubspot(&self) -> &HubSpotClient {
        &self.hubspot
    }

    /// Drains due rows until the queue is empty or `budget` is spent, and records the run.
    pub async fn drain(&self, trigger: &str, budget: Duration) -> Result<SyncReport, AppError> {
        self.drain_observed(trigger, budget, |_| {}).await
    }

    /// [`OutboundSync::drain`], calling `on_round` with the running totals after each round (progress display).
    pub async fn drain_observed(
        &self,
        trigger: &str,
        budget: Duration,
        on_round: impl Fn(&SyncReport),
    ) -> Result<SyncReport, AppError> {
        let started = Instant::now();
        if let Some(applier) = &self.inbox {
            // HubSpot's changes first, so a drain never re-sends a value a salesperson just replaced.
            if let Err(error) = crmsync_inbound::apply_pending_inbox(applier, crmsync_inbound::DEFAULT_PASS_LIMIT).await
            {
                tracing::warn!(%error, "could not apply waiting webhook events before the drain");
            }
        }
        let hubspot_before = self.hubspot.stats();
        let run_id = self.store.start_run(trigger, self.abandon_after()).await?;
        let mut report = SyncReport::default();
        let result = self.drain_rounds(started + budget, &on_round, &mut report).await;
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.count_requests(&mut report, &hubspot_before);
        self.finish(run_id, trigger, &report, result.as_ref().err()).await;
        result.map(|()| report)
    }

    async fn drain_rounds(
        &self,
        deadline: Instant,
        on_round: &impl Fn(&SyncReport),
        report: &mut SyncReport,
    ) -> Result<(), AppError> {
        while Instant::now() < deadline && !report.daily_limit_reached {
            let lease = self.lease_holder();
            let items = self
                .store
                .claim(self.settings.batch_size, self.settings.lease, &lease)
                .await?;
            if items.is_empty() {
                break;
            }
            report.rounds += 1;
            self.process(items, report, lease, Some(deadline)).await?;
            on_round(report);
        }
        Ok(())
    }

    /// A fresh `locked_by` for one claim: this process's name and a claim id.
    fn lease_holder(&self) -> String {
        format!("{}/{}", self.settings.worker, Uuid::new_v4().simple())
    }

    /// Runs still 'running' after this long were killed or timed out: twice the lease, since a live run renews
    /// its claim every round.
    fn abandon_after(&self) -> Duration {
        self.settings.lease * 2
    }

    /// Retries the named rows now (the SQS path), each only if its attempts still equal the given ones and it is
    /// due (see [`PgSyncStore::claim_ids`]). Returns the report, the ids it claimed, and the statuses afterwards
    /// of all the named rows, so the caller can answer per message.
    pub async fn retry_items(
        &self,
        wanted: &[(Uuid, i32)],
    ) -> Result<(SyncReport, Vec<Uuid>, HashMap<Uuid, String>), AppError> {
        let started = Instant::now();
        let hubspot_before = self.hubspot.stats();
        let run_id = self.store.start_run("retry_queue", self.abandon_after()).await?;
        let mut report = SyncReport::default();
        let result = self.retry_round(wanted, &mut report).await;
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.count_requests(&mut report, &hubspot_before);
        self.finish(run_id, "retry_queue", &report, result.as_ref().err()).await;
        result.map(|(claimed, statuses)| (report, claimed, statuses))
    }

    async fn retry_round(
        &self,
        wanted: &[(Uuid, i32)],
        report: &mut SyncReport,
    ) -> Result<(Vec<Uuid>, HashMap<Uuid, String>), AppError> {
        let lease = self.lease_holder();
        let items = self.store.claim_ids(wanted, self.settings.lease, &lease).await?;
        let claimed: Vec<Uuid> = items.iter().map(|i| i.id).collect();
        if !items.is_empty() {
            report.rounds = 1;
            self.process(items, report, lease, None).await?;
        }
        let ids: Vec<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
        Ok((claimed, self.store.statuses(&ids).await?))
    }

    /// This run's share of the client's counters: the difference from a snapshot taken when it started.
    fn count_requests(&self, report: &mut SyncReport, before: &crmsync_hubspot::ClientStats) {
        let now = self.hubspot.stats();
        report.hubspot_requests = now.requests_sent.saturating_sub(before.requests_sent);
        report.hubspot_429 = now.responses_429.saturating_sub(before.responses_429);
    }

    async fn finish(&self, run_id: Uuid, trigger: &str, report: &SyncReport, error: Option<&AppError>) {
        let status = match (error, report.failed + report.dead) {
            (Some(_), _) => "failed",
            (None, 0) => "succeeded",
            (None, _) => "partial",
        };
        let counts = serde_json::to_value(report).unwrap_or_default();
        let error_text = error.map(|e| format!("{e}: {:?}", std::error::Error::source(e)));
        tracing::info!(
            run_id = %run_id,
            trigger,
            status,
            claimed = report.claimed,
            companies_created = report.companies_created,
            companies_updated = report.companies_updated,
            deals_created = report.deals_created,
            deals_updated = report.deals_updated,
            contacts_created = report.contacts_created,
            contacts_updated = report.contacts_updated,
            engagements_created = report.engagements_created,
            associations = report.associations,
            unchanged = report.unchanged,
            deferred = report.deferred,
            postponed = report.postponed,
            failed = report.failed,
            dead = report.dead,
            retry_messages = report.retry_messages,
            elapsed_ms = report.elapsed_ms,
            hubspot_requests = report.hubspot_requests,
            hubspot_429 = report.hubspot_429,
            "sync run finished"
        );
        if let Err(write_error) = self
            .store
            .finish_run(run_id, status, &counts, error_text.as_deref())
            .await
        {
            tracing::error!(error = %write_error, "could not record the sync run");
        }
    }

    /// Reports what a drain would create or update, per entity type, without claiming rows or calling HubSpot.
    pub async fn dry_run(&self) -> Result<DryRunReport, AppError> {
        let items = self.store.peek_due(100_000).await?;
        let mut report = DryRunReport::new();
        let mut count = |entity: EntityType, what: &str| {
            *report
                .entry(entity.as_str().to_owned())
                .or_default()
                .entry(what.to_owned())
                .or_default() += 1;
        };
        let pipeline = self.store.pipeline_map().await?.unwrap_or_default();
        let companies = self
            .store
            .load_companies(&entity_ids(&items, EntityType::Company))
            .await?;
        let company_hashes = self
            .store
            .property_hashes(EntityType::Company, &entity_ids(&items, EntityType::Company))
            .await?;
        for company in &companies {
            let changed = changed_properties(
                &company_properties(company),
                &company_hashes.get(&company.id).cloned().unwrap_or_default(),
            );
            count(
                EntityType::Company,
                classify(company.hubspot_company_id.is_some(), changed.is_empty()),
            );
        }
        let deals = self.store.load_deals(&entity_ids(&items, EntityType::Deal)).await?;
        let deal_hashes = self
            .store
            .property_hashes(EntityType::Deal, &entity_ids(&items, EntityType::Deal))
            .await?;
        for deal in &deals {
            let properties = deal_properties(deal, &pipeline).unwrap_or_default();
            let changed = changed_properties(&properties, &deal_hashes.get(&deal.id).cloned().unwrap_or_default());
            count(
                EntityType::Deal,
                classify(deal.hubspot_deal_id.is_some(), changed.is_empty()),
            );
        }
        let contact_ids = entity_ids(&items, EntityType::Contact);
        let contact_hashes = self.store.property_hashes(EntityType::Contact, &contact_ids).await?;
        for contact in self.store.load_contacts(&contact_ids).await? {
            let last = contact_hashes.get(&contact.id).cloned().unwrap_or_default();
            let changed = changed_properties(&contact_properties(&contact), &last);
            count(
                EntityType::Contact,
                classify(contact.hubspot_contact_id.is_some(), changed.is_empty()),
            );
        }
        for activity in self
            .store
            .load_activities(&entity_ids(&items, EntityType::Activity))
            .await?
        {
            let sendable = engagement_object(&activity.activity_type).is_some();
            count(
                EntityType::Activity,
                if sendable {
                    classify(activity.hubspot_engagement_id.is_some(), true)
                } else {
                    "local_only"
                },
            );
        }
        Ok(report)
    }

    /// One round: companies first, then deals, then the write-back of each.
    /// `lease` is the claim's `locked_by`; no HubSpot batch starts after `deadline`.
    async fn process(
        &self,
        items: Vec<SyncItem>,
        report: &mut SyncReport,
        lease: String,
        deadline: Option<Instant>,
    ) -> Result<(), AppError> {
        report.claimed += items.len() as u64;
        let mut outcome = RoundOutcome {
            lease,
            deadline,
            ..RoundOutcome::default()
        };
        // A row taken over from runs that kept dying (killed, or timed out mid-batch) has spent its attempts there.
        let (crashed, items): (Vec<SyncItem>, Vec<SyncItem>) = items
            .into_iter()
            .partition(|i| i.taken_over && i.attempts >= self.settings.retry.max_attempts);
        outcome.crashed = crashed;
        let by_entity = coalesce(&items);

        let deals = self.store.load_deals(&ids_of(&by_entity, EntityType::Deal)).await?;
        let contacts = self
            .store
            .load_contacts(&ids_of(&by_entity, EntityType::Contact))
            .await?;
        // Deals and contacts whose company is not in HubSpot bring it into this round, so it is written first;
        // unless it comes on its own (its row backs off after a failure: the deal waits, and the company is not
        // re-sent every round) or cannot be written (deleted, or dead: the deal fails, saying why, not waits forever).
        let own_companies = ids_of(&by_entity, EntityType::Company);
        let mut company_ids: std::collections::HashSet<Uuid> = own_companies.iter().copied().collect();
        let referenced: Vec<Uuid> = deals
            .iter()
            .filter_map(|d| d.company_id)
            .chain(contacts.iter().filter_map(|c| c.company_id))
            .filter(|id| company_ids.insert(*id))
            .collect();
        let states = if referenced.is_empty() {
            HashMap::new()
        } else {
            self.store.company_states(&referenced).await?
        };
        let company_ids: Vec<Uuid> = company_ids.into_iter().collect();
        let companies = self.store.load_companies(&company_ids).await?;
        let company_hubspot_ids = self
            .sync_companies(&companies, &states, &by_entity, &mut outcome, report)
            .await?;
        self.write_back(&mut outcome, report).await?;

        let blocked: HashMap<Uuid, String> = states
            .into_iter()
            .filter_map(|(id, state)| match state {
                CompanyState::Blocked(reason) => Some((id, reason)),
                CompanyState::Queued => None,
            })
            .collect();
        let known = Companies {
            hubspot_ids: &company_hubspot_ids,
            blocked: &blocked,
        };
        self.sync_contacts(&contacts, &known, &by_entity, &mut outcome, report)
            .await?;
        self.sync_deals(&deals, &known, &by_entity, &mut outcome, report)
            .await?;
        self.write_back(&mut outcome, report).await?;

        // Activities last: their targets' HubSpot ids are read after the write-backs above.
        let activities = self
            .store
            .load_activities(&ids_of(&by_entity, EntityType::Activity))
            .await?;
        self.sync_activities(&activities, &by_entity, &mut outcome, report)
            .await?;

        // Items whose record no longer exists (deleted locally, deleted in HubSpot, or local-only) have nothing to
        // send.
        for ((entity_type, entity_id), items) in &by_entity {
            let exists = match entity_type {
                EntityType::Company => companies.iter().any(|c| c.id == *entity_id),
                EntityType::Deal => deals.iter().any(|d| d.id == *entity_id),
                EntityType::Contact => contacts.iter().any(|c| c.id == *entity_id),
                EntityType::Activity => activities.iter().any(|a| a.id == *entity_id),
            };
            if !exists {
                outcome.completed.extend(items.iter().map(|i| i.id));
            }
        }
        self.write_back(&mut outcome, report).await
    }

    /// Upserts the contacts that changed and sets their primary company association. A contact whose email
    /// already exists in HubSpot (HubSpot deduplicates contacts by email) is linked to that record instead.
    async fn sync_contacts(
        &self,
        contacts: &[ContactRecord],
        companies: &Companies<'_>,
        by_entity: &BTreeMap<(EntityType, Uuid), Vec<SyncItem>>,
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) -> Result<(), AppError> {
        if contacts.is_empty() {
            return Ok(());
        }
        if outcome.out_of_time() {
            for contact in contacts {
                outcome.postpone(items_of(by_entity, EntityType::Contact, contact.id));
            }
            return Ok(());
        }
        let ids: Vec<Uuid> = contacts.iter().map(|c| c.id).collect();
        let hashes = self.store.property_hashes(EntityType::Contact, &ids).await?;
        let mut to_send: Vec<(Uuid, Properties, Option<String>)> = Vec::new();
        for contact in contacts {
            let items = items_of(by_entity, EntityType::Contact, contact.id);
            let Some(company) = company_or_wait(contact.company_id, companies, items, outcome) else {
                continue;
            };
            let last = hashes.get(&contact.id).cloned().unwrap_or_default();
            let changed = changed_properties(&contact_properties(contact), &last);
            let association = company.filter(|id| {
                contact.hubspot_contact_id.is_none()
                    || last.get(COMPANY_ASSOCIATION) != Some(&crmsync_domain::sync::value_hash(id))
            });
            if changed.is_empty() && association.is_none() && contact.hubspot_contact_id.is_some() {
                report.unchanged += items.len() as u64;
                outcome.completed.extend(items.iter().map(|i| i.id));
            } else {
                to_send.push((contact.id, changed, association));
            }
        }
        if to_send.is_empty() {
            return Ok(());
        }
        if outcome.out_of_time() {
            for (id, ..) in &to_send {
                outcome.postpone(items_of(by_entity, EntityType::Contact, *id));
            }
            return Ok(());
        }
        let inputs: Vec<UpsertInput> = to_send
            .iter()
            .map(|(id, properties, _)| UpsertInput {
                id: id.to_string(),
                properties: properties.clone(),
            })
            .collect();
        let mut results = self.upsert(ObjectType::Contacts, &inputs).await;
        // An email HubSpot already knows: update that record by its id, writing our key onto it.
        let conflicts: Vec<(usize, UpdateInput)> = results
            .iter()
            .enumerate()
            .filter_map(|(index, result)| match result.as_ref().err().map(HubSpotError::class) {
                Some(ErrorClass::Permanent(crmsync_hubspot::PermanentKind::Conflict {
                    existing_id: Some(existing),
                })) => {
                    let mut properties = to_send[index].1.clone();
                    properties.insert(LOCAL_ID_PROPERTY.to_owned(), to_send[index].0.to_string());
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
        if !conflicts.is_empty() {
            let updates: Vec<UpdateInput> = conflicts.iter().map(|(_, input)| input.clone()).collect();
            let answers = match self.hubspot.batch_update(ObjectType::Contacts, None, &updates).await {
                Ok(outcome) => outcome.into_results(),
                Err(error) => vec![Err(error); updates.len()],
            };
            for ((index, _), answer) in conflicts.into_iter().zip(answers) {
                results[index] = answer.map(|object| (object.id, false));
            }
        }
        let mut upserted = Vec::new();
        for ((id, properties, association), result) in to_send.into_iter().zip(results) {
            let items = items_of(by_entity, EntityType::Contact, id).to_vec();
            match result {
                Ok((hubspot_id, created)) => {
                    if created {
                        report.contacts_created += 1
                    } else {
                        report.contacts_updated += 1
                    }
                    let entity = SyncedEntity {
                        entity_type: EntityType::Contact,
                        entity_id: id,
                        object_type: "contacts",
                        hubspot_id,
                        written: properties,
                    };
                    upserted.push((entity, items, association));
                }
                Err(error) => outcome.failures.push((items, error.to_string(), error.class())),
            }
        }
        self.associate_with_companies(
            ObjectType::Contacts,
            type_ids::CONTACT_TO_COMPANY_PRIMARY,
            upserted,
            outcome,
            report,
        )
        .await;
        Ok(())
    }

    /// Creates the primary company association of each upserted record that needs one (≤2,000 per call), then
    /// records the results: a record whose association failed keeps its properties' new hashes, and only the
    /// association is retried.
    async fn associate_with_companies(
        &self,
        from: ObjectType,
        type_id: u32,
        upserted: Vec<(SyncedEntity, Vec<SyncItem>, Option<String>)>,
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) {
        if outcome.out_of_time() && upserted.iter().any(|(_, _, company)| company.is_some()) {
            // The properties are in HubSpot (their hashes are kept); the association is sent on the next run.
            for (entity, items, company) in upserted {
                match company {
                    Some(_) => outcome.postpone(&items),
                    None => outcome.completed.extend(items.iter().map(|i| i.id)),
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
                    outcome.completed.extend(items.iter().map(|i| i.id));
                }
                (Ok(()), None) => outcome.completed.extend(items.iter().map(|i| i.id)),
                (Err(error), _) => outcome
                    .failures
                    .push((items, format!("association: {error}"), error.class())),
            }
            outcome.synced.push(entity);
        }
    }

    /// Creates engagements for new activities, associated with their deal, company and contact. Engagements have no
    /// unique key in HubSpot, so an activity retried after an attempt that may have reached HubSpot first looks
    /// itself up by `crmsync_id` and links what it finds instead of creating a second one.
    async fn sync_activities(
        &self,
        activities: &[ActivityRecord],
        by_entity: &BTreeMap<(EntityType, Uuid), Vec<SyncItem>>,
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) -> Result<(), AppError> {
        let mut creates: BTreeMap<&'static str, Vec<(&ActivityRecord, Properties, CreateInput)>> = BTreeMap::new();
        for activity in activities {
            let items = items_of(by_entity, EntityType::Activity, activity.id);
            if outcome.out_of_time() {
                outcome.postpone(items);
                continue;
            }
            let (Some(object), Some(properties)) = (
                engagement_object(&activity.activity_type),
                activity_properties(activity),
            ) else {
                outcome.completed.extend(items.iter().map(|i| i.id));
                continue;
            };
            if activity.hubspot_engagement_id.is_some() {
                // Engagements are created once; later local edits stay local.
                report.unchanged += items.len() as u64;
                outcome.completed.extend(items.iter().map(|i| i.id));
                continue;
            }
            let object_type = engagement_type(object);
            let mut associations = Vec::new();
            let mut waiting = None;
            for (target, target_type) in [
                (&activity.deal, ObjectType::Deals),
                (&activity.company, ObjectType::Companies),
                (&activity.contact, ObjectType::Contacts),
            ] {
                match target {
                    Some((_, Some(hubspot_id))) => {
                        if let Some(type_id) = crmsync_hubspot::associations::default_type_id(object_type, target_type)
                        {
                            associations.push(NewAssociation {
                                to_id: hubspot_id.clone(),
                                types: vec![AssociationSpec::hubspot_defined(type_id)],
                            });
                        }
                    }
                    Some((local, None)) => {
                        waiting = Some(format!("waiting for {target_type} {local} to reach HubSpot"))
                    }
                    None => {}
                }
            }
            if let Some(reason) = waiting {
                outcome.deferred.push((items.iter().map(|i| i.id).collect(), reason));
                continue;
            }
            // An earlier attempt, or a run that died holding this row, may have created the engagement already.
            if items.iter().any(|i| i.attempts > 0 || i.taken_over) {
                match self.find_engagement(object_type, activity.id).await {
                    Ok(Some(hubspot_id)) => {
                        outcome.completed.extend(items.iter().map(|i| i.id));
                        outcome.synced.push(SyncedEntity {
                            entity_type: EntityType::Activity,
                            entity_id: activity.id,
                            object_type: object,
                            hubspot_id,
                            written: properties,
                        });
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        outcome
                            .failures
                            .push((items.to_vec(), error.to_string(), error.class()));
                        continue;
                    }
                }
            }
            let input = CreateInput {
                properties: properties.clone(),
                associations,
            };
            creates.entry(object).or_default().push((activity, properties, input));
        }
        for (object, batch) in creates {
            if outcome.out_of_time() {
                for (activity, ..) in &batch {
                    outcome.postpone(items_of(by_entity, EntityType::Activity, activity.id));
                }
                continue;
            }
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
                        outcome.completed.extend(items.iter().map(|i| i.id));
                        outcome.synced.push(SyncedEntity {
                            entity_type: EntityType::Activity,
                            entity_id: activity.id,
                            object_type: object,
                            hubspot_id: created.id,
                            written: properties,
                        });
                    }
                    Err(error) => outcome.failures.push((items, error.to_string(), error.class())),
                }
            }
        }
        Ok(())
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

    /// Upserts the companies that changed, except those `held_back` (brought in for their deals, but they come on
    /// their own or cannot be written); returns the HubSpot id of every company known after this step. Ids already
    /// recorded count as known before the upsert, so a company whose update fails still has its deals associated.
    async fn sync_companies(
        &self,
        companies: &[CompanyRecord],
        held_back: &HashMap<Uuid, CompanyState>,
        by_entity: &BTreeMap<(EntityType, Uuid), Vec<SyncItem>>,
        outcome: &mut RoundOutcome,
        report: &mut SyncReport,
    ) -> Result<HashMap<Uuid, String>, AppError> {
        let mut hubspot_ids: HashMap<Uuid, String> = companies
            .iter()
            .filter_map(|c| c.hubspot_company_id.clone().map(|id| (c.id, id)))
            .collect();
        let companies: Vec<&CompanyRecord> = companies.iter().filter(|c| !held_back.contains_key(&c.id)).collect();
        let ids: Vec<Uuid> = companies.iter().map(|c| c.id).collect();
        let hashes = self.store.property_hashes(EntityType::Company, &ids).await?;
        let mut to_send: Vec<(&CompanyRecord, Properties)> = Vec::new();
        for company in companies {
            let items = items_of(by_entity, EntityType::Company, company.id);
            let changed = changed_properties(
                &company_properties(company),
                &hashes.get(&company.id).cloned().unwrap_or_default(),
            );
            match (&company.hubspot_company_id, changed.is_empty()) {
                (Some(_), true) => {
                    report.unchanged += items.len() as u64;
                    outcome.completed.extend(items.iter().map(|i| i.id));
                }
                _ => to_send.push((company, changed)),
            }
        }
        if to_send.is_empty() {
            return Ok(hubspot_ids);
        }
        if outcome.out_of_time() {
            for (company, _) in &to_send {
                outcome.postpone(items_of(by_entity, EntityType::Company, company.id));
            }
            return Ok(hubspot_ids);
        }
        let inputs: Vec<UpsertInput> = to_send
            .iter()
            .map(|(company, properties)| UpsertInput {
                id: company.id.to_string(),
                properties: properties.clone(),
            })
            .collect();
        let results = self.upsert(ObjectType::Companies, &inputs).await;
        for ((company, properties), result) in to_send.into_iter().zip(results) {
            let items = items_of(by_entity, EntityType::Company, company.id).to_vec();
            match result {
                Ok((hubspot_id, created)) => {
                    if created {
                        report.companies_created += 1
                    } else {
                        report.companies_updated += 1
                    }
                    hubspot_ids.insert(company.id, hubspot_id.clone());
                    outcome.completed.extend(items.iter().map(|i| i.id));
                    outcome.synced.push(SyncedEntity {
                        entity_type: EntityType::Company,
                        entity_id: company.id,
                        object_type: "companies",
                        hubspot_id,
                        written: properties,
                    });
                }
                Err(error) if !items.is_empty() => outcome.failures.push((items, error.to_string(), error.class())),
                Err(error) => {
                    tracing::warn!(company_id = %company.id, %error, "company brought in for its deals failed")
                }
            }
        }
        Ok(hubspot_ids)
    }

    /// Upserts the deals that changed and sets their primary company association.
    async fn sync_deals(
        &self,
        deals: &[DealRecord],
        companies: &Companies<'_>,
        by_entity: &BTreeMap<(EntityType, Uuid), Vec<SyncItem>>,
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
        let ids: Vec<Uuid> = deals.iter().map(|d| d.id).collect();
        let hashes = self.store.property_hashes(EntityType::Deal, &ids).await?;
        let mut to_send: Vec<(&DealRecord, Properties, Option<String>)> = Vec::new();
        for deal in deals {
            let items = items_of(by_entity, EntityType::Deal, deal.id);
            let Some(company_hubspot_id) = company_or_wait(deal.company_id, companies, items, outcome) else {
                continue;
            };
            let properties = match deal_properties(deal, &pipeline) {
                Ok(properties) => properties,
                Err(error) => {
                    outcome.failures.push((
                        items.to_vec(),
                        error.to_string(),
                        ErrorClass::Permanent(crmsync_hubspot::PermanentKind::Validation),
                    ));
                    continue;
                }
            };
            let last = hashes.get(&deal.id).cloned().unwrap_or_default();
            let changed = changed_properties(&properties, &last);
            let association = company_hubspot_id.filter(|id| {
                last.get(COMPANY_ASSOCIATION) != Some(&crmsync_domain::sync::value_hash(id))
                    || deal.hubspot_deal_id.is_none()
            });
            if changed.is_empty() && association.is_none() && deal.hubspot_deal_id.is_some() {
                report.unchanged += items.len() as u64;
                outcome.completed.extend(items.iter().map(|i| i.id));
            } else {
                to_send.push((deal, changed, association));
            }
        }
        if to_send.is_empty() {
            return Ok(());
        }
        if outcome.out_of_time() {
            for (deal, ..) in &to_send {
                outcome.postpone(items_of(by_entity, EntityType::Deal, deal.id));
            }
            return Ok(());
        }
        let inputs: Vec<UpsertInput> = to_send
            .iter()
            .map(|(deal, properties, _)| UpsertInput {
                id: deal.id.to_string(),
                properties: properties.clone(),
            })
            .collect();
        let results = self.upsert(ObjectType::Deals, &inputs).await;
        let mut upserted: Vec<(SyncedEntity, Vec<SyncItem>, Option<String>)> = Vec::new();
        for ((deal, properties, association), result) in to_send.into_iter().zip(results) {
            let items = items_of(by_entity, EntityType::Deal, deal.id).to_vec();
            match result {
                Ok((hubspot_id, created)) => {
                    if created {
                        report.deals_created += 1
                    } else {
                        report.deals_updated += 1
                    }
                    let entity = SyncedEntity {
                        entity_type: EntityType::Deal,
                        entity_id: deal.id,
                        object_type: "deals",
                        hubspot_id,
                        written: properties,
                    };
                    upserted.push((entity, items, association));
                }
                Err(error) => outcome.failures.push((items, error.to_string(), error.class())),
            }
        }

        self.associate_with_companies(
            ObjectType::Deals,
            type_ids::DEAL_TO_COMPANY_PRIMARY,
            upserted,
            outcome,
            report,
        )
        .await;
        Ok(())
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

    /// Writes a round's results: successes in one transaction, then failures and deferrals, then retry messages.
    async fn write_back(&self, outcome: &mut RoundOutcome, report: &mut SyncReport) -> Result<(), AppError> {
        let lease = outcome.lease.clone();
        let synced = std::mem::take(&mut outcome.synced);
        let completed = std::mem::take(&mut outcome.completed);
        if !synced.is_empty() || !completed.is_empty() {
            let lost = self.store.complete(&synced, &completed, &lease).await?;
            lease_lost(&lost, "completed");
        }
        for (ids, reason) in std::mem::take(&mut outcome.deferred) {
            report.deferred += ids.len() as u64;
            let written = self.store.defer(&ids, &reason, WAIT_FOR_COMPANY, &lease).await?;
            if written < ids.len() as u64 {
                tracing::warn!(
                    items = ids.len() as u64 - written,
                    "lease lost: items not put back to wait"
                );
            }
        }
        let waiting = std::mem::take(&mut outcome.waiting_for_company);
        if !waiting.is_empty() {
            report.deferred += waiting.len() as u64;
            let written = self
                .store
                .defer_for_companies(&waiting, WAIT_FOR_COMPANY, &lease)
                .await?;
            if written < waiting.len() as u64 {
                tracing::warn!(
                    items = waiting.len() as u64 - written,
                    "lease lost: items not put back to wait"
                );
            }
        }
        let unsent = std::mem::take(&mut outcome.unsent);
        if !unsent.is_empty() {
            report.postponed += unsent.len() as u64;
            self.store
                .defer(
                    &unsent,
                    "the run's time budget ran out before it was sent",
                    Duration::ZERO,
                    &lease,
                )
                .await?;
        }
        let mut failures = std::mem::take(&mut outcome.failures);
        let max_attempts = self.settings.retry.max_attempts;
        failures.extend(std::mem::take(&mut outcome.crashed).into_iter().map(|item| {
            let text = format!(
                "the runs holding it stopped before they finished ({} of {max_attempts} attempts: killed, or timed \
                 out mid-batch)",
                item.attempts
            );
            (
                vec![item],
                text,
                ErrorClass::Permanent(crmsync_hubspot::PermanentKind::Validation),
            )
        }));
        let mut messages = Vec::new();
        for (items, error, class) in failures {
            let attempts_before = items.iter().map(|i| i.attempts).max().unwrap_or(0);
            let crashed = items.iter().all(|i| i.taken_over && i.attempts >= max_attempts);
            let decision = match &class {
                // The crashed runs' attempts were counted when the row was taken over.
                _ if crashed => RetryDecision::Dead {
                    attempts: attempts_before,
                },
                ErrorClass::Retryable { suggested_wait } => {
                    self.settings
                        .retry
                        .after_failure(attempts_before, rand::random::<f64>(), *suggested_wait)
                }
                ErrorClass::Daily => {
                    report.daily_limit_reached = true;
                    // Until the portal's midnight: at most a day; an hour's wait re-checks without burning attempts.
                    RetryDecision::RetryAfter {
                        delay: Duration::from_secs(3600),
                        attempts: attempts_before,
                    }
                }
                ErrorClass::Permanent(_) => RetryDecision::Dead {
                    attempts: attempts_before + 1,
                },
            };
            let text = match class {
                _ if crashed => error,
                ErrorClass::Permanent(_) => format!("permanent: {error}"),
                _ => error,
            };
            let ids: Vec<Uuid> = items.iter().map(|i| i.id).collect();
            let written = self.store.fail(&ids, &text, decision, &lease).await?;
            let lost: Vec<Uuid> = ids.iter().copied().filter(|id| !written.contains(id)).collect();
            lease_lost(&lost, "failed");
            // Only the rows this run still held: the taker of the others sends its own messages.
            let items: Vec<&SyncItem> = items.iter().filter(|i| written.contains(&i.id)).collect();
            match decision {
                RetryDecision::RetryAfter { delay, attempts } => {
                    report.failed += items.len() as u64;
                    messages.extend(items.iter().map(|item| (RetryMessage::for_item(item, attempts), delay)));
                }
                RetryDecision::Dead { attempts } => {
                    report.dead += items.len() as u64;
                    // A message for the dead item, reported failed on every receive, so the redrive policy puts it
                    // in the DLQ and its alarm fires, however the item died (on the schedule or on the retry path,
                    // whose triggering message is then acknowledged: its attempts no longer match).
                    messages.extend(
                        items
                            .iter()
                            .map(|item| (RetryMessage::for_item(item, attempts), Duration::ZERO)),
                    );
                }
            }
            tracing::warn!(items = ids.len(), error = %text, ?decision, "sync items failed");
        }
        if let (Some(queue), false) = (&self.retry_queue, messages.is_empty()) {
            // Postgres already holds next_attempt_at: if SQS is unreachable the schedule still retries these.
            match queue.schedule(&messages).await {
                Ok(()) => report.retry_messages += messages.len() as u64,
                Err(error) => tracing::warn!(%error, "could not send retry messages; the schedule will retry"),
            }
        }
        Ok(())
    }
}

/// Logs rows a write-back left alone because this run's lease on them expired and another run took them over.
fn lease_lost(ids: &[Uuid], what: &str) {
    if !ids.is_empty() {
        tracing::warn!(
            items = ids.len(),
            first = %ids[0],
            what,
            "lease lost: another run took these rows over; its result stands and this one is not written"
        );
    }
}

/// What the deals and contacts of a round know about their companies.
struct Companies<'a> {
    /// HubSpot ids of the companies in HubSpot (recorded before the round, or written by it).
    hubspot_ids: &'a HashMap<Uuid, String>,
    /// Companies that cannot be written, with the reason.
    blocked: &'a HashMap<Uuid, String>,
}

/// The company's HubSpot id when the record has a company that is in HubSpot (`Some(Some(id))`) or has no company
/// (`Some(None)`). `None` after deferring the items when the company is not in HubSpot yet, or failing them when it
/// cannot be written (deleted, or its own sync item is dead): they would wait forever.
fn company_or_wait(
    company_id: Option<Uuid>,
    companies: &Companies<'_>,
    items: &[SyncItem],
    outcome: &mut RoundOutcome,
) -> Option<Option<String>> {
    let Some(company_id) = company_id else {
        return Some(None);
    };
    if let Some(id) = companies.hubspot_ids.get(&company_id) {
        return Some(Some(id.clone()));
    }
    match companies.blocked.get(&company_id) {
        Some(reason) => outcome.failures.push((
            items.to_vec(),
            format!("company {company_id} cannot be synced: {reason}"),
            ErrorClass::Permanent(crmsync_hubspot::PermanentKind::Validation),
        )),
        None => outcome
            .waiting_for_company
            .extend(items.iter().map(|i| (i.id, company_id))),
    }
    None
}

/// The client's object type for an engagement object name from the domain.
fn engagement_type(object: &str) -> ObjectType {
    match object {
        "calls" => ObjectType::Calls,
        "emails" => ObjectType::Emails,
        "meetings" => ObjectType::Meetings,
        "tasks" => ObjectType::Tasks,
        _ => ObjectType::Notes,
    }
}

fn classify(exists: bool, unchanged: bool) -> &'static str {
    match (exists, unchanged) {
        (false, _) => "create",
        (true, false) => "update",
        (true, true) => "unchanged",
    }
}

/// Several rows for one entity become one write of its current state.
fn coalesce(items: &[SyncItem]) -> BTreeMap<(EntityType, Uuid), Vec<SyncItem>> {
    let mut by_entity: BTreeMap<(EntityType, Uuid), Vec<SyncItem>> = BTreeMap::new();
    for item in items {
        by_entity
            .entry((item.entity_type, item.entity_id))
            .or_default()
            .push(item.clone());
    }
    by_entity
}

fn ids_of(by_entity: &BTreeMap<(EntityType, Uuid), Vec<SyncItem>>, entity_type: EntityType) -> Vec<Uuid> {
    by_entity
        .keys()
        .filter(|(t, _)| *t == entity_type)
        .map(|(_, id)| *id)
        .collect()
}

fn items_of(by_entity: &BTreeMap<(EntityType, Uuid), Vec<SyncItem>>, entity_type: EntityType, id: Uuid) -> &[SyncItem] {
    by_entity.get(&(entity_type, id)).map(Vec::as_slice).unwrap_or(&[])
}

fn entity_ids(items: &[SyncItem], entity_type: EntityType) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = items
        .iter()
        .filter(|i| i.entity_type == entity_type)
        .map(|i| i.entity_id)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// One SQS message as the retry handler sees it.
#[derive(Debug, Clone)]
pub struct RetryDelivery {
    pub message_id: String,
    pub body: String,
}

impl<Q: RetryQueue> OutboundSync<Q> {
    /// Handles a batch of retry-queue messages; returns the ids of the messages that failed, for SQS's partial
    /// batch response. Postgres is the truth; a message only says "this row may be due now":
    /// - its row is retried when the message is current (the row's attempts equal the message's) and the row is due;
    /// - a row not due yet (its backoff is longer than SQS's 900 s delay cap) gets a fresh message for the rest of
    ///   the wait, and this one succeeds;
    /// - a stale message (the row was retried since, by the schedule or another message), or one whose row is
    ///   completed, gone, or held by another run (which records the outcome and sends its own message), succeeds
    ///   without a retry, so old messages never add attempts or multiply retry chains;
    /// - it fails while its row is dead, so SQS's redrive policy moves it to the DLQ after maxReceiveCount
    ///   receives, or when its body is unreadable.
    pub async fn handle_retry_messages(&self, deliveries: &[RetryDelivery]) -> Result<Vec<String>, AppError> {
        let mut failed = Vec::new();
        let mut wanted: Vec<(String, RetryMessage)> = Vec::new();
        let mut inbox_events: Vec<(String, Uuid)> = Vec::new();
        for delivery in deliveries {
            match serde_json::from_str::<RetryMessage>(&delivery.body) {
                Ok(message) if message.entity_type == crmsync_domain::webhook::INBOX_RETRY_KIND => {
                    inbox_events.push((delivery.message_id.clone(), message.sync_queue_id));
                }
                Ok(message) => wanted.push((delivery.message_id.clone(), message)),
                Err(error) => {
                    tracing::warn!(message_id = %delivery.message_id, %error, "unreadable retry message");
                    failed.push(delivery.message_id.clone());
                }
            }
        }
        if !inbox_events.is_empty() {
            match &self.inbox {
                // The applier records what it could not apply (attempts, next try, or dead) in the inbox itself.
                // A dead event's message is reported failed, so the redrive policy moves it to the DLQ.
                Some(applier) => {
                    let ids: Vec<Uuid> = inbox_events.iter().map(|(_, id)| *id).collect();
                    let statuses = applier.apply_retried(&ids).await?;
                    for (message_id, id) in &inbox_events {
                        if statuses.get(id).map(String::as_str) == Some("dead") {
                            failed.push(message_id.clone());
                        }
                    }
                }
                None => tracing::warn!(
                    events = inbox_events.len(),
                    "inbox retry messages but no applier; the next pass applies them"
                ),
            }
        }
        if wanted.is_empty() {
            return Ok(failed);
        }
        let ids: Vec<Uuid> = wanted.iter().map(|(_, m)| m.sync_queue_id).collect();
        let targets = self.store.retry_targets(&ids).await?;
        let mut to_retry: Vec<(String, RetryMessage)> = Vec::new();
        let mut not_due: Vec<(RetryMessage, Duration)> = Vec::new();
        for (message_id, message) in wanted {
            let _span =
                tracing::info_span!("retry_message", %message_id, sync_queue_id = %message.sync_queue_id).entered();
            let Some(target) = targets.get(&message.sync_queue_id) else {
                tracing::warn!("retry message names a sync_queue row that no longer exists");
                continue;
            };
            if target.attempts != message.attempts {
                tracing::debug!(
                    row_attempts = target.attempts,
                    message_attempts = message.attempts,
                    "stale retry message: the row was retried since"
                );
                continue;
            }
            match target.status.as_str() {
                "dead" => failed.push(message_id),
                "completed" => tracing::debug!("retry message for a completed row"),
                _ if target.leased => tracing::debug!("retry message for a row another run holds"),
                "pending" | "failed" if target.due_in > RETRY_DUE_SLACK => {
                    tracing::debug!(
                        due_in_seconds = target.due_in.as_secs(),
                        "row not due: sending a fresh message"
                    );
                    not_due.push((message, target.due_in.min(MAX_SQS_DELAY)));
                }
                _ => to_retry.push((message_id, message)),
            }
        }
        if !not_due.is_empty() {
            match &self.retry_queue {
                // If this fails the schedule still retries the rows when they are due.
                Some(queue) => {
                    if let Err(error) = queue.schedule(&not_due).await {
                        tracing::warn!(%error, "could not send fresh retry messages; the schedule will retry");
                    }
                }
                None => tracing::warn!("retry messages but no retry queue configured; the schedule will retry"),
            }
        }
        if to_retry.is_empty() {
            return Ok(failed);
        }
        let wanted: Vec<(Uuid, i32)> = to_retry.iter().map(|(_, m)| (m.sync_queue_id, m.attempts)).collect();
        let (_, claimed, statuses) = self.retry_items(&wanted).await?;
        for (message_id, message) in to_retry {
            let id = message.sync_queue_id;
            let _span = tracing::info_span!("retry_message", %message_id, sync_queue_id = %id).entered();
            // A row that failed again or died has a fresh message with its new attempts (a dead row's goes to the
            // DLQ); one claimed by another run in the meantime is that run's to record.
            tracing::debug!(
                claimed = claimed.contains(&id),
                status = statuses.get(&id).map(String::as_str),
                "retry message handled"
            );
        }
        Ok(failed)
    }
}

/// Builds the outbound sync from the configuration on the process's pool: the HubSpot client, the SQS retry queue
/// when `RETRY_QUEUE_URL` is set, and the webhook applier whose events wait in the same retry queue.
pub async fn from_config(
    config: &crmsync_app::Config,
    pool: crmsync_db::Pool,
) -> Result<OutboundSync<crmsync_queue::SqsRetryQueue>, AppError> {
    let hubspot = HubSpotClient::new(config.hubspot()?).map_err(|e| AppError::HubSpot(Box::new(e)))?;
    let retry_queue = config.retry_queue().await;
    let settings = SyncSettings {
        batch_size: config.sync.batch_size,
        lease: config.sync.lease,
        retry: RetryPolicy {
            max_attempts: config.sync.max_attempts,
            ..RetryPolicy::default()
        },
        ..SyncSettings::default()
    };
    let mut applier = crmsync_inbound::Applier::new(pool.clone(), hubspot.clone(), config.webhook.app_id.clone())
        .with_retry_policy(settings.retry);
    if let Some(queue) = &retry_queue {
        applier = applier.with_retry_queue(std::sync::Arc::new(queue.clone()));
    }
    Ok(OutboundSync::new(PgSyncStore::new(pool), hubspot, retry_queue, settings).with_inbox(applier))
}

impl<Q> OutboundSync<Q> {
    pub fn retry_queue(&self) -> Option<&Q> {
        self.retry_queue.as_ref()
    }
}

impl OutboundSync<crmsync_queue::SqsRetryQueue> {
    /// One long poll of the retry queue (the local stand-in for the Lambda's SQS event source): handles the
    /// messages received and deletes those that succeeded; failed ones reappear after their visibility timeout
    /// and, after maxReceiveCount receives, move to the DLQ. Returns (received, failed).
    pub async fn poll_retry_queue_once(&self, wait: Duration) -> Result<(usize, usize), AppError> {
        let Some(queue) = &self.retry_queue else {
            return Ok((0, 0));
        };
        let received = queue
            .receive(wait, None)
            .await
            .map_err(|e| AppError::Queue(Box::new(e)))?;
        if received.is_empty() {
            return Ok((0, 0));
        }
        let deliveries: Vec<RetryDelivery> = received
            .iter()
            .map(|m| RetryDelivery {
                message_id: m.message_id.clone(),
                body: m.body.clone(),
            })
            .collect();
        let failed = self.handle_retry_messages(&deliveries).await?;
        let succeeded: Vec<String> = received
            .iter()
            .filter(|m| !failed.contains(&m.message_id))
            .map(|m| m.receipt_handle.clone())
            .collect();
        for receipt_handle in succeeded {
            queue
                .delete(&receipt_handle)
                .await
                .map_err(|e| AppError::Queue(Box::new(e)))?;
        }
        Ok((received.len(), failed.len()))
    }
}

/// After a redrive, removes from the DLQ the messages whose rows are no longer dead. Returns how many it removed.
/// Only messages that read as sync retry messages for a sync_queue row that exists and is not dead are removed;
/// anything else (an unreadable body, a webhook inbox message, a row still dead or gone) stays for an operator.
pub async fn purge_redriven(store: &PgSyncStore, queue: &crmsync_queue::SqsRetryQueue) -> Result<usize, AppError> {
    let mut removed = 0;
    loop {
        // Messages left alone stay invisible for this long, so the loop ends once it has seen each one.
        let messages = queue
            .receive_dead(Duration::from_secs(30))
            .await
            .map_err(|e| AppError::Queue(Box::new(e)))?;
        if messages.is_empty() {
            return Ok(removed);
        }
        let parsed: Vec<(String, Option<Uuid>)> = messages
            .iter()
            .map(|m| {
                let id = serde_json::from_str::<RetryMessage>(&m.body)
                    .ok()
                    .filter(|r| r.entity_type.parse::<EntityType>().is_ok())
                    .map(|r| r.sync_queue_id);
                (m.receipt_handle.clone(), id)
            })
            .collect();
        let ids: Vec<Uuid> = parsed.iter().filter_map(|(_, id)| *id).collect();
        let statuses = store.statuses(&ids).await?;
        for (receipt, id) in parsed {
            let redriven = id.and_then(|id| statuses.get(&id)).is_some_and(|s| s != "dead");
            if redriven {
                queue
                    .delete_dead(&receipt)
                    .await
                    .map_err(|e| AppError::Queue(Box::new(e)))?;
                removed += 1;
            }
        }
    }
}
