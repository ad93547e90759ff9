//! The applier and one pass over stored webhook events: reading the open rows, the deadline that bounds a pass, the
//! retry of a pass a deadlock aborted, and what happens after the commit (write-back of our ids, retry messages).
//!
//! One pass takes due inbox rows, reads from HubSpot the records created there (batch read, ≤100 per call,
//! before the transaction opens), then applies every event inside one transaction (a savepoint per event only
//! after an event broke a database rule, so that event alone is marked dead), and after the commit writes our id
//! back to the records created from HubSpot. A pass dropped before its commit keeps nothing. The webhook handler
//! bounds a pass with a deadline ([`Applier::apply_ids_until`]); what it cuts off stays in the inbox. Each event
//! locks its inbox row (SKIP LOCKED), so concurrent passes never apply an event twice, and its local record (FOR
//! UPDATE), so events about one record apply one at a time. An event that cannot be applied yet (a deal whose
//! company is not local) stays in the inbox as `retry` with a backoff, and a retry-queue message makes it come back
//! early when SQS is configured.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crmsync_app::AppError;
use crmsync_db::inbox;
use crmsync_db::{PgSyncStore, Pool};
use crmsync_domain::policy::FieldPolicies;
use crmsync_domain::ports::RetryQueue;
use crmsync_domain::sync::RetryPolicy;
use crmsync_domain::webhook::{InboxStatus, WebhookEvent, apply_order};
use crmsync_hubspot::HubSpotClient;
use serde::Serialize;
use uuid::Uuid;

use crate::event::{PassContext, leaving_pipeline};
use crate::pass::Pass;

/// The outcome of an event from a portal other than `HUBSPOT_PORTAL_ID` (recorded as skipped).
pub const OTHER_PORTAL: &str = "other_portal";

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
    /// Outcome label → count (`echo`, `reverted`, `older_than_local`, `stage_changed`, ...).
    pub outcomes: BTreeMap<String, u64>,
}

/// Applies stored events. Built once per process; cheap to clone.
#[derive(Clone)]
pub struct Applier {
    pub(crate) pool: Pool,
    pub(crate) hubspot: HubSpotClient,
    pub(crate) retry_queue: Option<Arc<dyn RetryQueue>>,
    pub(crate) app_id: Option<String>,
    /// The portal this deployment syncs with (`HUBSPOT_PORTAL_ID`); events from another are skipped.
    pub(crate) portal_id: Option<i64>,
    pub(crate) retry: RetryPolicy,
    pub(crate) policies: Arc<FieldPolicies>,
    /// One pass at a time per process: concurrent deliveries would otherwise lock the same records in different
    /// orders and deadlock (PostgreSQL would abort one, whose events then wait for the next pass).
    serial: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("app_id", &self.app_id)
            .field("portal_id", &self.portal_id)
            .field("retry_queue", &self.retry_queue.is_some())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Extra time given to the SQS sends after the deadline: they are quick, and they make waiting events come back
/// in seconds rather than at the next scheduled drain.
const SQS_GRACE: Duration = Duration::from_millis(250);

/// How a pass is run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Run {
    /// Stop calling HubSpot and SQS at this instant (the webhook handler answers HubSpot within 5 s).
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// The pass handles retry-queue messages: an event that dies is reported by failing its own message, so no
    /// new DLQ-bound message is sent for it.
    pub(crate) from_retry_queue: bool,
}

/// `future`'s output, or `None` when `deadline` passes first (the future is dropped).
pub(crate) async fn before<F: std::future::Future>(
    deadline: Option<tokio::time::Instant>,
    future: F,
) -> Option<F::Output> {
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
            portal_id: None,
            retry: RetryPolicy::default(),
            policies: Arc::new(FieldPolicies::defaults()),
            serial: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Sends a message per postponed event to the SQS retry queue (kind [`crmsync_domain::webhook::INBOX_RETRY_KIND`]).
    pub fn with_retry_queue(mut self, queue: Arc<dyn RetryQueue>) -> Self {
        self.retry_queue = Some(queue);
        self
    }

    /// Applies only events from this HubSpot portal: another portal's events (a sandbox where the same app is
    /// installed) are logged and recorded as skipped with outcome [`OTHER_PORTAL`], and nothing is read or written
    /// for them. HubSpot ids are unique only within a portal, so applying them would change unrelated records.
    pub fn with_portal_id(mut self, portal_id: Option<i64>) -> Self {
        self.portal_id = portal_id;
        self
    }

    /// Backoff and attempts for events that cannot be applied yet.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Which side wins each property (the defaults unless configured).
    pub fn with_field_policies(mut self, policies: Arc<FieldPolicies>) -> Self {
        self.policies = policies;
        self
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The HubSpot client the applier reads with.
    pub fn hubspot(&self) -> &HubSpotClient {
        &self.hubspot
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
    /// (`Applied`, `Skipped`, `Retry`, `Dead`, ...). An event that
    /// dies here gets no new message: its own message is the DLQ-bound one, so the handler should report the messages
    /// of `dead` events failed (SQS's redrive policy then moves them to the DLQ after maxReceiveCount receives), like
    /// it does for dead sync items.
    pub async fn apply_retried(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, InboxStatus>, AppError> {
        self.apply(
            ids,
            Run {
                from_retry_queue: true,
                ..Run::default()
            },
        )
        .await?;
        let client = self.pool.get().await?;
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
        let events = parsed_events(store.open_payloads(ids).await?);
        self.apply_events(&events, run).await
    }

    /// Applies open events read already (their rows are locked and checked again in the pass's transaction).
    async fn apply_events(&self, events: &[(Uuid, WebhookEvent)], run: Run) -> Result<ApplyReport, AppError> {
        if events.is_empty() {
            return Ok(ApplyReport::default());
        }
        if let Some(portal_id) = self.portal_id {
            let others: std::collections::BTreeSet<i64> = events
                .iter()
                .map(|(_, event)| event.portal_id)
                .filter(|id| *id != portal_id)
                .collect();
            if !others.is_empty() {
                tracing::warn!(expected = portal_id, from = ?others, "webhook events from another HubSpot portal are skipped (HUBSPOT_PORTAL_ID)");
            }
        }
        let pipeline = PgSyncStore::new(self.pool.clone()).pipeline_map().await?;
        // HubSpot is called before the transaction opens, so a slow answer holds no locks, and a read cut off by
        // the deadline is simply dropped.
        let reads = async {
            let created = self.fetch_created(events).await;
            let engagements = crate::engagement::fetch(&self.hubspot, self.engagements_to_read(events)).await;
            (created, engagements)
        };
        let ((fetched, engagements), reads_cut) = match before(run.deadline, reads).await {
            Some(fetched) => (fetched, false),
            None => {
                tracing::info!("reading records created in HubSpot ran past the deadline; their events wait");
                ((HashMap::new(), HashMap::new()), true)
            }
        };
        let context = PassContext {
            pipeline: pipeline.as_ref(),
            fetched: &fetched,
            engagements: &engagements,
            reads_cut,
            leaving_pipeline: leaving_pipeline(events, pipeline.as_ref()),
            app_id: self.app_id.as_deref(),
            portal_id: self.portal_id,
            policies: &self.policies,
        };
        let pass = self.run_until_committed(events, &context).await?;
        let report = self.after_commit(pass, run).await?;
        crate::metrics::emit_pass(&report, events, chrono::Utc::now().timestamp_millis());
        Ok(report)
    }

    /// The engagements that `events` need read (not our own writes, not another portal's).
    fn engagements_to_read<'e>(
        &'e self,
        events: &'e [(Uuid, WebhookEvent)],
    ) -> impl Iterator<Item = (crmsync_domain::engagement::EngagementKind, String)> + 'e {
        events
            .iter()
            .filter(|(_, e)| crate::engagement::needs_reading(e))
            .filter(|(_, e)| {
                !e.is_own_write(self.app_id.as_deref()) && !crate::event::is_other_portal(e, self.portal_id)
            })
            .filter_map(|(_, e)| Some((e.engagement?, crate::engagement::engagement_id(e)?.to_owned())))
    }

    /// Runs the pass until one run commits. Fast path: the whole pass in one transaction, no savepoints. If an
    /// event breaks a database rule, that transaction is dropped (rolled back) and the pass runs again with a
    /// savepoint per event, so that event alone is given up.
    async fn run_until_committed(
        &self,
        events: &[(Uuid, WebhookEvent)],
        context: &PassContext<'_>,
    ) -> Result<Pass, AppError> {
        let mut careful = false;
        let mut conflicts = 0;
        loop {
            match self.run_pass(events, context, careful).await {
                Ok(Some(pass)) => return Ok(pass),
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
        }
    }

    /// After the pass's commit: writes our id back to the records it created (until the deadline), then sends the
    /// retry messages (until the deadline and [`SQS_GRACE`]).
    async fn after_commit(&self, pass: Pass, run: Run) -> Result<ApplyReport, AppError> {
        let Pass {
            mut report,
            mut retries,
            created,
        } = pass;
        report.created = report.outcomes.get("created").copied().unwrap_or(0);
        if !created.is_empty() {
            match before(run.deadline, self.write_back(&created)).await {
                Some(failures) => retries.extend(self.close_written_back(&created, &failures).await?),
                // The rows stay held; the re-apply pass writes our id again after WRITE_BACK_HOLD.
                None => tracing::info!(
                    records = created.len(),
                    "writing crmsync_id back to HubSpot ran past the deadline; the re-apply pass finishes it"
                ),
            }
        }
        let messages = retries.messages(run.from_retry_queue);
        let sqs_deadline = run.deadline.map(|d| d + SQS_GRACE);
        if before(sqs_deadline, self.schedule_retries(&messages)).await.is_none() {
            tracing::info!(
                events = messages.len(),
                "retry messages ran past the deadline; the next pass takes these events"
            );
        }
        Ok(report)
    }
}

/// The re-apply pass: applies due inbox events (pending ones a crashed or busy handler left, and postponed ones
/// whose wait is over), up to `limit`, oldest occurredAt first. Call it from the outbound sync's drain (before
/// the drain claims sync_queue rows, so HubSpot's changes land before local values are sent) and for retry-queue
/// messages of kind [`crmsync_domain::webhook::INBOX_RETRY_KIND`].
pub async fn apply_pending_inbox(applier: &Applier, limit: i64) -> Result<ApplyReport, AppError> {
    let ids = inbox::PgInboxStore::new(applier.pool.clone()).due(limit).await?;
    applier.apply_ids(&ids).await
}

/// Like [`apply_pending_inbox`], over one lane of the inbox out of `lanes` (see
/// [`inbox::PgInboxStore::due_in_lane`]): `crmsync serve`'s background applier runs one pass per lane at the same
/// time, so a backlog is applied on more than one database connection. Every event of a record is in one lane, in
/// occurredAt order; events that reach across records (a deal's stage change logging an activity on its company, a
/// merge) may wait for another lane's commit, and a pass that deadlocks runs again, as passes in concurrent Lambda
/// instances do. The caller must run one pass at a time per lane.
pub async fn apply_pending_lane(applier: &Applier, limit: i64, lane: i32, lanes: i32) -> Result<ApplyReport, AppError> {
    let due = inbox::PgInboxStore::new(applier.pool.clone())
        .due_in_lane(limit, lane, lanes)
        .await?;
    applier.apply_events(&parsed_events(due), Run::default()).await
}

/// Inbox rows' payloads parsed, in the order they apply in.
fn parsed_events(rows: Vec<(Uuid, serde_json::Value)>) -> Vec<(Uuid, WebhookEvent)> {
    let mut events: Vec<(Uuid, WebhookEvent)> = Vec::new();
    for (id, payload) in rows {
        match WebhookEvent::from_value(&payload, 0) {
            Ok(event) => events.push((id, event)),
            Err(error) => {
                // Stored events passed the same parser; a row edited by hand is the only way here.
                tracing::warn!(inbox_id = %id, %error, "unreadable inbox row");
            }
        }
    }
    events.sort_by(|(_, a), (_, b)| apply_order(a, b));
    events
}
