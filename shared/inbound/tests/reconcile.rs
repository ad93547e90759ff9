//! Reconciliation against real parts: a fresh PostgreSQL database per test and the HubSpot simulator over HTTP with
//! its webhook deliveries dropped, so only reconciliation can bring HubSpot's changes in.

use std::ops::Deref;
use std::time::Duration;

use chrono::Utc;
use crmsync_db::reconcile::{WATERMARK_SETTING, save_setting, watermarks};
use crmsync_domain::reconcile::Watermarks;
use crmsync_hubspot::{CreateInput, ObjectType};
use crmsync_hubspot_sim::SimConfig;
use crmsync_inbound::{Applier, ReconcileReport, ReconcileRequest, ReconcileSettings, Reconciler};
use crmsync_queue::SqsRetryQueue;
use crmsync_sync::{OutboundSync, SyncSettings};
use crmsync_testkit::TestApp;
use serde_json::json;

const APP_ID: &str = "54321";

/// The app with synced deals, an applier and a drain sharing it, and HubSpot's webhooks dropped.
struct ReconcileApp {
    app: TestApp,
    applier: Applier,
    sync: OutboundSync<SqsRetryQueue>,
}

impl Deref for ReconcileApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl ReconcileApp {
    async fn start(app: TestApp) -> Self {
        let applier = app.applier(Some(APP_ID.into()));
        let sync = app
            .outbound_sync(
                app.hubspot(),
                None,
                SyncSettings {
                    worker: "test".into(),
                    ..SyncSettings::default()
                },
            )
            .with_inbox(applier.clone());
        app.sim().set_drop_webhooks(true);
        Self { app, applier, sync }
    }

    /// `deals` matches over `companies` contractors, synced to HubSpot.
    async fn synced(deals: usize, companies: usize) -> Self {
        let this = Self::start(TestApp::with_hubspot().await).await;
        this.ingest_generated(deals, companies).await;
        let report = this.sync.drain("cli", Duration::from_secs(60)).await.expect("drain");
        assert_eq!(report.dead, 0, "{report:?}");
        this
    }

    async fn reconcile(&self, since: Option<Duration>) -> ReconcileReport {
        self.reconcile_with(ReconcileSettings::default(), since).await
    }

    async fn reconcile_with(&self, settings: ReconcileSettings, since: Option<Duration>) -> ReconcileReport {
        let request = ReconcileRequest {
            since,
            started_by: "test".into(),
            ..ReconcileRequest::default()
        };
        Reconciler::new(self.applier.clone())
            .with_settings(settings)
            .run(&request, |_| {})
            .await
            .expect("reconcile")
    }

    /// A digest of every local CRM row and queue row: equal digests mean nothing changed.
    async fn fingerprint(&self) -> String {
        self.scalar(
            "SELECT md5(concat(
               (SELECT string_agg(t::text, '|' ORDER BY id) FROM deals t),
               (SELECT string_agg(t::text, '|' ORDER BY id) FROM companies t),
               (SELECT string_agg(t::text, '|' ORDER BY id) FROM contacts t),
               (SELECT string_agg(t::text, '|' ORDER BY id) FROM activities t),
               (SELECT string_agg(t::text, '|' ORDER BY id) FROM sync_queue t)))",
        )
        .await
    }

    /// Requests that change something in HubSpot.
    async fn write_requests(&self) -> u64 {
        self.sim_requests_by_endpoint()
            .await
            .into_iter()
            .filter(|(endpoint, _)| {
                !endpoint.starts_with("GET") && !endpoint.contains("/batch/read") && !endpoint.ends_with("/search")
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// The `index`th synced company by UEI: (local id, HubSpot id).
    async fn synced_company(&self, index: usize) -> (uuid::Uuid, String) {
        let row = &self
            .rows(&format!(
                "SELECT id, hubspot_company_id FROM companies WHERE hubspot_company_id IS NOT NULL
                 ORDER BY uei OFFSET {index} LIMIT 1"
            ))
            .await[0];
        (row.get(0), row.get(1))
    }
}

#[tokio::test]
async fn reconciliation_repairs_a_change_a_deletion_a_merge_and_a_creation_whose_webhooks_were_dropped() {
    let app = ReconcileApp::synced(3, 2).await;
    let deals = app.deals().await;
    let (moved, deleted) = (&deals[0], &deals[1]);
    let won = app.stage_id("closed_won").await;
    app.sim_act(
        "move-deal-stage",
        json!({ "dealId": moved.hubspot_deal_id.clone().unwrap(), "stage": won }),
    )
    .await;
    app.sim_act(
        "delete-deal",
        json!({ "dealId": deleted.hubspot_deal_id.clone().unwrap() }),
    )
    .await;
    let (survivor, survivor_hubspot) = app.synced_company(0).await;
    let (merged, merged_hubspot) = app.synced_company(1).await;
    app.sim_act(
        "merge-companies",
        json!({ "primaryId": survivor_hubspot, "mergedId": merged_hubspot }),
    )
    .await;
    let contact = app
        .sim_act(
            "create-contact",
            json!({ "properties": { "email": "ada@orbit.gov", "firstname": "Ada" }, "companyId": survivor_hubspot }),
        )
        .await;
    let contact_hubspot = contact["id"].as_str().unwrap().to_owned();
    assert!(
        app.sim().webhooks_json()["droppedEvents"].as_u64().unwrap() >= 4,
        "HubSpot lost the deliveries"
    );
    assert_eq!(
        app.deal(moved.id).await.stage,
        "new_match",
        "nothing arrived by webhook"
    );

    let report = app.reconcile(None).await;
    assert_eq!(report.dead, 0, "{report:?}");
    assert!(report.property_changes >= 1 && report.deletions == 1, "{report:?}");
    assert_eq!((report.merges, report.creations), (1, 1), "{report:?}");

    let moved = app.deal(moved.id).await;
    assert_eq!((moved.stage.as_str(), moved.closed_at.is_some()), ("closed_won", true));
    assert_eq!(app.deal(deleted.id).await.hubspot_sync_status, "deleted");
    let merged = app.company(merged).await;
    assert_eq!(
        (merged.hubspot_company_id, merged.hubspot_sync_status.as_str()),
        (None, "deleted"),
        "the merged company is retired"
    );
    assert_eq!(
        app.count(&format!("deals WHERE company_id = '{}'", merged.id)).await,
        0,
        "its deals moved to the survivor"
    );
    assert_eq!(
        app.company(survivor).await.hubspot_company_id.as_deref(),
        Some(survivor_hubspot.as_str())
    );
    let created = app
        .contact_by_hubspot_id(&contact_hubspot)
        .await
        .expect("the contact is created locally");
    assert_eq!(created.email.as_deref(), Some("ada@orbit.gov"));
    assert_eq!(
        app.sim_record("contacts", &contact_hubspot).await.prop("crmsync_id"),
        Some(created.id.to_string().as_str()),
        "our id is written back, so the next sync updates it"
    );
    let run = &app
        .rows("SELECT status, counts FROM crmsync.sync_runs WHERE trigger = 'reconcile'")
        .await[0];
    assert_eq!(run.get::<_, &str>(0), "succeeded");
    assert_eq!(
        run.get::<_, serde_json::Value>(1)["deletions"],
        1,
        "the counts are in the run record"
    );

    // A second run finds every event stored already: nothing new, nothing changed, nothing sent.
    let before = app.fingerprint().await;
    let writes = app.write_requests().await;
    let again = app.reconcile(None).await;
    assert_eq!(again.events_new, 0, "{again:?}");
    assert!(again.events_made > 0, "the same events were made again: {again:?}");
    assert_eq!(app.fingerprint().await, before);
    assert_eq!(app.write_requests().await, writes);
}

#[tokio::test]
async fn reconciling_right_after_a_sync_changes_nothing_and_sends_nothing() {
    let app = ReconcileApp::synced(4, 2).await;
    let before = app.fingerprint().await;
    let writes = app.write_requests().await;
    let report = app.reconcile(Some(Duration::from_secs(3_600))).await;
    assert!(report.read >= 6, "our own writes are read back: {report:?}");
    assert!(report.events_new > 0, "{report:?}");
    assert_eq!(report.applied, 0, "{report:?}");
    assert_eq!(report.outcomes.get("echo"), Some(&report.events_new), "{report:?}");
    assert_eq!(app.fingerprint().await, before, "nothing changed locally");
    let drained = app.sync.drain("cli", Duration::from_secs(30)).await.unwrap();
    assert_eq!(drained.claimed, 0, "nothing queued to send");
    assert_eq!(app.write_requests().await, writes, "nothing sent");
}

#[tokio::test]
async fn the_watermark_is_stored_and_honoured_and_since_reads_behind_it() {
    let app = ReconcileApp::synced(1, 1).await;
    let first = app.reconcile(None).await;
    let stored = watermarks(&app.pool().get().await.unwrap()).await.unwrap();
    assert_eq!(stored, first.watermarks);
    let deals_mark = stored.deals.expect("a deal watermark");
    assert!((Utc::now() - deals_mark).num_seconds() < 60, "{deals_mark}");

    // A watermark ahead of a change hides it: the run reads nothing.
    let future = Utc::now() + chrono::Duration::hours(1);
    let ahead = Watermarks {
        companies: Some(future),
        contacts: Some(future),
        deals: Some(future),
        engagements: Some(future),
    };
    save_setting(&app.pool().get().await.unwrap(), WATERMARK_SETTING, &ahead)
        .await
        .unwrap();
    let deal = app.single_deal().await;
    app.sim_act(
        "edit",
        json!({ "objectType": "deals", "id": deal.hubspot_deal_id.clone().unwrap(),
                "properties": { "description": "Called the CO" } }),
    )
    .await;
    let hidden = app.reconcile(None).await;
    assert_eq!((hidden.read, hidden.events_new), (0, 0), "{hidden:?}");
    assert_eq!(app.single_deal().await.description, None);

    // --since reads its own window; it moves no watermark back.
    let since = app.reconcile(Some(Duration::from_secs(600))).await;
    assert!(since.property_changes >= 1, "{since:?}");
    assert_eq!(app.single_deal().await.description.as_deref(), Some("Called the CO"));
    let kept = watermarks(&app.pool().get().await.unwrap()).await.unwrap();
    assert_eq!(kept.deals, Some(future));
}

#[tokio::test]
async fn the_search_window_moves_under_the_result_cap() {
    let sim = SimConfig {
        requests_per_window: 1_000,
        search_result_cap: 5,
        ..SimConfig::default()
    };
    let app = ReconcileApp::start(TestApp::builder().sim(sim).start().await).await;
    // 13 companies made in HubSpot in one batch: most share one modified date, more than a capped window holds.
    let inputs: Vec<CreateInput> = (0..13)
        .map(|i| CreateInput {
            properties: [("name".to_owned(), format!("Made in HubSpot {i}"))].into(),
            associations: Vec::new(),
        })
        .collect();
    let made = app
        .hubspot()
        .batch_create(ObjectType::Companies, &inputs)
        .await
        .unwrap();
    assert!(made.is_complete());
    let settings = ReconcileSettings {
        page_size: 2,
        ..ReconcileSettings::default()
    };
    let report = app.reconcile_with(settings, None).await;
    assert_eq!(report.creations, 13, "{report:?}");
    assert_eq!(app.companies().await.len(), 13);
    assert!(report.searches > 7, "a new query per page: {report:?}");
    assert_eq!(
        app.sim()
            .request_count("POST /crm/objects/{version}/{object_type}/search", "400"),
        0,
        "no page past the cap was asked for"
    );
}
