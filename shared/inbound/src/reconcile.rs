//! Reconciliation: catching up with HubSpot when webhooks were lost (HubSpot stops retrying a delivery after about
//! a day). For companies, contacts and deals it searches the records modified since the watermark (minus an
//! overlap for clock skew and the search index's lag), sorted by modified date, each page a new query from the last
//! modified date seen (`crmsync_domain::reconcile::SearchWindow`), so no query nears HubSpot's 10,000-result cap and
//! records changing meanwhile are not skipped; reads the changed properties' history of the records it holds; lists the recycle
//! bin; and turns what it finds into webhook-equivalent events (`crmsync_domain::reconcile`) that go into the
//! webhook inbox and through the [`Applier`], page by page, exactly like deliveries. Made events have deterministic
//! ids, so what a delivery or an earlier run already stored is not stored again: a second run is a no-op.
//!
//! The watermark of each object type moves forward after each applied page (to the page's last modified date) and
//! to the run's start once the type is done, so a run cut off by its deadline resumes where it stopped. A run with
//! `--since` reads its own window and moves a watermark only when that window reaches back to it.
//!
//! It uses the process's HubSpot client, so its calls share the client's rate limiter and search lane with the
//! drain and the webhook applier.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crmsync_app::AppError;
use crmsync_db::PgSyncStore;
use crmsync_db::inbox::{NewInboxEvent, PgInboxStore};
use crmsync_db::reconcile as db;
use crmsync_domain::engagement::EngagementKind;
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::reconcile::{
    ChangedRecord, LocalView, MadeEvent, Phase, PropertyState, SearchWindow, Watermarks, WindowQuery, deletion_event,
    engagement_event, events_for, from_millis, modified_property, reconciled_properties,
};
use crmsync_domain::webhook::ObjectKind;
use crmsync_hubspot::search::{Direction, Filter, FilterGroup, Operator, SearchRequest, Sort};
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use crmsync_hubspot::{HubSpotObject, ListRequest};
use serde::Serialize;
use uuid::Uuid;

use crate::applier::{Applier, ApplyReport};
use crate::creation::hubspot_type;

/// Tunables of a run.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// Read this far back before the watermark: clocks differ, and HubSpot's search index lags writes by seconds.
    pub overlap: Duration,
    /// Without a watermark (the first run), read this far back: HubSpot retries a delivery for about a day.
    pub first_lookback: Duration,
    /// Records per search page (≤200).
    pub page_size: u32,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            overlap: Duration::from_secs(5 * 60),
            first_lookback: Duration::from_secs(24 * 60 * 60),
            page_size: 100,
        }
    }
}

/// What one run asks for.
#[derive(Debug, Clone, Default)]
pub struct ReconcileRequest {
    /// Read the changes of this last stretch instead of those since the watermark (`--since 2h`).
    pub since: Option<Duration>,
    /// Stop starting pages after this instant (the Lambda's remaining time); the watermark keeps what was done.
    pub deadline: Option<Instant>,
    /// `schedule`, `serve` or `cli`: recorded in the run's counts.
    pub started_by: String,
}

/// What a run did: its row's counts in `crmsync.sync_runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub started_by: String,
    /// Per object type, the start of the window read.
    pub windows_from: BTreeMap<String, DateTime<Utc>>,
    /// Changed records read by search, and archived records listed.
    pub read: u64,
    pub archived_read: u64,
    pub pages: u64,
    /// Search queries run (each page is one).
    pub searches: u64,
    /// Events made, and of those the ones not stored before (by a delivery or an earlier run).
    pub events_made: u64,
    pub events_new: u64,
    /// New events by kind.
    pub creations: u64,
    pub merges: u64,
    pub restores: u64,
    pub property_changes: u64,
    pub deletions: u64,
    /// How the new events ended (the applier's counts).
    pub applied: u64,
    pub skipped: u64,
    pub waiting: u64,
    pub dead: u64,
    pub deferred: u64,
    pub created: u64,
    pub outcomes: BTreeMap<String, u64>,
    /// The run stopped at its deadline before reading everything: the next run carries on from the watermarks.
    pub cut_off: bool,
    /// The watermarks after the run.
    pub watermarks: Watermarks,
    /// HubSpot's owners, refreshed at the start of every run (`crmsync.hubspot_owners`).
    pub owners: Option<crmsync_db::owners::OwnersRefreshed>,
    /// Why the owners could not be refreshed (the run goes on).
    pub owners_error: Option<String>,
    pub hubspot_requests: u64,
    pub elapsed_ms: u64,
}

impl ReconcileReport {
    fn add_applied(&mut self, applied: &ApplyReport) {
        self.applied += applied.applied;
        self.skipped += applied.skipped;
        self.waiting += applied.waiting;
        self.dead += applied.dead;
        self.deferred += applied.deferred;
        self.created += applied.created;
        for (label, count) in &applied.outcomes {
            *self.outcomes.entry(label.clone()).or_default() += count;
        }
    }

    fn count_new(&mut self, event: &MadeEvent) {
        let slot = match event.action() {
            "creation" => &mut self.creations,
            "merge" => &mut self.merges,
            "restore" => &mut self.restores,
            "deletion" => &mut self.deletions,
            _ => &mut self.property_changes,
        };
        *slot += 1;
    }
}

/// Runs reconciliation with a process's applier (and so its pool, HubSpot client and app id).
#[derive(Debug, Clone)]
pub struct Reconciler {
    applier: Applier,
    settings: ReconcileSettings,
}

/// How long a reconcile run may stay `running` in crmsync.sync_runs before a later run calls it abandoned.
const ABANDON_AFTER: Duration = Duration::from_secs(2 * 60 * 60);

impl Reconciler {
    pub fn new(applier: Applier) -> Self {
        Self {
            applier,
            settings: ReconcileSettings::default(),
        }
    }

    pub fn with_settings(mut self, settings: ReconcileSettings) -> Self {
        self.settings = settings;
        self
    }

    /// One run, recorded in crmsync.sync_runs (trigger `reconcile`). `on_page` sees the running totals after each
    /// page (the progress line).
    pub async fn run(
        &self,
        request: &ReconcileRequest,
        on_page: impl Fn(&ReconcileReport),
    ) -> Result<ReconcileReport, AppError> {
        let started = Instant::now();
        let hubspot_before = self.applier.hubspot.stats();
        let store = PgSyncStore::new(self.applier.pool.clone());
        let run_id = store.start_run("reconcile", ABANDON_AFTER).await?;
        let mut report = ReconcileReport {
            started_by: request.started_by.clone(),
            ..ReconcileReport::default()
        };
        match crate::owners::refresh_owners(&self.applier.pool, &self.applier.hubspot).await {
            Ok(refreshed) => report.owners = Some(refreshed),
            Err(error) => {
                tracing::warn!(%error, "could not refresh HubSpot's owners; reconciling anyway");
                report.owners_error = Some(error.to_string());
            }
        }
        let result = self.reconcile(request, &mut report, &on_page).await;
        let stats = self.applier.hubspot.stats();
        report.hubspot_requests = stats.requests_sent.saturating_sub(hubspot_before.requests_sent);
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let status = match (&result, report.cut_off || report.dead > 0) {
            (Err(_), _) => "failed",
            (Ok(()), true) => "partial",
            (Ok(()), false) => "succeeded",
        };
        let counts = serde_json::to_value(&report).unwrap_or_default();
        let error = result.as_ref().err().map(|e| crmsync_db::error_chain(e));
        if let Err(finish_error) = store.finish_run(run_id, status, &counts, error.as_deref()).await {
            tracing::warn!(error = %finish_error, "could not record the end of the reconcile run");
        }
        tracing::info!(status, report = %counts, "reconcile run finished");
        result.map(|()| report)
    }

    async fn reconcile(
        &self,
        request: &ReconcileRequest,
        report: &mut ReconcileReport,
        on_page: &impl Fn(&ReconcileReport),
    ) -> Result<(), AppError> {
        let run_started = Utc::now();
        let stored = db::watermarks(&self.applier.pool.get().await?).await?;
        report.watermarks = stored.clone();
        // Companies first: a deal created in HubSpot links to its company once that is local.
        for kind in [ObjectKind::Company, ObjectKind::Contact, ObjectKind::Deal] {
            let from = self.window_start(kind, request.since, &stored, run_started);
            // A --since window that starts after the watermark leaves a gap behind it: it moves nothing.
            let moves_watermark = stored.get(kind).is_none_or(|mark| from <= mark);
            report.windows_from.insert(kind.object_type().to_owned(), from);
            let done = self
                .search_kind(kind, from, moves_watermark, request.deadline, report, on_page)
                .await?;
            if !done {
                report.cut_off = true;
                return Ok(());
            }
            if moves_watermark {
                self.advance(kind, run_started, report).await?;
            }
        }
        // Engagements after the records they are about, all under one watermark moved only once every type is read.
        let from = match (request.since, stored.engagements) {
            (Some(since), _) => run_started - chrono::Duration::from_std(since).unwrap_or(chrono::Duration::MAX),
            (None, Some(mark)) => mark - chrono::Duration::from_std(self.settings.overlap).unwrap_or_default(),
            (None, None) => {
                run_started - chrono::Duration::from_std(self.settings.first_lookback).unwrap_or(chrono::Duration::MAX)
            }
        };
        let moves_watermark = stored.engagements.is_none_or(|mark| from <= mark);
        report.windows_from.insert("engagements".to_owned(), from);
        for kind in EngagementKind::ALL {
            if !self
                .search_engagements(kind, from, request.deadline, report, on_page)
                .await?
            {
                report.cut_off = true;
                return Ok(());
            }
        }
        if moves_watermark {
            let mut marks = Watermarks::default();
            marks.advance_engagements(run_started);
            report.watermarks = db::advance_watermarks(&self.applier.pool.get().await?, &marks).await?;
        }
        for kind in [ObjectKind::Company, ObjectKind::Contact, ObjectKind::Deal] {
            if !self.archived_kind(kind, request.deadline, report, on_page).await? {
                report.cut_off = true;
                return Ok(());
            }
        }
        for kind in EngagementKind::ALL {
            if !self
                .archived_engagements(kind, request.deadline, report, on_page)
                .await?
            {
                report.cut_off = true;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reads every `kind` engagement modified since `from`, page by page, and brings home those that are not ours
    /// (ours carry our `crmsync_id`); false when the deadline stopped it.
    async fn search_engagements(
        &self,
        kind: EngagementKind,
        from: DateTime<Utc>,
        deadline: Option<Instant>,
        report: &mut ReconcileReport,
        on_page: &impl Fn(&ReconcileReport),
    ) -> Result<bool, AppError> {
        const MODIFIED: &str = "hs_lastmodifieddate";
        let mut window = SearchWindow::new(from.timestamp_millis(), self.settings.page_size);
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            let (filters, sort) = match window.query() {
                WindowQuery::ModifiedSince { from_ms, inclusive } => {
                    let operator = if inclusive { Operator::Gte } else { Operator::Gt };
                    (vec![Filter::new(MODIFIED, operator, from_ms.to_string())], MODIFIED)
                }
                WindowQuery::ModifiedAt { at_ms, after_id } => (
                    vec![
                        Filter::new(MODIFIED, Operator::Eq, at_ms.to_string()),
                        Filter::new("hs_object_id", Operator::Gt, after_id.to_string()),
                    ],
                    "hs_object_id",
                ),
            };
            let search = SearchRequest {
                filter_groups: vec![FilterGroup { filters }],
                sorts: vec![Sort {
                    property_name: sort.to_owned(),
                    direction: Direction::Ascending,
                }],
                properties: [MODIFIED, LOCAL_ID_PROPERTY].map(str::to_owned).to_vec(),
                query: None,
                limit: self.settings.page_size,
            };
            let page = self
                .applier
                .hubspot
                .search_page(crate::engagement::object_type(kind), &search, None)
                .await?;
            report.pages += 1;
            report.searches += 1;
            report.read += page.results.len() as u64;
            let modified = |o: &HubSpotObject| {
                o.property(MODIFIED)
                    .and_then(parse_ms)
                    .or(o.updated_at.map(|at| at.timestamp_millis()))
                    .unwrap_or_default()
            };
            let last = page
                .results
                .last()
                .map(|o| (modified(o), o.id.parse::<u64>().unwrap_or(0)));
            let theirs: Vec<&HubSpotObject> = page
                .results
                .iter()
                .filter(|o| o.property(LOCAL_ID_PROPERTY).is_none_or(|v| v.trim().is_empty()))
                .collect();
            let ids: Vec<String> = theirs.iter().map(|o| o.id.clone()).collect();
            let held: HashSet<String> = crmsync_db::engagements::held(&self.applier.pool.get().await?, &ids)
                .await?
                .into_iter()
                .collect();
            let events = theirs
                .iter()
                .map(|o| engagement_event(kind, &o.id, modified(o), held.contains(&o.id), false))
                .collect();
            self.store_and_apply(events, report).await?;
            on_page(report);
            if !window.after_page(page.results.len(), last) {
                return Ok(true);
            }
        }
    }

    /// Lists `kind`'s archived engagements and removes the activities that still hold one; false when the deadline
    /// stopped it.
    async fn archived_engagements(
        &self,
        kind: EngagementKind,
        deadline: Option<Instant>,
        report: &mut ReconcileReport,
        on_page: &impl Fn(&ReconcileReport),
    ) -> Result<bool, AppError> {
        let mut after: Option<String> = None;
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            let request = ListRequest {
                limit: crmsync_hubspot::objects::MAX_LIST_PAGE,
                after: after.take(),
                properties: vec!["hs_lastmodifieddate".to_owned()],
                archived: true,
            };
            let page = self
                .applier
                .hubspot
                .list_page(crate::engagement::object_type(kind), &request)
                .await?;
            report.pages += 1;
            report.archived_read += page.results.len() as u64;
            let ids: Vec<String> = page.results.iter().map(|o| o.id.clone()).collect();
            let held: HashSet<String> = crmsync_db::engagements::held(&self.applier.pool.get().await?, &ids)
                .await?
                .into_iter()
                .collect();
            let events: Vec<MadeEvent> = page
                .results
                .iter()
                .filter(|o| held.contains(&o.id))
                .map(|o| {
                    let at = o.archived_at.or(o.updated_at).unwrap_or_else(Utc::now);
                    engagement_event(kind, &o.id, at.timestamp_millis(), true, true)
                })
                .collect();
            self.store_and_apply(events, report).await?;
            on_page(report);
            match page.after {
                Some(next) => after = Some(next),
                None => return Ok(true),
            }
        }
    }

    fn window_start(
        &self,
        kind: ObjectKind,
        since: Option<Duration>,
        stored: &Watermarks,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let back = |duration: Duration| now - chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        match (since, stored.get(kind)) {
            (Some(since), _) => back(since),
            (None, Some(mark)) => mark - chrono::Duration::from_std(self.settings.overlap).unwrap_or_default(),
            (None, None) => back(self.settings.first_lookback),
        }
    }

    async fn advance(&self, kind: ObjectKind, at: DateTime<Utc>, report: &mut ReconcileReport) -> Result<(), AppError> {
        let mut marks = Watermarks::default();
        marks.advance(kind, at);
        report.watermarks = db::advance_watermarks(&self.applier.pool.get().await?, &marks).await?;
        Ok(())
    }

    /// Reads every `kind` record modified since `from`, page by page; false when the deadline stopped it.
    async fn search_kind(
        &self,
        kind: ObjectKind,
        from: DateTime<Utc>,
        moves_watermark: bool,
        deadline: Option<Instant>,
        report: &mut ReconcileReport,
        on_page: &impl Fn(&ReconcileReport),
    ) -> Result<bool, AppError> {
        let mut window = SearchWindow::new(from.timestamp_millis(), self.settings.page_size);
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            let search = self.search_request(kind, window.query());
            let page = self
                .applier
                .hubspot
                .search_page(hubspot_type(kind), &search, None)
                .await?;
            report.pages += 1;
            report.searches += 1;
            report.read += page.results.len() as u64;
            let last = page
                .results
                .last()
                .map(|o| (modified_ms(kind, o), o.id.parse::<u64>().unwrap_or(0)));
            self.apply_changed(kind, &page.results, from.timestamp_millis(), report)
                .await?;
            if moves_watermark && let Some((last_modified, _)) = last {
                self.advance(kind, from_millis(last_modified), report).await?;
            }
            on_page(report);
            if !window.after_page(page.results.len(), last) {
                return Ok(true);
            }
        }
    }

    /// The search of one window: the modified date from a time (sorted by it), or at one instant (sorted by id).
    fn search_request(&self, kind: ObjectKind, query: WindowQuery) -> SearchRequest {
        let modified = modified_property(kind);
        let (filters, sort) = match query {
            WindowQuery::ModifiedSince { from_ms, inclusive } => {
                let operator = if inclusive { Operator::Gte } else { Operator::Gt };
                (vec![Filter::new(modified, operator, from_ms.to_string())], modified)
            }
            WindowQuery::ModifiedAt { at_ms, after_id } => (
                vec![
                    Filter::new(modified, Operator::Eq, at_ms.to_string()),
                    Filter::new("hs_object_id", Operator::Gt, after_id.to_string()),
                ],
                "hs_object_id",
            ),
        };
        SearchRequest {
            filter_groups: vec![FilterGroup { filters }],
            sorts: vec![Sort {
                property_name: sort.to_owned(),
                direction: Direction::Ascending,
            }],
            properties: [modified, "createdate", "hs_merged_object_ids", LOCAL_ID_PROPERTY]
                .map(str::to_owned)
                .to_vec(),
            query: None,
            limit: self.settings.page_size,
        }
    }

    /// Makes, stores and applies the events of one page of changed records.
    async fn apply_changed(
        &self,
        kind: ObjectKind,
        records: &[HubSpotObject],
        window_from_ms: i64,
        report: &mut ReconcileReport,
    ) -> Result<(), AppError> {
        if records.is_empty() {
            return Ok(());
        }
        let client = self.applier.pool.get().await?;
        let ids: Vec<String> = records.iter().map(|o| o.id.clone()).collect();
        let linked = db::linked(&client, kind, &ids).await?;
        let merged_ids: Vec<String> = records
            .iter()
            .flat_map(merged_ids)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let linked_merged = db::linked(&client, kind, &merged_ids).await?;
        drop(client);
        let views: Vec<LocalView> = records
            .iter()
            .map(|o| LocalView {
                known: linked.contains_key(&o.id),
                deleted: linked.get(&o.id) == Some(&HubSpotSyncStatus::Deleted),
                held_merged_ids: merged_ids_of(o)
                    .filter(|id| *id != o.id && linked_merged.contains_key(id))
                    .collect(),
            })
            .collect();
        let wanted: Vec<&str> = records.iter().map(|o| o.id.as_str()).collect();
        let histories = self.read_histories(kind, &wanted).await?;
        // A deal of another pipeline is none of ours: its creation is recorded and skipped, and its properties
        // would wait for a local record that never comes.
        let our_pipeline = match kind {
            ObjectKind::Deal => PgSyncStore::new(self.applier.pool.clone())
                .pipeline_map()
                .await?
                .map(|p| p.pipeline_id),
            _ => None,
        };
        let not_ours = |view: &LocalView, read: &HubSpotObject| {
            kind == ObjectKind::Deal
                && !view.known
                && view.held_merged_ids.is_empty()
                && read.property("pipeline") != our_pipeline.as_deref()
        };
        let mut events = Vec::new();
        for (object, view) in records.iter().zip(&views) {
            let record = ChangedRecord {
                kind,
                hubspot_id: object.id.clone(),
                created_at_ms: object
                    .property("createdate")
                    .and_then(parse_ms)
                    .or(object.created_at.map(|at| at.timestamp_millis())),
                modified_at_ms: modified_ms(kind, object),
                merged_ids: merged_ids_of(object).collect(),
                properties: histories
                    .get(&object.id)
                    .filter(|read| !not_ours(view, read))
                    .map(|read| property_states(kind, read, modified_ms(kind, object)))
                    .unwrap_or_default(),
            };
            events.extend(events_for(&record, view, window_from_ms));
        }
        self.store_and_apply(events, report).await
    }

    /// The reconciled properties of `ids` with their history; records HubSpot no longer has are left out.
    async fn read_histories(&self, kind: ObjectKind, ids: &[&str]) -> Result<HashMap<String, HubSpotObject>, AppError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let properties = reconciled_properties(kind);
        let mut wanted: Vec<&str> = properties.clone();
        wanted.extend([modified_property(kind), LOCAL_ID_PROPERTY]);
        let outcome = self
            .applier
            .hubspot
            .batch_read_with_history(hubspot_type(kind), ids, &wanted, &properties)
            .await?;
        for (index, error) in &outcome.failed {
            // Gone since the search (deleted or merged): the recycle bin or the survivor tells the rest.
            tracing::info!(object = kind.object_type(), id = ids.get(*index).copied().unwrap_or_default(), %error,
                "changed record not readable; skipped");
        }
        Ok(outcome
            .succeeded
            .into_iter()
            .map(|(_, object)| (object.id.clone(), object))
            .collect())
    }

    /// Lists `kind`'s recycle bin and deletes locally what it holds there; false when the deadline stopped it.
    async fn archived_kind(
        &self,
        kind: ObjectKind,
        deadline: Option<Instant>,
        report: &mut ReconcileReport,
        on_page: &impl Fn(&ReconcileReport),
    ) -> Result<bool, AppError> {
        let mut after: Option<String> = None;
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            let request = ListRequest {
                limit: crmsync_hubspot::objects::MAX_LIST_PAGE,
                after: after.take(),
                properties: vec![modified_property(kind).to_owned()],
                archived: true,
            };
            let page = self.applier.hubspot.list_page(hubspot_type(kind), &request).await?;
            report.pages += 1;
            report.archived_read += page.results.len() as u64;
            let ids: Vec<String> = page.results.iter().map(|o| o.id.clone()).collect();
            let linked = db::linked(&self.applier.pool.get().await?, kind, &ids).await?;
            let events: Vec<MadeEvent> = page
                .results
                .iter()
                .filter(|o| linked.get(&o.id).is_some_and(|s| *s != HubSpotSyncStatus::Deleted))
                .map(|o| {
                    let at = o.archived_at.or(o.updated_at).unwrap_or_else(Utc::now);
                    deletion_event(kind, &o.id, at.timestamp_millis())
                })
                .collect();
            self.store_and_apply(events, report).await?;
            on_page(report);
            match page.after {
                Some(next) => after = Some(next),
                None => return Ok(true),
            }
        }
    }

    /// Stores made events in the inbox (those stored before are skipped by its dedupe key) and applies the new
    /// ones phase by phase: merges and restores, creations, property changes, deletions.
    async fn store_and_apply(&self, events: Vec<MadeEvent>, report: &mut ReconcileReport) -> Result<(), AppError> {
        report.events_made += events.len() as u64;
        let inbox = PgInboxStore::new(self.applier.pool.clone());
        let mut phases: BTreeMap<Phase, Vec<MadeEvent>> = BTreeMap::new();
        for event in events {
            phases.entry(event.phase).or_default().push(event);
        }
        for events in phases.values() {
            let rows: Vec<NewInboxEvent<'_>> = events.iter().map(inbox_event).collect();
            let stored: Vec<Uuid> = inbox.insert_batch(&rows).await?;
            if stored.is_empty() {
                continue;
            }
            report.events_new += stored.len() as u64;
            // insert_batch returns only the new rows' ids; count the new events by kind from their keys.
            let new_keys = db::inbox_keys(&self.applier.pool.get().await?, &stored).await?;
            for event in events {
                if new_keys.contains(&event_key(event)) {
                    report.count_new(event);
                }
            }
            let applied = self.applier.apply_ids(&stored).await?;
            report.add_applied(&applied);
        }
        Ok(())
    }
}

/// The inbox row of a made event.
fn inbox_event(event: &MadeEvent) -> NewInboxEvent<'_> {
    let payload = &event.payload;
    NewInboxEvent {
        portal_id: payload["portalId"].as_i64().unwrap_or_default(),
        subscription_id: payload["subscriptionId"].as_i64().unwrap_or_default(),
        event_id: payload["eventId"].as_i64().unwrap_or_default(),
        occurred_at: payload["occurredAt"].as_i64().unwrap_or_default(),
        event_type: payload["subscriptionType"].as_str().unwrap_or_default(),
        object_type: payload["subscriptionType"]
            .as_str()
            .and_then(|t| t.split_once('.'))
            .map(|(object, _)| object),
        object_id: payload["objectId"].as_str(),
        payload,
    }
}

/// (event id, occurredAt): what tells a made event's inbox row apart (portal and subscription are constant).
fn event_key(event: &MadeEvent) -> (i64, i64) {
    (
        event.payload["eventId"].as_i64().unwrap_or_default(),
        event.payload["occurredAt"].as_i64().unwrap_or_default(),
    )
}

fn parse_ms(text: &str) -> Option<i64> {
    crmsync_hubspot::values::parse_datetime("modified", text)
        .ok()
        .map(|at| at.timestamp_millis())
}

/// A record's modified date in milliseconds (its `updatedAt` when the property is missing).
fn modified_ms(kind: ObjectKind, object: &HubSpotObject) -> i64 {
    object
        .property(modified_property(kind))
        .and_then(parse_ms)
        .or(object.updated_at.map(|at| at.timestamp_millis()))
        .unwrap_or_default()
}

/// `hs_merged_object_ids`, split.
fn merged_ids_of(object: &HubSpotObject) -> impl Iterator<Item = String> + '_ {
    object
        .property("hs_merged_object_ids")
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

fn merged_ids(object: &HubSpotObject) -> Vec<String> {
    merged_ids_of(object).collect()
}

/// Each reconciled property's value now with its last change's time and source. A property never set has no
/// history and no value: nothing to say. One without history but with a value counts as changed at the record's
/// modified date.
fn property_states(kind: ObjectKind, read: &HubSpotObject, modified_at_ms: i64) -> Vec<PropertyState> {
    reconciled_properties(kind)
        .into_iter()
        .filter_map(|name| {
            let value = read.property(name).unwrap_or_default().to_owned();
            let latest = read.latest_version(name);
            if latest.is_none() && value.is_empty() {
                return None;
            }
            Some(PropertyState {
                name: (*name).to_owned(),
                value,
                changed_at_ms: latest
                    .and_then(|v| v.timestamp)
                    .map_or(modified_at_ms, |at| at.timestamp_millis()),
                source_type: latest.and_then(|v| v.source_type.clone()),
                source_id: latest.and_then(|v| v.source_id.clone()),
            })
        })
        .collect()
}
