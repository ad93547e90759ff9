//! Applying stored webhook events to the local CRM, in occurredAt order, by field ownership.
//!
//! One pass takes due inbox rows, reads from HubSpot the records created there (batch read, ≤100 per call,
//! before the transaction opens), then applies every event inside one transaction (a savepoint per event only
//! after an event broke a database rule, so that event alone is marked dead), and after the commit writes our id
//! back to the records created from HubSpot. A pass dropped before its commit keeps nothing. The webhook handler
//! bounds a pass with a deadline ([`Applier::apply_ids_until`]); what it cuts off stays in the inbox. Each event locks its inbox row (SKIP LOCKED), so concurrent passes never apply an
//! event twice, and its local record (FOR UPDATE), so events about one record apply one at a time. An event
//! that cannot be applied yet (a deal whose company is not local) stays in the inbox as `retry` with a backoff,
//! and a retry-queue message makes it come back early when SQS is configured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use crmsync_db::inbox::{self, Conflict, NewCompany, NewContact, NewDeal};
use crmsync_db::{DbError, GenericClient, PgSyncStore, Pool};
use crmsync_domain::ports::RetryQueue;
use crmsync_domain::sync::{COMPANY_ASSOCIATION, PipelineMap, RetryDecision, RetryMessage, RetryPolicy, value_hash};
#[allow(unused_imports)] // Named by the doc links below.
use crmsync_domain::webhook::INBOX_RETRY_KIND;
use crmsync_domain::webhook::{
    Decision, ECHO_WINDOW_MS, EventKind, FieldOwner, ObjectKind, WebhookEvent, apply_order, column_value,
    contact_full_name, decide, field_rule, is_email, local_stage,
};
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use crmsync_hubspot::{HubSpotClient, HubSpotObject, ObjectType, UpdateInput};
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;

use crmsync_app::AppError;

/// Events taken per pass by [`apply_pending_inbox`].
pub const DEFAULT_PASS_LIMIT: i64 = 500;

/// What a pass did, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    pub applied: u64,
    pub skipped: u64,
    /// Left for a later attempt.
    pub waiting: u64,
    pub dead: u64,
    /// Left untouched (still open) because the pass ran out of time: the re-apply pass or a retry message takes
    /// them.
    pub deferred: u64,
    /// Records created locally from HubSpot.
    pub created: u64,
    /// Outcome label → count (`echo`, `local_owned`, `older_than_local`, `stage_changed`, ...).
    pub outcomes: std::collections::BTreeMap<String, u64>,
}

/// Applies stored events. Built once per process; cheap to clone.
#[derive(Clone)]
pub struct Applier {
    pool: Pool,
    hubspot: HubSpotClient,
    retry_queue: Option<Arc<dyn RetryQueue>>,
    app_id: Option<String>,
    retry: RetryPolicy,
    /// One pass at a time per process: concurrent deliveries would otherwise lock the same records in different
    /// orders and deadlock (PostgreSQL would abort one, whose events then wait for the next pass).
    serial: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("app_id", &self.app_id)
            .field("retry_queue", &self.retry_queue.is_some())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// How long a creation event stays held (`retry`) while our id is written back to HubSpot: a pass cut off
/// before the write-back finished leaves it to the re-apply pass after this.
const WRITE_BACK_HOLD: Duration = Duration::from_secs(30);

/// Extra time given to the SQS sends after the deadline: they are quick, and they make waiting events come back
/// in seconds rather than at the next scheduled drain.
const SQS_GRACE: Duration = Duration::from_millis(250);

/// A record created locally from HubSpot whose HubSpot copy still needs our id.
#[derive(Debug, Clone)]
struct Created {
    inbox_id: Uuid,
    /// The event's outcome once the write-back succeeded: `created`, or `written_back` (a record created by an
    /// earlier pass that did not get to write our id).
    label: &'static str,
    attempts_before: i32,
    kind: ObjectKind,
    hubspot_id: String,
    local_id: Uuid,
}

/// What one pass did, kept until its transaction commits.
#[derive(Default)]
struct Pass {
    report: ApplyReport,
    postponed: Vec<(Uuid, i32, Duration)>,
    /// Events given up in this pass, with their attempts: each gets a DLQ-bound retry message.
    dead: Vec<(Uuid, i32)>,
    /// Events left open, untouched, with their attempts so far.
    deferred: Vec<(Uuid, i32)>,
    created: Vec<Created>,
}

/// How one event ended.
enum Outcome {
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
struct PassContext<'a> {
    pipeline: Option<&'a PipelineMap>,
    /// Records created in HubSpot, read before the transaction: `Ok(None)` = HubSpot has no such record.
    fetched: &'a HashMap<(ObjectKind, String), Result<Option<HubSpotObject>, String>>,
    /// The HubSpot read was cut off by the deadline: creation events are left for a later pass.
    reads_cut: bool,
    /// Deals that this pass's events move to another pipeline: their stage changes are not ours to apply.
    leaving_pipeline: std::collections::HashSet<&'a str>,
    app_id: Option<&'a str>,
}

/// How a pass is run.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    /// Stop calling HubSpot and SQS at this instant (the webhook handler answers HubSpot within 5 s).
    deadline: Option<tokio::time::Instant>,
    /// The pass handles retry-queue messages: an event that dies is reported by failing its own message, so no
    /// new DLQ-bound message is sent for it.
    from_retry_queue: bool,
}

/// `future`'s output, or `None` when `deadline` passes first (the future is dropped).
async fn before<F: std::future::Future>(deadline: Option<tokio::time::Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

impl Applier {
    pub fn new(pool: Pool, hubspot: HubSpotClient, app_id: Option<String>) -> Self {
        Self {
            pool,
            hubspot,
            retry_queue: None,
            app_id,
            retry: RetryPolicy::default(),
            serial: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Sends a message per postponed event to the SQS retry queue (kind [`INBOX_RETRY_KIND`]).
    pub fn with_retry_queue(mut self, queue: Arc<dyn RetryQueue>) -> Self {
        self.retry_queue = Some(queue);
        self
    }

    /// Backoff and attempts for events that cannot be applied yet.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Applies the given inbox rows (those still open), in occurredAt order.
    pub async fn apply_ids(&self, ids: &[Uuid]) -> Result<ApplyReport, AppError> {
        self.apply(ids, Run::default()).await
    }

    /// Like [`Applier::apply_ids`], but calls HubSpot and SQS only until `deadline`: what is left then stays in
    /// the inbox for the re-apply pass (and a retry message when SQS is configured). For the webhook handler
    /// under Lambda, which must answer HubSpot within 5 s and is frozen once it has answered.
    ///
    /// A cut-off HubSpot read leaves the creation events it was for open and untouched; the other events of the
    /// pass still apply. A cut-off write-back of our id leaves the created records' events held, and the re-apply
    /// pass writes it again (the write is idempotent: it sets `crmsync_id` to the same local id).
    pub async fn apply_ids_until(&self, ids: &[Uuid], deadline: tokio::time::Instant) -> Result<ApplyReport, AppError> {
        self.apply(
            ids,
            Run {
                deadline: Some(deadline),
                ..Run::default()
            },
        )
        .await
    }

    /// Applies the events that retry-queue messages name, and returns each event's inbox status afterwards
    /// (`applied`, `skipped`, `retry`, `dead`, ...). An event that dies here gets no new message: its own message
    /// is the DLQ-bound one, so the handler should report the messages of `dead` events failed (SQS's redrive
    /// policy then moves them to the DLQ after maxReceiveCount receives), like it does for dead sync items.
    pub async fn apply_retried(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, String>, AppError> {
        self.apply(
            ids,
            Run {
                from_retry_queue: true,
                ..Run::default()
            },
        )
        .await?;
        let client = self.pool.get().await.map_err(DbError::from)?;
        Ok(inbox::statuses(&client, ids).await?)
    }

    async fn apply(&self, ids: &[Uuid], run: Run) -> Result<ApplyReport, AppError> {
        if ids.is_empty() {
            return Ok(ApplyReport::default());
        }
        let Some(_serial) = before(run.deadline, self.serial.lock()).await else {
            return Ok(ApplyReport {
                deferred: ids.len() as u64,
                ..ApplyReport::default()
            });
        };
        let store = inbox::PgInboxStore::new(self.pool.clone());
        let mut events: Vec<(Uuid, WebhookEvent)> = Vec::new();
        for (id, payload) in store.open_payloads(ids).await? {
            match WebhookEvent::from_value(&payload, 0) {
                Ok(event) => events.push((id, event)),
                Err(error) => {
                    // Stored events passed the same parser; a row edited by hand is the only way here.
                    tracing::warn!(inbox_id = %id, %error, "unreadable inbox row");
                }
            }
        }
        events.sort_by(|(_, a), (_, b)| apply_order(a, b));
        let pipeline = PgSyncStore::new(self.pool.clone()).pipeline_map().await?;
        // HubSpot is called before the transaction opens, so a slow answer holds no locks, and a read cut off by
        // the deadline is simply dropped.
        let (fetched, reads_cut) = match before(run.deadline, self.fetch_created(&events)).await {
            Some(fetched) => (fetched, false),
            None => {
                tracing::info!("reading records created in HubSpot ran past the deadline; their events wait");
                (HashMap::new(), true)
            }
        };
        let context = PassContext {
            pipeline: pipeline.as_ref(),
            fetched: &fetched,
            reads_cut,
            leaving_pipeline: leaving_pipeline(&events, pipeline.as_ref()),
            app_id: self.app_id.as_deref(),
        };

        // Fast path: the whole pass in one transaction, no savepoints. If an event breaks a database rule, that
        // transaction is dropped (rolled back) and the pass runs again with a savepoint per event, so that event
        // alone is given up.
        let mut careful = false;
        let mut conflicts = 0;
        let pass = loop {
            match self.run_pass(&events, &context, careful).await {
                Ok(Some(pass)) => break pass,
                Ok(None) => careful = true,
                // Passes in other processes (Lambda instances) lock the same records in another order: PostgreSQL
                // aborts one of them. Nothing of it was kept, so run it again.
                Err(AppError::Db(error)) if error.is_transaction_conflict() && conflicts < 3 => {
                    conflicts += 1;
                    tracing::info!(%error, conflicts, "webhook pass aborted by a deadlock; running it again");
                    tokio::time::sleep(Duration::from_millis(20 * conflicts)).await;
                }
                Err(error) => return Err(error),
            }
        };
        let Pass {
            mut report,
            mut postponed,
            mut dead,
            deferred,
            created,
        } = pass;
        report.created = report.outcomes.get("created").copied().unwrap_or(0);
        if !created.is_empty() {
            match before(run.deadline, self.write_back(&created)).await {
                Some(failures) => {
                    let (more_postponed, more_dead) = self.close_written_back(&created, &failures).await?;
                    postponed.extend(more_postponed);
                    dead.extend(more_dead);
                }
                // The rows stay held; the re-apply pass writes our id again after WRITE_BACK_HOLD.
                None => tracing::info!(
                    records = created.len(),
                    "writing crmsync_id back to HubSpot ran past the deadline; the re-apply pass finishes it"
                ),
            }
        }
        let mut messages: Vec<(Uuid, i32, Duration)> = postponed;
        // Deferred events come back through SQS at once rather than at the next scheduled drain.
        messages.extend(deferred.iter().map(|(id, attempts)| (*id, *attempts, Duration::ZERO)));
        if !run.from_retry_queue {
            // Like a dead sync item: a message the retry handler reports failed on every receive, so the redrive
            // policy moves it to the DLQ and the DLQ alarm fires, however the event died.
            messages.extend(dead.iter().map(|(id, attempts)| (*id, *attempts, Duration::ZERO)));
        }
        let sqs_deadline = run.deadline.map(|d| d + SQS_GRACE);
        if before(sqs_deadline, self.schedule_retries(&messages)).await.is_none() {
            tracing::info!(
                events = messages.len(),
                "retry messages ran past the deadline; the next pass takes these events"
            );
        }
        Ok(report)
    }

    /// One transaction over the events still open. `careful` wraps each event in a savepoint; without it, a data
    /// error returns `None` (nothing of the pass is kept).
    async fn run_pass(
        &self,
        events: &[(Uuid, WebhookEvent)],
        context: &PassContext<'_>,
        careful: bool,
    ) -> Result<Option<Pass>, AppError> {
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let mut transaction = client.transaction().await.map_err(DbError::from)?;
        let ids: Vec<Uuid> = events.iter().map(|(id, _)| *id).collect();
        let locked = inbox::lock_open_many(&transaction, &ids).await?;
        let mut pass = Pass::default();
        let mut finished: Vec<(Uuid, &'static str, &'static str)> = Vec::new();
        let mut held: Vec<Uuid> = Vec::new();
        for (id, event) in events {
            let Some(&attempts_before) = locked.get(id) else {
                continue;
            };
            let span = tracing::debug_span!("webhook_event", inbox_id = %id, event_type = %event.event_type,
                object_id = ?event.object_id);
            let target = EventTarget {
                inbox_id: *id,
                attempts_before,
            };
            let outcome = if careful {
                let savepoint = transaction.savepoint("event").await.map_err(DbError::from)?;
                let outcome = apply_event(&savepoint, target, event, context, &mut pass.created)
                    .instrument(span)
                    .await;
                if matches!(&outcome, Err(error) if error.is_data_error()) {
                    savepoint.rollback().await.map_err(DbError::from)?;
                } else {
                    savepoint.commit().await.map_err(DbError::from)?;
                }
                outcome
            } else {
                apply_event(&transaction, target, event, context, &mut pass.created)
                    .instrument(span)
                    .await
            };
            let report = &mut pass.report;
            match outcome {
                Ok(Outcome::Applied(label)) => {
                    finished.push((*id, "applied", label));
                    report.applied += 1;
                    *report.outcomes.entry(label.to_owned()).or_default() += 1;
                }
                Ok(Outcome::Created(label)) => {
                    held.push(*id);
                    report.applied += 1;
                    *report.outcomes.entry(label.to_owned()).or_default() += 1;
                }
                Ok(Outcome::Skipped(label)) => {
                    finished.push((*id, "skipped", label));
                    report.skipped += 1;
                    *report.outcomes.entry(label.to_owned()).or_default() += 1;
                }
                Ok(Outcome::Leave) => {
                    pass.deferred.push((*id, attempts_before));
                    report.deferred += 1;
                }
                Ok(Outcome::Wait(reason)) => {
                    // Nothing of the event was written; only the row's attempt bookkeeping.
                    match self.retry.after_failure(attempts_before, rand::random::<f64>(), None) {
                        RetryDecision::RetryAfter { delay, attempts } => {
                            inbox::postpone(&transaction, *id, attempts, Some(delay.as_secs_f64()), &reason).await?;
                            pass.postponed.push((*id, attempts, delay));
                            report.waiting += 1;
                        }
                        RetryDecision::Dead { attempts } => {
                            inbox::postpone(&transaction, *id, attempts, None, &reason).await?;
                            pass.dead.push((*id, attempts));
                            report.dead += 1;
                            tracing::warn!(%reason, attempts, "webhook event dead after its last attempt");
                        }
                    }
                }
                Ok(Outcome::Error(label, reason)) => {
                    inbox::give_up(&transaction, *id, attempts_before + 1, label, &reason).await?;
                    pass.dead.push((*id, attempts_before + 1));
                    report.dead += 1;
                    *report.outcomes.entry(label.to_owned()).or_default() += 1;
                    tracing::warn!(inbox_id = %id, %reason, "webhook event cannot be applied");
                }
                Err(error) if error.is_data_error() && !careful => {
                    tracing::info!(inbox_id = %id, "a webhook event broke a database rule; applying the pass event by event");
                    return Ok(None);
                }
                Err(error) if error.is_data_error() => {
                    // The event's writes broke a database rule: they are undone; give the event up with the reason.
                    let reason = crmsync_domain::DomainError::from(error).to_string();
                    tracing::warn!(inbox_id = %id, %reason, "webhook event refused by the database");
                    inbox::postpone(&transaction, *id, attempts_before + 1, None, &reason).await?;
                    pass.dead.push((*id, attempts_before + 1));
                    report.dead += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
        inbox::finish_many(&transaction, &finished).await?;
        inbox::hold_for_write_back(&transaction, &held, WRITE_BACK_HOLD.as_secs_f64()).await?;
        // Everything above is one transaction: a pass dropped before this line (a deadline, a crash) keeps nothing.
        transaction.commit().await.map_err(DbError::from)?;
        Ok(Some(pass))
    }

    /// Reads the records that creation events name (not our own writes), ≤100 per call.
    async fn fetch_created(
        &self,
        events: &[(Uuid, WebhookEvent)],
    ) -> HashMap<(ObjectKind, String), Result<Option<HubSpotObject>, String>> {
        let mut fetched = HashMap::new();
        for kind in ObjectKind::ALL {
            let ids: Vec<String> = events
                .iter()
                .filter(|(_, e)| {
                    e.kind == EventKind::Creation && e.object == Some(kind) && !e.is_own_write(self.app_id.as_deref())
                })
                .filter_map(|(_, e)| e.object_id.clone())
                .collect::<std::collections::BTreeSet<_>>()
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

    /// Writes our id into `crmsync_id` of records created in HubSpot, so the outbound sync's upsert on it finds
    /// them instead of creating duplicates. Returns the indexes (into `created`) that failed, with the reason.
    /// Idempotent: writing the same local id again changes nothing, so a write-back cut off or lost (the pass's
    /// rows stay held) is simply made again by the re-apply pass.
    async fn write_back(&self, created: &[Created]) -> Vec<(usize, String)> {
        let mut failures = Vec::new();
        for kind in ObjectKind::ALL {
            let indexes: Vec<usize> = (0..created.len()).filter(|i| created[*i].kind == kind).collect();
            if indexes.is_empty() {
                continue;
            }
            let inputs: Vec<UpdateInput> = indexes
                .iter()
                .map(|i| UpdateInput {
                    id: created[*i].hubspot_id.clone(),
                    properties: [(LOCAL_ID_PROPERTY.to_owned(), created[*i].local_id.to_string())].into(),
                })
                .collect();
            match self.hubspot.batch_update(hubspot_type(kind), None, &inputs).await {
                Ok(outcome) => {
                    if !outcome.is_complete() {
                        tracing::warn!(
                            failed = outcome.failed.len(),
                            object_type = kind.object_type(),
                            "could not write crmsync_id to some records created in HubSpot"
                        );
                    }
                    failures.extend(
                        outcome
                            .failed
                            .into_iter()
                            .map(|(input, error)| (indexes[input], error.to_string())),
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, object_type = kind.object_type(), "could not write crmsync_id to records created in HubSpot");
                    let text = error.to_string();
                    failures.extend(indexes.iter().map(|i| (*i, text.clone())));
                }
            }
        }
        failures
    }

    /// Closes the held creation events whose write-back succeeded (`applied`, `created`); the failed ones get
    /// another attempt (or die) like any event that could not be applied. Returns (postponed, dead).
    #[allow(clippy::type_complexity)]
    async fn close_written_back(
        &self,
        created: &[Created],
        failures: &[(usize, String)],
    ) -> Result<(Vec<(Uuid, i32, Duration)>, Vec<(Uuid, i32)>), AppError> {
        let failed: HashMap<usize, &str> = failures.iter().map(|(i, e)| (*i, e.as_str())).collect();
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let transaction = client.transaction().await.map_err(DbError::from)?;
        let done: Vec<(Uuid, &str, &str)> = (0..created.len())
            .filter(|i| !failed.contains_key(i))
            .map(|i| (created[i].inbox_id, "applied", created[i].label))
            .collect();
        inbox::finish_many(&transaction, &done).await?;
        let (mut postponed, mut dead) = (Vec::new(), Vec::new());
        for (index, error) in failed {
            let event = &created[index];
            let reason = format!("created locally; writing crmsync_id to HubSpot failed: {error}");
            match self
                .retry
                .after_failure(event.attempts_before, rand::random::<f64>(), None)
            {
                RetryDecision::RetryAfter { delay, attempts } => {
                    inbox::postpone(
                        &transaction,
                        event.inbox_id,
                        attempts,
                        Some(delay.as_secs_f64()),
                        &reason,
                    )
                    .await?;
                    postponed.push((event.inbox_id, attempts, delay));
                }
                RetryDecision::Dead { attempts } => {
                    inbox::postpone(&transaction, event.inbox_id, attempts, None, &reason).await?;
                    dead.push((event.inbox_id, attempts));
                }
            }
        }
        transaction.commit().await.map_err(DbError::from)?;
        Ok((postponed, dead))
    }

    /// Retry-queue messages: (inbox id, attempts, delay). Postgres stays the truth: a failed send only means the
    /// event waits for the next pass.
    async fn schedule_retries(&self, postponed: &[(Uuid, i32, Duration)]) {
        let Some(queue) = &self.retry_queue else { return };
        if postponed.is_empty() {
            return;
        }
        let messages: Vec<(RetryMessage, Duration)> = postponed
            .iter()
            .map(|(id, attempts, delay)| (RetryMessage::for_inbox_event(*id, *attempts), *delay))
            .collect();
        if let Err(error) = queue.schedule(&messages).await {
            tracing::warn!(%error, events = messages.len(), "could not schedule webhook retries on SQS; the next pass takes them");
        }
    }
}

/// The deals that `events` move out of our pipeline (a `pipeline` change to another pipeline's id).
fn leaving_pipeline<'a>(
    events: &'a [(Uuid, WebhookEvent)],
    pipeline: Option<&PipelineMap>,
) -> std::collections::HashSet<&'a str> {
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

/// The re-apply pass: applies due inbox events (pending ones a crashed or busy handler left, and postponed ones
/// whose wait is over), up to `limit`, oldest occurredAt first. Call it from the outbound sync's drain (before
/// the drain claims sync_queue rows, so HubSpot's changes land before local values are sent) and for retry-queue
/// messages of kind [`INBOX_RETRY_KIND`].
pub async fn apply_pending_inbox(applier: &Applier, limit: i64) -> Result<ApplyReport, AppError> {
    let ids = inbox::PgInboxStore::new(applier.pool.clone()).due(limit).await?;
    applier.apply_ids(&ids).await
}

fn hubspot_type(kind: ObjectKind) -> ObjectType {
    match kind {
        ObjectKind::Company => ObjectType::Companies,
        ObjectKind::Contact => ObjectType::Contacts,
        ObjectKind::Deal => ObjectType::Deals,
    }
}

fn creation_properties(kind: ObjectKind) -> &'static [&'static str] {
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

/// The pseudo-field (in `crmsync.field_changes`) that marks a deal moved out of our pipeline in HubSpot.
const LEFT_PIPELINE: &str = "@left_pipeline";

fn unknown_stage(pipeline: &PipelineMap, stage_id: &str) -> String {
    format!(
        "deal stage {stage_id:?} is not in the pipeline map of pipeline {}: run `crmsync hubspot-setup` if the \
         pipeline changed in HubSpot",
        pipeline.pipeline_id
    )
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_else(Utc::now)
}

/// The inbox row an event came from.
#[derive(Debug, Clone, Copy)]
struct EventTarget {
    inbox_id: Uuid,
    attempts_before: i32,
}

async fn apply_event(
    client: &impl GenericClient,
    target: EventTarget,
    event: &WebhookEvent,
    context: &PassContext<'_>,
    created: &mut Vec<Created>,
) -> Result<Outcome, DbError> {
    let inbox_id = target.inbox_id;
    let Some(kind) = event.object else {
        return Ok(Outcome::Skipped("unknown_object"));
    };
    if event.kind == EventKind::Unknown {
        return Ok(Outcome::Skipped("unknown_type"));
    }
    if event.is_own_write(context.app_id) {
        return Ok(Outcome::Skipped("echo"));
    }
    let object_id = event.object_id.as_deref();
    match &event.kind {
        EventKind::PropertyChange { name, value } => match object_id {
            Some(id) => property_change(client, inbox_id, event, kind, id, name, value, context).await,
            None => Ok(Outcome::Skipped("no_object_id")),
        },
        EventKind::Creation => match object_id {
            Some(id) => creation(client, target, kind, id, context, created).await,
            None => Ok(Outcome::Skipped("no_object_id")),
        },
        EventKind::Deletion | EventKind::PrivacyDeletion => match object_id {
            Some(id) => deletion(client, event, kind, id, true).await,
            None => Ok(Outcome::Skipped("no_object_id")),
        },
        EventKind::Restore => match object_id {
            Some(id) => deletion(client, event, kind, id, false).await,
            None => Ok(Outcome::Skipped("no_object_id")),
        },
        EventKind::Merge { .. } => merge(client, event, kind).await,
        EventKind::AssociationChange { .. } => association(client, event).await,
        EventKind::Unknown => Ok(Outcome::Skipped("unknown_type")),
    }
}

#[allow(clippy::too_many_arguments)]
async fn property_change(
    client: &impl GenericClient,
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
    let Some(local) = inbox::find_local(client, kind, hubspot_id).await? else {
        return Ok(Outcome::Wait(format!(
            "{} {hubspot_id} is not in the local CRM yet",
            kind.singular()
        )));
    };
    if local.hubspot_sync_status == "deleted" {
        return Ok(Outcome::Skipped("deleted_locally"));
    }
    if property == LOCAL_ID_PROPERTY && value == local.id.to_string() {
        // The outbound sync's upsert key, written with the record: not in the echo ledger, but plainly ours.
        return Ok(Outcome::Skipped("echo"));
    }
    if kind == ObjectKind::Deal && property == "pipeline" {
        let Some(pipeline) = context.pipeline else {
            return Ok(Outcome::Wait("no pipeline map yet: run `crmsync hubspot-setup`".into()));
        };
        if value.trim() != pipeline.pipeline_id {
            // Moved out of our pipeline in HubSpot: recorded (the event and a marker, so its stage changes in that
            // pipeline are recognised), not applied and not re-asserted.
            inbox::record_hubspot_change(client, kind, local.id, LEFT_PIPELINE, millis(event.occurred_at)).await?;
            return Ok(Outcome::Skipped("left_pipeline"));
        }
        // Back in (or still in) our pipeline: the local-owned rule below applies again.
        inbox::forget_field_change(client, kind, local.id, LEFT_PIPELINE).await?;
    }
    let occurred = millis(event.occurred_at);
    let hash = value_hash(value);
    let field = rule.column.filter(|_| rule.owner != FieldOwner::Local).unwrap_or("");
    let (echo, changed) = inbox::echo_and_field_change(
        client,
        kind,
        hubspot_id,
        property,
        &hash,
        occurred,
        ECHO_WINDOW_MS,
        local.id,
        field,
    )
    .await?;
    if echo {
        return Ok(Outcome::Skipped("echo"));
    }
    let conflict =
        |local_value: Option<String>, winner: &'static str, local_changed_at: Option<DateTime<Utc>>| Conflict {
            kind,
            entity_id: local.id,
            hubspot_id,
            property,
            local_value,
            hubspot_value: Some(value),
            winner,
            rule: rule.owner.rule_name(),
            local_changed_at,
            hubspot_changed_at: occurred,
            inbox_id,
        };
    let Some(column) = rule.column.filter(|_| rule.owner != FieldOwner::Local) else {
        // Local owns it: HubSpot keeps our value unless it differs; then forget the written hash so the next sync
        // sends the local value again, and queue that sync.
        if inbox::property_hash(client, kind, local.id, property).await?.as_deref() == Some(hash.as_str()) {
            return Ok(Outcome::Skipped("unchanged"));
        }
        inbox::forget_property_hash(client, kind, local.id, Some(property)).await?;
        inbox::enqueue_update(client, kind, local.id).await?;
        inbox::record_conflict(client, &conflict(None, "local", None)).await?;
        return Ok(Outcome::Skipped("local_owned"));
    };
    let current = if column == "stage" {
        inbox::deal_stage(client, local.id).await?.map(|(stage, _)| stage)
    } else {
        inbox::column_text(client, kind, local.id, column).await?
    };
    match decide(
        rule.owner,
        event.occurred_at,
        changed.as_ref().map(|(at, _)| at.timestamp_millis()),
    ) {
        Decision::Reassert => unreachable!("local-owned properties returned above"),
        Decision::KeepNewer => {
            let (at, source) = changed.expect("KeepNewer needs a change time");
            if source == "local" {
                inbox::record_conflict(client, &conflict(current.clone(), "local", Some(at))).await?;
            }
            return Ok(Outcome::Skipped("older_than_local"));
        }
        Decision::Apply => {}
    }
    let new_value = if column == "stage" {
        let Some(pipeline) = context.pipeline else {
            return Ok(Outcome::Wait("no pipeline map yet: run `crmsync hubspot-setup`".into()));
        };
        match local_stage(pipeline, value) {
            Some(stage) => Some(stage.as_str().to_owned()),
            None if context.leaving_pipeline.contains(hubspot_id)
                || inbox::field_changed_at(client, kind, local.id, LEFT_PIPELINE)
                    .await?
                    .is_some() =>
            {
                // A stage of the other pipeline the deal was moved to: not ours to map.
                return Ok(Outcome::Skipped("other_pipeline"));
            }
            None => return Ok(Outcome::Error("unknown_stage", unknown_stage(pipeline, value))),
        }
    } else {
        match column_value(column, value) {
            Ok(v) => v,
            Err(error) => {
                tracing::info!(%error, "HubSpot value not stored");
                return Ok(Outcome::Skipped("invalid_value"));
            }
        }
    };
    let label = if current == new_value {
        "unchanged"
    } else {
        // A local edit not yet in HubSpot (its value is not what the sync last wrote) that HubSpot's newer change
        // replaces: an override worth recording.
        if let Some((at, source)) = &changed
            && source == "local"
        {
            let synced = inbox::property_hash(client, kind, local.id, property).await?;
            if synced.as_deref() != Some(hash_of_local(context, column, current.as_deref()).as_str()) {
                inbox::record_conflict(client, &conflict(current.clone(), "hubspot", Some(*at))).await?;
            }
        }
        if column == "stage" {
            let (from, company) = inbox::deal_stage(client, local.id).await?.unwrap_or_default();
            let to = new_value.clone().unwrap_or_default();
            inbox::set_deal_stage(client, local.id, &to, occurred).await?;
            inbox::insert_stage_activity(client, local.id, company, &from, &to, occurred).await?;
            "stage_changed"
        } else {
            inbox::set_column(client, kind, local.id, column, new_value.as_deref()).await?;
            "applied"
        }
    };
    // HubSpot holds this value now: the outbound sync must not send it back.
    inbox::record_applied(client, kind, local.id, column, occurred, property, &hash).await?;
    Ok(Outcome::Applied(label))
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

async fn creation(
    client: &impl GenericClient,
    target: EventTarget,
    kind: ObjectKind,
    hubspot_id: &str,
    context: &PassContext<'_>,
    created: &mut Vec<Created>,
) -> Result<Outcome, DbError> {
    let fetched = context.fetched.get(&(kind, hubspot_id.to_owned()));
    let carries_our_id =
        |object: &HubSpotObject| object.property(LOCAL_ID_PROPERTY).is_some_and(|v| !v.trim().is_empty());
    if let Some(local) = inbox::find_local(client, kind, hubspot_id).await? {
        // Created by an earlier pass whose write-back of our id did not happen (cut off, or HubSpot failed): make
        // it now. Otherwise the record is simply known already.
        if let Some(Ok(Some(object))) = fetched
            && !carries_our_id(object)
        {
            created.push(Created {
                inbox_id: target.inbox_id,
                label: "written_back",
                attempts_before: target.attempts_before,
                kind,
                hubspot_id: hubspot_id.to_owned(),
                local_id: local.id,
            });
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
    let text = |name: &str| {
        object
            .property(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let checked = |column: &str, name: &str| text(name).and_then(|v| column_value(column, &v).ok().flatten());
    let id = match kind {
        ObjectKind::Company => {
            let company = NewCompany {
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
                lifecycle_stage: checked("lifecycle_stage", "lifecyclestage"),
                description: text("description"),
                owner_id: text("hubspot_owner_id"),
            };
            inbox::insert_company(client, &company).await?
        }
        ObjectKind::Contact => {
            let email = text("email").filter(|e| is_email(e));
            let contact = NewContact {
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
                lifecycle_stage: checked("lifecycle_stage", "lifecyclestage"),
                owner_id: text("hubspot_owner_id"),
            };
            inbox::insert_contact(client, &contact).await?
        }
        ObjectKind::Deal => {
            // Only deals of our pipeline are ours: a deal in another pipeline is recorded and left alone, and a
            // stage of our pipeline that the map does not know is an error, never a silent new_match.
            let Some(pipeline) = context.pipeline else {
                return Ok(Outcome::Wait("no pipeline map yet: run `crmsync hubspot-setup`".into()));
            };
            if text("pipeline").as_deref() != Some(pipeline.pipeline_id.as_str()) {
                return Ok(Outcome::Skipped("other_pipeline"));
            }
            let stage_id = text("dealstage").unwrap_or_default();
            let Some(stage) = local_stage(pipeline, &stage_id) else {
                return Ok(Outcome::Error("unknown_stage", unknown_stage(pipeline, &stage_id)));
            };
            let deal = NewDeal {
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
            };
            inbox::insert_deal(client, &deal).await?
        }
    };
    let Some(id) = id else {
        return Ok(Outcome::Skipped("already_local"));
    };
    // What HubSpot holds is what we hold: the outbound sync has nothing to send for these values.
    for property in creation_properties(kind) {
        if let Some(value) = object.property(property) {
            inbox::set_property_hash(client, kind, id, property, &value_hash(value)).await?;
        }
    }
    created.push(Created {
        inbox_id: target.inbox_id,
        label: "created",
        attempts_before: target.attempts_before,
        kind,
        hubspot_id: hubspot_id.to_owned(),
        local_id: id,
    });
    Ok(Outcome::Created("created"))
}

async fn deletion(
    client: &impl GenericClient,
    event: &WebhookEvent,
    kind: ObjectKind,
    hubspot_id: &str,
    deleted: bool,
) -> Result<Outcome, DbError> {
    const FIELD: &str = "@deleted";
    let Some(local) = inbox::find_local(client, kind, hubspot_id).await? else {
        return Ok(Outcome::Skipped("not_local"));
    };
    if let Some((at, _)) = inbox::field_changed_at(client, kind, local.id, FIELD).await?
        && at.timestamp_millis() > event.occurred_at
    {
        return Ok(Outcome::Skipped("older_than_local"));
    }
    let occurred = millis(event.occurred_at);
    inbox::record_hubspot_change(client, kind, local.id, FIELD, occurred).await?;
    if (local.hubspot_sync_status == "deleted") == deleted {
        return Ok(Outcome::Applied("unchanged"));
    }
    inbox::set_deleted(client, kind, local.id, deleted).await?;
    if deleted {
        Ok(Outcome::Applied("deleted"))
    } else {
        // Back from the recycle bin: catch HubSpot up with anything that changed locally meanwhile.
        inbox::enqueue_update(client, kind, local.id).await?;
        Ok(Outcome::Applied("restored"))
    }
}

async fn merge(client: &impl GenericClient, event: &WebhookEvent, kind: ObjectKind) -> Result<Outcome, DbError> {
    let Some((survivor, replaced)) = event.merge_ids() else {
        return Ok(Outcome::Skipped("unknown_type"));
    };
    let survivor_local = inbox::find_local(client, kind, &survivor).await?;
    let mut replaced_locals = Vec::new();
    for id in &replaced {
        if let Some(local) = inbox::find_local(client, kind, id).await? {
            replaced_locals.push(local);
        }
    }
    let (keeper, others) = match survivor_local {
        Some(keeper) => (keeper, replaced_locals),
        None if replaced_locals.is_empty() => return Ok(Outcome::Skipped("not_local")),
        None => {
            let keeper = replaced_locals.remove(0);
            (keeper, replaced_locals)
        }
    };
    for other in &others {
        inbox::retire_merged(client, kind, other.id, keeper.id).await?;
    }
    inbox::set_hubspot_id(client, kind, keeper.id, &survivor).await?;
    if keeper.hubspot_sync_status == "deleted" {
        inbox::set_deleted(client, kind, keeper.id, false).await?;
    }
    // The merged record's values may differ from ours: send every property again on the next sync.
    inbox::forget_property_hash(client, kind, keeper.id, None).await?;
    inbox::enqueue_update(client, kind, keeper.id).await?;
    Ok(Outcome::Applied("merged"))
}

async fn association(client: &impl GenericClient, event: &WebhookEvent) -> Result<Outcome, DbError> {
    let Some(link) = event.company_link() else {
        return Ok(Outcome::Skipped("unmapped_association"));
    };
    let child = inbox::find_local(client, link.child, &link.child_id).await?;
    let company = inbox::find_local(client, ObjectKind::Company, &link.company_id).await?;
    if link.removed {
        let (Some(child), Some(company)) = (child, company) else {
            return Ok(Outcome::Skipped("not_local"));
        };
        if inbox::company_of(client, link.child, child.id).await? != Some(company.id) {
            return Ok(Outcome::Applied("unchanged"));
        }
        inbox::set_company(client, link.child, child.id, None).await?;
        if link.child == ObjectKind::Deal {
            inbox::forget_property_hash(client, ObjectKind::Deal, child.id, Some(COMPANY_ASSOCIATION)).await?;
        }
        return Ok(Outcome::Applied("unlinked"));
    }
    let (Some(child), Some(company)) = (child, company) else {
        return Ok(Outcome::Wait(format!(
            "{} {} or company {} is not in the local CRM yet",
            link.child.singular(),
            link.child_id,
            link.company_id
        )));
    };
    let current = inbox::company_of(client, link.child, child.id).await?;
    if current == Some(company.id) {
        return Ok(Outcome::Applied("unchanged"));
    }
    if current.is_some() && !link.primary {
        // An extra, unlabeled company: the local record keeps its primary one.
        return Ok(Outcome::Skipped("not_primary"));
    }
    inbox::set_company(client, link.child, child.id, Some(company.id)).await?;
    if link.child == ObjectKind::Deal {
        inbox::set_property_hash(
            client,
            ObjectKind::Deal,
            child.id,
            COMPANY_ASSOCIATION,
            &value_hash(&link.company_id),
        )
        .await?;
    }
    Ok(Outcome::Applied("linked"))
}
