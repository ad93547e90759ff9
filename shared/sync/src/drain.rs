//! The drain: [`OutboundSync`] itself, claims and rounds until the queue is empty or the deadline passes, the SQS
//! path's retry of named rows, one round's order (companies, then contacts and deals, then activities), and the
//! run record in crmsync.sync_runs.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crmsync_app::AppError;
use crmsync_db::PgSyncStore;
use crmsync_db::sync::CompanyState;
use crmsync_domain::failure::FailureClass;
use crmsync_domain::ports::RetryQueue;
use crmsync_domain::queue::SyncStatus;
use crmsync_domain::sync::{
    ActivityRecord, CompanyRecord, ContactRecord, DealRecord, EntityType, RetryPolicy, SyncItem,
};
use crmsync_hubspot::HubSpotClient;
use uuid::Uuid;

use crate::circuit::{Breaker, Gate};
use crate::round::{ByEntity, RoundOutcome, coalesce, ids_of};
use crate::send::CompanyLinks;
use crate::settings::{SyncReport, SyncSettings};

/// The outbound sync, built once per process and lent to handlers.
#[derive(Debug, Clone)]
pub struct OutboundSync<Q> {
    pub(crate) store: PgSyncStore,
    pub(crate) hubspot: HubSpotClient,
    pub(crate) retry_queue: Option<Q>,
    pub(crate) settings: SyncSettings,
    /// Applies waiting webhook events before each drain, and inbox retry messages.
    pub(crate) inbox: Option<crmsync_inbound::Applier>,
    /// The circuit breaker in front of HubSpot, shared with every other process through the database.
    pub(crate) breaker: Breaker,
}

/// How far a drain goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Until the queue is empty or the budget is spent (the schedule, `crmsync sync`).
    UntilEmpty,
    /// What is due at its start: rounds while they come back full (a kick's drain).
    WhatIsDue,
}

/// The records a round sends, loaded once.
struct RoundRecords {
    /// The round's own companies and those its deals and contacts bring in.
    companies: Vec<CompanyRecord>,
    deals: Vec<DealRecord>,
    contacts: Vec<ContactRecord>,
    /// Companies brought in that are held back: they come on their own, or cannot be written.
    held_back: HashMap<Uuid, CompanyState>,
}

impl<Q: RetryQueue> OutboundSync<Q> {
    pub fn new(store: PgSyncStore, hubspot: HubSpotClient, retry_queue: Option<Q>, settings: SyncSettings) -> Self {
        let breaker = Breaker::new(crmsync_db::circuit::PgCircuit::hubspot(store.pool().clone()));
        Self {
            store,
            hubspot,
            retry_queue,
            settings,
            inbox: None,
            breaker,
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

    /// The drain a fast-path kick asked for (trigger `kick`): it takes what is due when it starts, in rounds while
    /// rounds come back full, and stops after the first round that claimed less than a batch, instead of running
    /// until the queue is empty. Rows committed after it started kicked a drain of their own, due after the
    /// debounce window, so a steady trickle of writes is sent in one batch per window, not one round per write.
    pub async fn drain_requested(&self, budget: Duration) -> Result<SyncReport, AppError> {
        self.drain_with(crate::KICK_TRIGGER, budget, Scope::WhatIsDue, |_| {})
            .await
    }

    /// [`OutboundSync::drain`], calling `on_round` with the running totals after each round (progress display).
    pub async fn drain_observed(
        &self,
        trigger: &str,
        budget: Duration,
        on_round: impl Fn(&SyncReport),
    ) -> Result<SyncReport, AppError> {
        self.drain_with(trigger, budget, Scope::UntilEmpty, on_round).await
    }

    async fn drain_with(
        &self,
        trigger: &str,
        budget: Duration,
        scope: Scope,
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
        let result = self.drain_rounds(started + budget, scope, &on_round, &mut report).await;
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.count_requests(&mut report, &hubspot_before);
        self.finish(run_id, trigger, &report, result.as_ref().err()).await;
        result.map(|()| report)
    }

    async fn drain_rounds(
        &self,
        deadline: Instant,
        scope: Scope,
        on_round: &impl Fn(&SyncReport),
        report: &mut SyncReport,
    ) -> Result<(), AppError> {
        while Instant::now() < deadline && !report.daily_limit_reached {
            if let Gate::Wait(wait) = self.circuit_gate(report).await? {
                tracing::info!(
                    circuit = "open",
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "HubSpot circuit open: the drain stops until the cool-down ends"
                );
                break;
            }
            let lease = self.lease_holder();
            let items = self
                .store
                .claim(self.settings.batch_size, self.settings.lease, &lease)
                .await?;
            if items.is_empty() {
                break;
            }
            let short = (items.len() as i64) < self.settings.batch_size;
            report.rounds += 1;
            self.process(items, report, lease, Some(deadline)).await?;
            on_round(report);
            if short && scope == Scope::WhatIsDue {
                break;
            }
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
    ) -> Result<(SyncReport, Vec<Uuid>, HashMap<Uuid, SyncStatus>), AppError> {
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
    ) -> Result<(Vec<Uuid>, HashMap<Uuid, SyncStatus>), AppError> {
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

    /// Records a run that sent nothing but has something to note (a deferral while the circuit is open, a probe).
    pub(crate) async fn record_run(&self, trigger: &str, report: &SyncReport) {
        match self.store.start_run(trigger, self.abandon_after()).await {
            Ok(run_id) => self.finish(run_id, trigger, report, None).await,
            Err(error) => tracing::error!(%error, "could not record the sync run"),
        }
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
            circuit_state = report.circuit_state(),
            circuit_opened = report.circuit_opened,
            circuit_probed = report.circuit_probed,
            circuit_closed = report.circuit_closed,
            circuit_deferred = report.circuit_deferred,
            "sync run finished"
        );
        if let Err(write_error) = self
            .store
            .finish_run(run_id, status, &counts, error_text.as_deref())
            .await
        {
            tracing::error!(error = %write_error, "could not record the sync run");
        }
        crate::metrics::emit_run(&self.store, report).await;
    }

    /// One round: companies first, then contacts and deals, then activities, with a write-back after each step.
    /// `lease` is the claim's `locked_by`; no HubSpot batch starts after `deadline`.
    pub(crate) async fn process(
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
            .partition(|i| FailureClass::crashed_out(i, &self.settings.retry));
        outcome.crashed = crashed;
        let by_entity = coalesce(&items);
        let records = self.load_round(&by_entity).await?;

        let company_hubspot_ids = self
            .send_companies(&records.companies, &records.held_back, &by_entity, &mut outcome, report)
            .await?;
        self.write_back(&mut outcome, report).await?;

        let blocked = blocked_companies(records.held_back.clone());
        let links = CompanyLinks {
            hubspot_ids: &company_hubspot_ids,
            blocked: &blocked,
        };
        self.send_contacts(&records.contacts, &links, &by_entity, &mut outcome, report)
            .await?;
        self.send_deals(&records.deals, &links, &by_entity, &mut outcome, report)
            .await?;
        self.write_back(&mut outcome, report).await?;

        // Activities last: their targets' HubSpot ids are read after the write-backs above.
        let activities = self
            .store
            .load_activities(&ids_of(&by_entity, EntityType::Activity))
            .await?;
        self.sync_activities(&activities, &by_entity, &mut outcome, report)
            .await?;
        complete_missing(&by_entity, &records, &activities, &mut outcome);
        self.write_back(&mut outcome, report).await
    }

    /// Loads the round's deals and contacts, and its companies: its own, and those its deals and contacts need
    /// that are not in HubSpot, so they are written first; unless such a company comes on its own (its row backs
    /// off after a failure: the deal waits, and the company is not re-sent every round) or cannot be written
    /// (deleted, or dead: the deal fails, saying why, instead of waiting forever).
    async fn load_round(&self, by_entity: &ByEntity) -> Result<RoundRecords, AppError> {
        let deals = self.store.load_deals(&ids_of(by_entity, EntityType::Deal)).await?;
        let contacts = self
            .store
            .load_contacts(&ids_of(by_entity, EntityType::Contact))
            .await?;
        let mut company_ids: HashSet<Uuid> = ids_of(by_entity, EntityType::Company).into_iter().collect();
        let referenced: Vec<Uuid> = deals
            .iter()
            .filter_map(|d| d.company_id)
            .chain(contacts.iter().filter_map(|c| c.company_id))
            .filter(|id| company_ids.insert(*id))
            .collect();
        let held_back = if referenced.is_empty() {
            HashMap::new()
        } else {
            self.store.company_states(&referenced).await?
        };
        let company_ids: Vec<Uuid> = company_ids.into_iter().collect();
        let companies = self.store.load_companies(&company_ids).await?;
        Ok(RoundRecords {
            companies,
            deals,
            contacts,
            held_back,
        })
    }
}

/// The held-back companies that cannot be written, with the reason.
fn blocked_companies(held_back: HashMap<Uuid, CompanyState>) -> HashMap<Uuid, String> {
    held_back
        .into_iter()
        .filter_map(|(id, state)| match state {
            CompanyState::Blocked(reason) => Some((id, reason)),
            CompanyState::Queued => None,
        })
        .collect()
}

/// Completes the items whose record no longer exists (deleted locally, deleted in HubSpot, or local-only): they
/// have nothing to send.
fn complete_missing(
    by_entity: &ByEntity,
    records: &RoundRecords,
    activities: &[ActivityRecord],
    outcome: &mut RoundOutcome,
) {
    for ((entity_type, entity_id), items) in by_entity {
        let exists = match entity_type {
            EntityType::Company => records.companies.iter().any(|c| c.id == *entity_id),
            EntityType::Deal => records.deals.iter().any(|d| d.id == *entity_id),
            EntityType::Contact => records.contacts.iter().any(|c| c.id == *entity_id),
            EntityType::Activity => activities.iter().any(|a| a.id == *entity_id),
        };
        if !exists {
            outcome.complete(items);
        }
    }
}

/// Builds the outbound sync from the configuration on the process's pool: the HubSpot client, the SQS retry queue
/// when `RETRY_QUEUE_URL` is set, and the webhook applier whose events wait in the same retry queue.
pub async fn from_config(
    config: &crmsync_app::Config,
    pool: crmsync_db::Pool,
) -> Result<OutboundSync<crmsync_queue::SqsRetryQueue>, AppError> {
    let hubspot = HubSpotClient::new(config.hubspot()?)?;
    let retry_queue = config.retry_queue().await;
    let settings = SyncSettings {
        batch_size: config.sync.batch_size,
        lease: config.sync.lease,
        retry: RetryPolicy {
            max_attempts: config.sync.max_attempts,
            retry_window: config.sync.retry_window,
            ..RetryPolicy::default()
        },
        field_policies: config.field_policies.clone(),
        circuit: crmsync_domain::circuit::CircuitSettings {
            failures_to_open: config.sync.circuit_failures,
            cooldown: config.sync.circuit_cooldown,
        },
        ..SyncSettings::default()
    };
    let mut applier = crmsync_inbound::Applier::new(pool.clone(), hubspot.clone(), config.webhook.app_id.clone())
        .with_portal_id(config.webhook.portal_id)
        .with_retry_policy(settings.retry)
        .with_field_policies(config.field_policies.clone());
    if let Some(queue) = &retry_queue {
        applier = applier.with_retry_queue(std::sync::Arc::new(queue.clone()));
    }
    Ok(OutboundSync::new(PgSyncStore::new(pool), hubspot, retry_queue, settings).with_inbox(applier))
}

impl<Q> OutboundSync<Q> {
    pub fn retry_queue(&self) -> Option<&Q> {
        self.retry_queue.as_ref()
    }

    /// The webhook applier this drain applies waiting events with: reconciliation and the first import use it
    /// too, so they share its pool, HubSpot client and one-pass-at-a-time lock.
    pub fn inbox(&self) -> Option<&crmsync_inbound::Applier> {
        self.inbox.as_ref()
    }
}
