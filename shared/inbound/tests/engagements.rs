//! Activities logged in HubSpot come home (issue 13), against real parts: a fresh PostgreSQL database per test, the
//! HubSpot simulator over HTTP delivering signed generic `object.*` webhooks to the webhook router served on port 0,
//! reconciliation for deliveries HubSpot lost, and the API reading the result.

use std::ops::Deref;
use std::time::Duration;

use crmsync_hubspot_sim::WebhookTarget;
use crmsync_inbound::{Applier, ReconcileReport, ReconcileRequest, Reconciler, refresh_owners};
use crmsync_queue::SqsRetryQueue;
use crmsync_sync::{OutboundSync, SyncSettings};
use crmsync_testkit::{TestApp, inbox_retries, webhook_config};
use serde_json::{Value, json};
use uuid::Uuid;

const SECRET: &str = "test-client-secret-0123456789";
const APP_ID: &str = "54321";
/// The simulator's seeded owner Avery Cole.
const OWNER: &str = "41001";

struct EngagementApp {
    app: TestApp,
    sync: OutboundSync<SqsRetryQueue>,
    applier: Applier,
    url: String,
}

impl Deref for EngagementApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl EngagementApp {
    /// The app with one synced deal (and its company), the webhook router served and subscribed; `app_id`: whether
    /// HUBSPOT_APP_ID is set (our echoes are then recognised by their source too).
    async fn spawn(app_id: bool) -> Self {
        let app = TestApp::with_hubspot().await;
        let mut vars = vec![("HUBSPOT_CLIENT_SECRET", SECRET)];
        if app_id {
            vars.push(("HUBSPOT_APP_ID", APP_ID));
        }
        let config = webhook_config(&vars);
        let applier = app.applier(config.app_id.clone()).with_retry_policy(inbox_retries(3));
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
        let state = app.webhook_state(&config, applier.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/webhooks/hubspot", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, crmsync_http::webhook::router(state)).await });
        let this = Self {
            app,
            sync,
            applier,
            url,
        };
        this.ingest_generated(1, 1).await;
        let report = this.sync.drain("cli", Duration::from_secs(60)).await.expect("drain");
        assert_eq!((report.deals_created, report.dead), (1, 0), "{report:?}");
        this.sim().set_webhook_target(Some(WebhookTarget {
            url: this.url.clone(),
            client_secret: SECRET.into(),
            send_v1: false,
        }));
        refresh_owners(this.pool(), &this.hubspot()).await.expect("owners");
        this
    }

    async fn wait_for_webhooks(&self) {
        assert!(
            self.sim().wait_webhooks_idle(Duration::from_secs(30)).await,
            "webhooks still pending"
        );
    }

    /// The synced deal: local id, HubSpot id, and its company's local id.
    async fn deal(&self) -> (Uuid, String, Uuid) {
        let row = &self
            .rows("SELECT id, hubspot_deal_id, company_id FROM deals WHERE hubspot_deal_id IS NOT NULL")
            .await[0];
        (row.get(0), row.get(1), row.get(2))
    }

    /// A salesperson logs an engagement on the deal in HubSpot's UI; returns its HubSpot id.
    async fn log(&self, object_type: &str, deal_hs: &str, properties: Value) -> String {
        let created = self
            .sim_act(
                "log-engagement",
                json!({
                    "objectType": object_type,
                    "properties": properties,
                    "associations": [{"objectType": "deals", "id": deal_hs}],
                }),
            )
            .await;
        created["id"].as_str().expect("engagement id").to_owned()
    }

    async fn logged_call_and_note(&self, deal_hs: &str) -> (String, String) {
        let call = self
            .log(
                "calls",
                deal_hs,
                json!({
                    "hs_timestamp": "2026-03-02T15:04:05.000Z",
                    "hs_call_title": "Discovery call with the CO",
                    "hs_call_body": "<p>They need a CMMC L2 partner</p>",
                    "hs_call_status": "COMPLETED",
                    "hs_call_direction": "OUTBOUND",
                    "hubspot_owner_id": OWNER,
                }),
            )
            .await;
        let note = self
            .log(
                "notes",
                deal_hs,
                json!({
                    "hs_timestamp": "2026-03-03T09:30:00.000Z",
                    "hs_note_body": "Teaming agreement drafted",
                    "hubspot_owner_id": OWNER,
                }),
            )
            .await;
        (call, note)
    }

    /// `GET /api/activities?deal_id=` items.
    async fn activities_of(&self, deal: Uuid) -> Vec<Value> {
        let answer = self.api("GET", &format!("/api/activities?deal_id={deal}"), None).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body["items"].as_array().expect("items").clone()
    }

    async fn reconcile(&self) -> ReconcileReport {
        Reconciler::new(self.applier.clone())
            .run(
                &ReconcileRequest {
                    started_by: "test".into(),
                    ..ReconcileRequest::default()
                },
                |_| {},
            )
            .await
            .expect("reconcile")
    }
}

fn by_type<'a>(items: &'a [Value], activity_type: &str) -> &'a Value {
    items
        .iter()
        .find(|a| a["activity_type"] == activity_type)
        .unwrap_or_else(|| panic!("no {activity_type} in {items:#?}"))
}

fn assert_call_and_note(items: &[Value], call_hs: &str, note_hs: &str, company: Uuid) {
    assert_eq!(items.len(), 2, "{items:#?}");
    let call = by_type(items, "call");
    assert_eq!(call["subject"], "Discovery call with the CO");
    assert_eq!(call["body"], "They need a CMMC L2 partner");
    assert_eq!(call["status"], "completed");
    assert_eq!(call["occurred_at"], "2026-03-02T15:04:05Z");
    assert_eq!(call["hubspot_engagement_id"], call_hs);
    let note = by_type(items, "note");
    assert_eq!(note["subject"], "Teaming agreement drafted");
    assert_eq!(note["body"], "Teaming agreement drafted");
    assert_eq!(note["occurred_at"], "2026-03-03T09:30:00Z");
    assert_eq!(note["hubspot_engagement_id"], note_hs);
    for activity in [call, note] {
        assert_eq!(activity["logged_in"], "hubspot");
        assert_eq!(activity["owner_id"], OWNER);
        assert_eq!(activity["owner_name"], "Avery Cole");
        assert_eq!(activity["owner_email"], "avery.cole@example.com");
        assert_eq!(activity["hubspot_sync_status"], "synced");
        assert_eq!(
            activity["company_id"],
            company.to_string(),
            "counted under the deal's company"
        );
    }
}

#[tokio::test]
async fn a_call_and_a_note_logged_in_hubspot_come_home_by_webhook_and_follow_edits_and_deletion() {
    let app = EngagementApp::spawn(true).await;
    let (deal, deal_hs, company) = app.deal().await;
    let (call_hs, note_hs) = app.logged_call_and_note(&deal_hs).await;
    app.wait_for_webhooks().await;
    assert_call_and_note(&app.activities_of(deal).await, &call_hs, &note_hs, company);
    let counted: i64 = app
        .scalar(&format!(
            "SELECT activities FROM v_company_engagement WHERE company_id = '{company}'"
        ))
        .await;
    assert_eq!(counted, 2, "the guide's view counts activities logged in HubSpot");

    // An edit of the note in HubSpot follows.
    app.sim_act(
        "edit",
        json!({"objectType": "notes", "id": note_hs, "properties": {"hs_note_body": "Teaming agreement signed"}}),
    )
    .await;
    app.wait_for_webhooks().await;
    let items = app.activities_of(deal).await;
    assert_eq!(by_type(&items, "note")["body"], "Teaming agreement signed");
    assert_eq!(by_type(&items, "note")["subject"], "Teaming agreement signed");

    // Its deletion removes it; the call stays.
    app.sim_act("delete", json!({"objectType": "notes", "id": note_hs}))
        .await;
    app.wait_for_webhooks().await;
    let items = app.activities_of(deal).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["activity_type"], "call");
    assert_eq!(
        app.count("crmsync.webhook_inbox WHERE status = 'dead'").await,
        0,
        "no event failed"
    );
    // Delivered again (HubSpot retries), nothing changes: one row per engagement.
    assert_eq!(
        app.count(&format!("activities WHERE hubspot_engagement_id = '{call_hs}'"))
            .await,
        1
    );
}

#[tokio::test]
async fn with_their_webhooks_dropped_a_call_and_a_note_arrive_through_reconciliation() {
    let app = EngagementApp::spawn(true).await;
    let (deal, deal_hs, company) = app.deal().await;
    app.sim().set_drop_webhooks(true);
    let (call_hs, note_hs) = app.logged_call_and_note(&deal_hs).await;
    assert!(app.activities_of(deal).await.is_empty(), "nothing was delivered");
    let report = app.reconcile().await;
    assert_eq!(report.dead, 0, "{report:?}");
    assert_eq!(report.owners.map(|o| o.active), Some(2), "{report:?}");
    assert_call_and_note(&app.activities_of(deal).await, &call_hs, &note_hs, company);
    // A second run stores and applies nothing new.
    let again = app.reconcile().await;
    assert_eq!(again.events_new, 0, "{again:?}");

    // An edit and a deletion whose webhooks were dropped arrive the same way.
    app.sim_act(
        "edit",
        json!({"objectType": "notes", "id": note_hs, "properties": {"hs_note_body": "Signed"}}),
    )
    .await;
    app.sim_act("delete", json!({"objectType": "calls", "id": call_hs}))
        .await;
    let report = app.reconcile().await;
    assert_eq!(report.dead, 0, "{report:?}");
    let items = app.activities_of(deal).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["body"], "Signed");
}

async fn assert_our_engagement_is_not_imported_back(app_id: bool) {
    let app = EngagementApp::spawn(app_id).await;
    let (deal, _, _) = app.deal().await;
    let logged = app
        .api(
            "POST",
            "/api/activities",
            Some(json!({"activity_type": "call", "subject": "Intro call", "body": "Logged here", "deal_id": deal})),
        )
        .await;
    assert_eq!(logged.status, 201, "{}", logged.text);
    let report = app.sync.drain("cli", Duration::from_secs(60)).await.expect("drain");
    assert_eq!(report.engagements_created, 1, "{report:?}");
    app.wait_for_webhooks().await;
    let stored = app
        .count("crmsync.webhook_inbox WHERE payload->>'subscriptionType' LIKE 'object.%'")
        .await;
    assert!(stored >= 1, "HubSpot sent the events of our engagement");
    let reconciled = app.reconcile().await;
    assert_eq!(reconciled.dead, 0, "{reconciled:?}");
    let items = app.activities_of(deal).await;
    let calls: Vec<&Value> = items.iter().filter(|a| a["activity_type"] == "call").collect();
    assert_eq!(calls.len(), 1, "imported back: {items:#?}");
    assert_eq!(calls[0]["logged_in"], "local");
    assert_eq!(calls[0]["body"], "Logged here");
    assert!(calls[0]["hubspot_engagement_id"].is_string());
    assert_eq!(app.count("activities WHERE logged_in = 'hubspot'").await, 0);
}

#[tokio::test]
async fn an_engagement_created_by_our_own_sync_is_not_imported_back() {
    assert_our_engagement_is_not_imported_back(true).await;
}

#[tokio::test]
async fn without_the_app_id_our_engagement_is_still_recognised_by_its_crmsync_id() {
    assert_our_engagement_is_not_imported_back(false).await;
}

#[tokio::test]
async fn an_email_longer_than_the_api_accepts_is_stored_whole_and_its_over_long_subject_cut_with_a_marker() {
    let app = EngagementApp::spawn(true).await;
    let (deal, deal_hs, _) = app.deal().await;
    // HubSpot's largest text value (65,536 characters), over three times what POST /api/activities accepts.
    let mut body = String::from("Start of the thread. ");
    while body.chars().count() < 65_536 - 30 {
        body.push_str("Lorem ipsum dolor sit amet. ");
    }
    body.push_str("End of the thread.");
    let subject = format!("RE: Sources sought {}", "and more ".repeat(200));
    app.log(
        "emails",
        &deal_hs,
        json!({"hs_email_subject": subject, "hs_email_text": body, "hubspot_owner_id": OWNER}),
    )
    .await;
    app.wait_for_webhooks().await;
    let items = app.activities_of(deal).await;
    let email = by_type(&items, "email");
    assert_eq!(email["body"].as_str().unwrap(), body, "stored whole");
    let stored_subject = email["subject"].as_str().unwrap();
    assert_eq!(
        stored_subject.chars().count(),
        crmsync_domain::engagement::MAX_SUBJECT_CHARS
    );
    assert!(stored_subject.starts_with("RE: Sources sought and more"));
    assert!(
        stored_subject.ends_with('…'),
        "cut with a visible marker: {stored_subject}"
    );
    assert_eq!(app.count("crmsync.webhook_inbox WHERE status = 'dead'").await, 0);
}

#[tokio::test]
async fn the_first_import_brings_the_engagements_logged_on_the_portals_deals_and_a_second_import_changes_nothing() {
    let app = EngagementApp::spawn(true).await;
    app.sim().set_drop_webhooks(true);
    let pipeline = app.pipeline_map().await;
    let input = crmsync_hubspot::CreateInput {
        properties: [
            ("dealname".to_owned(), "Portal deal".to_owned()),
            ("pipeline".to_owned(), pipeline.pipeline_id.clone()),
            ("dealstage".to_owned(), app.stage_id("qualified").await),
        ]
        .into(),
        associations: Vec::new(),
    };
    let created = app
        .hubspot()
        .batch_create(crmsync_hubspot::ObjectType::Deals, &[input])
        .await
        .expect("create deal");
    let portal_deal = created.succeeded[0].1.id.clone();
    let (call_hs, note_hs) = app.logged_call_and_note(&portal_deal).await;
    let import = || async {
        crmsync_inbound::Importer::new(app.applier.clone())
            .run(&crmsync_inbound::ImportRequest::default(), |_| {})
            .await
            .expect("import")
    };
    let first = import().await;
    assert_eq!((first.engagements_created, first.failures.len()), (2, 0), "{first:?}");
    let deal: Uuid = app
        .scalar(&format!("SELECT id FROM deals WHERE hubspot_deal_id = '{portal_deal}'"))
        .await;
    let items = app.activities_of(deal).await;
    assert_eq!(items.len(), 2, "{items:#?}");
    assert_eq!(by_type(&items, "call")["hubspot_engagement_id"], call_hs);
    assert_eq!(by_type(&items, "note")["hubspot_engagement_id"], note_hs);
    assert_eq!(by_type(&items, "call")["owner_name"], "Avery Cole");
    let second = import().await;
    assert_eq!(
        (second.engagements_created, second.engagements_updated),
        (0, 2),
        "{second:?}"
    );
    assert_eq!(app.count("activities WHERE logged_in = 'hubspot'").await, 2);
}

#[tokio::test]
async fn a_deal_owner_chosen_by_name_goes_to_hubspot_and_a_later_reassignment_there_comes_back() {
    let app = EngagementApp::spawn(true).await;
    let (deal, deal_hs, _) = app.deal().await;
    let owners = app.api("GET", "/api/owners", None).await;
    assert_eq!(owners.status, 200, "{}", owners.text);
    let names: Vec<&str> = owners.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Avery Cole", "Jordan Reyes"], "active owners by name");

    let unknown = app
        .api(
            "PUT",
            &format!("/api/deals/{deal}/owner"),
            Some(json!({"owner_id": "999"})),
        )
        .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.body["error"]["field"].as_str()),
        (404, Some("owner_id"))
    );
    let deactivated = app
        .api(
            "PUT",
            &format!("/api/deals/{deal}/owner"),
            Some(json!({"owner_id": "41003"})),
        )
        .await;
    assert_eq!(deactivated.status, 409, "{}", deactivated.text);
    assert!(deactivated.text.contains("Sam Patel"), "{}", deactivated.text);

    let set = app
        .api(
            "PUT",
            &format!("/api/deals/{deal}/owner"),
            Some(json!({"owner_id": OWNER})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(
        (set.body["owner_id"].as_str(), set.body["owner_name"].as_str()),
        (Some(OWNER), Some("Avery Cole"))
    );
    let report = app.sync.drain("cli", Duration::from_secs(60)).await.expect("drain");
    assert_eq!(report.deals_updated, 1, "{report:?}");
    assert_eq!(app.sim_deal(&deal_hs).await.prop("hubspot_owner_id"), Some(OWNER));
    app.wait_for_webhooks().await;
    let after_echo = app.api("GET", &format!("/api/deals/{deal}"), None).await;
    assert_eq!(
        after_echo.body["owner_name"], "Avery Cole",
        "our own write's echo changes nothing"
    );

    // A salesperson reassigns it in HubSpot later: the later choice wins (two_way).
    app.sim_act(
        "edit",
        json!({"objectType": "deals", "id": deal_hs, "properties": {"hubspot_owner_id": "41002"}}),
    )
    .await;
    app.wait_for_webhooks().await;
    let reassigned = app.api("GET", &format!("/api/deals/{deal}"), None).await;
    assert_eq!(reassigned.body["owner_name"], "Jordan Reyes", "{}", reassigned.text);
    assert_eq!(reassigned.body["owner_email"], "jordan.reyes@example.com");
}

#[tokio::test]
async fn a_read_older_than_the_state_an_activity_holds_never_overwrites_it() {
    let app = EngagementApp::spawn(true).await;
    let (deal, deal_hs, _) = app.deal().await;
    let note = app
        .log(
            "notes",
            &deal_hs,
            json!({"hs_note_body": "First", "hubspot_owner_id": OWNER}),
        )
        .await;
    app.wait_for_webhooks().await;
    let held: Option<chrono::DateTime<chrono::Utc>> = app
        .scalar(&format!(
            "SELECT hubspot_modified_at FROM activities WHERE hubspot_engagement_id = '{note}'"
        ))
        .await;
    assert!(held.is_some(), "HubSpot's modified date is kept");
    // As if a pass in another process had already stored a later state of the note than the edit below.
    app.execute(&format!(
        "UPDATE activities SET hubspot_modified_at = now() + interval '1 hour' WHERE hubspot_engagement_id = '{note}'"
    ))
    .await;
    app.sim_act(
        "edit",
        json!({"objectType": "notes", "id": note, "properties": {"hs_note_body": "Second"}}),
    )
    .await;
    app.wait_for_webhooks().await;
    assert_eq!(by_type(&app.activities_of(deal).await, "note")["body"], "First");
    assert!(
        app.count("crmsync.webhook_inbox WHERE status = 'skipped' AND outcome = 'older_than_local'")
            .await
            >= 1
    );
}
