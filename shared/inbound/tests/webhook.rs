//! Inbound webhooks against real parts: a fresh PostgreSQL database per test, the HubSpot simulator on port 0, and
//! the webhook router served over real HTTP on port 0 (the simulator delivers its signed webhooks there).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crmsync_domain::policy::{FieldPolicies, PolicyFormat};
use crmsync_hubspot::signature::{sign_v1, sign_v3};
use crmsync_hubspot_sim::{FaultConfig, WebhookTarget};
use crmsync_inbound::{Applier, apply_pending_inbox};
use crmsync_queue::SqsRetryQueue;
use crmsync_sync::{OutboundSync, SyncReport, SyncSettings};
use crmsync_testkit::{Contact, InboxEvent, TestApp, inbox_retries, webhook_config};
use serde_json::{Value, json};
use uuid::Uuid;

const SECRET: &str = "test-client-secret-0123456789";
const PREVIOUS_SECRET: &str = "previous-client-secret-9876543210";
const APP_ID: &str = "54321";
/// The simulator's portal (HUBSPOT_SIM_PORTAL_ID's default), which the test events come from.
const PORTAL_ID: &str = "62515";

/// The app with the webhook router served on port 0, its applier, and an outbound sync.
struct WebhookApp {
    app: TestApp,
    sync: OutboundSync<SqsRetryQueue>,
    applier: Applier,
    url: String,
    http: reqwest::Client,
}

impl Deref for WebhookApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

#[derive(Clone)]
struct Options {
    app_id: bool,
    accept_v1: bool,
    /// Field policies other than the defaults (an override file's content, TOML).
    policy_override: Option<&'static str>,
    /// HUBSPOT_PORTAL_ID: the simulator's portal.
    portal_id: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            app_id: true,
            accept_v1: false,
            policy_override: None,
            portal_id: false,
        }
    }
}

impl WebhookApp {
    async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    async fn spawn_with(options: Options) -> Self {
        let app = TestApp::with_hubspot().await;
        let policies = Arc::new(match options.policy_override {
            Some(text) => FieldPolicies::from_text("override.toml", text, PolicyFormat::Toml).expect("policy file"),
            None => FieldPolicies::defaults(),
        });
        let sync = app.outbound_sync(
            app.hubspot(),
            None,
            SyncSettings {
                worker: "test".into(),
                field_policies: policies.clone(),
                ..SyncSettings::default()
            },
        );
        let accept_v1 = options.accept_v1.to_string();
        let mut vars = vec![
            ("HUBSPOT_CLIENT_SECRET", SECRET),
            ("HUBSPOT_CLIENT_SECRET_PREVIOUS", PREVIOUS_SECRET),
            ("HUBSPOT_WEBHOOK_ACCEPT_V1", accept_v1.as_str()),
        ];
        if options.app_id {
            vars.push(("HUBSPOT_APP_ID", APP_ID));
        }
        if options.portal_id {
            vars.push(("HUBSPOT_PORTAL_ID", PORTAL_ID));
        }
        let config = webhook_config(&vars);
        let applier = app
            .applier(config.app_id.clone())
            .with_portal_id(config.portal_id)
            .with_retry_policy(inbox_retries(3))
            .with_field_policies(policies);
        let state = app.webhook_state(&config, applier.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/webhooks/hubspot", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, crmsync_http::webhook::router(state)).await });
        Self {
            app,
            sync,
            applier,
            url,
            http: reqwest::Client::new(),
        }
    }

    /// Points the simulator's webhooks at our server.
    fn subscribe(&self) {
        self.sim().set_webhook_target(Some(WebhookTarget {
            url: self.url.clone(),
            client_secret: SECRET.into(),
            send_v1: false,
        }));
    }

    async fn wait_for_webhooks(&self) {
        assert!(
            self.sim().wait_webhooks_idle(Duration::from_secs(30)).await,
            "webhooks still pending"
        );
    }

    async fn drain(&self) -> SyncReport {
        self.sync.drain("cli", Duration::from_secs(60)).await.expect("drain")
    }

    /// POSTs a body signed with v3 at `timestamp_ms`.
    async fn post_signed(&self, body: &[u8], timestamp_ms: i64, secret: &str) -> reqwest::Response {
        let signature = sign_v3(secret, "POST", &self.url, body, timestamp_ms);
        self.http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-hubspot-signature-v3", signature)
            .header("x-hubspot-request-timestamp", timestamp_ms.to_string())
            .body(body.to_vec())
            .send()
            .await
            .expect("post")
    }

    /// Delivers events signed now with the current secret; asserts a 200.
    async fn deliver(&self, events: &Value) {
        let body = serde_json::to_vec(events).unwrap();
        let response = self.post_signed(&body, now_ms(), SECRET).await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }

    /// Creates a deal in the simulator (as another integration would), without a webhook: returns its id.
    async fn sim_create_deal(&self, pipeline: &str, stage: &str) -> String {
        let input = crmsync_hubspot::objects::CreateInput {
            properties: [
                ("dealname".to_owned(), "Made in HubSpot".to_owned()),
                ("pipeline".to_owned(), pipeline.to_owned()),
                ("dealstage".to_owned(), stage.to_owned()),
            ]
            .into(),
            associations: Vec::new(),
        };
        let outcome = self
            .hubspot()
            .batch_create(crmsync_hubspot::ObjectType::Deals, &[input])
            .await
            .expect("create deal");
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        outcome.succeeded[0].1.id.clone()
    }

    /// Requests that change something in HubSpot: neither GETs nor batch reads.
    async fn write_requests(&self) -> u64 {
        self.sim_requests_by_endpoint()
            .await
            .into_iter()
            .filter(|(endpoint, _)| !endpoint.starts_with("GET") && !endpoint.contains("/batch/read"))
            .map(|(_, n)| n)
            .sum()
    }

    /// A synced deal's local id and HubSpot id (the first by notice id).
    async fn synced_deal(&self) -> (Uuid, String) {
        let row = &self
            .rows(
                "SELECT d.id, d.hubspot_deal_id FROM deals d JOIN opportunities o ON o.id = d.opportunity_id
                 WHERE d.hubspot_deal_id IS NOT NULL ORDER BY o.notice_id LIMIT 1",
            )
            .await[0];
        (row.get(0), row.get(1))
    }

    /// The `index`th synced company by UEI: its local id and HubSpot id.
    async fn synced_company(&self, index: usize) -> (Uuid, String) {
        let row = &self
            .rows(&format!(
                "SELECT id, hubspot_company_id FROM companies WHERE hubspot_company_id IS NOT NULL
                 ORDER BY uei OFFSET {index} LIMIT 1"
            ))
            .await[0];
        (row.get(0), row.get(1))
    }

    /// How many inbox events ended in each (status, outcome).
    async fn inbox_outcomes(&self) -> Vec<(String, Option<String>, i64)> {
        self.rows("SELECT status, outcome, count(*) FROM crmsync.webhook_inbox GROUP BY 1, 2 ORDER BY 1, 2")
            .await
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

static NEXT_EVENT_ID: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);

/// A user's event (changeSource CRM_UI) of `kind` (e.g. `deal.propertyChange`) on `object_id`.
fn user_event(kind: &str, object_id: &str, occurred_at: i64, extra: Value) -> Value {
    let mut event = json!({
        "eventId": NEXT_EVENT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        "subscriptionId": 1000, "portalId": 62515, "appId": 54321, "occurredAt": occurred_at,
        "subscriptionType": kind, "attemptNumber": 0, "objectId": object_id.parse::<u64>().unwrap_or(0),
        "changeSource": "CRM_UI", "sourceId": "userId:74322246",
    });
    if let (Some(map), Value::Object(extra)) = (event.as_object_mut(), extra) {
        map.extend(extra);
    }
    event
}

fn property_change(kind: &str, object_id: &str, occurred_at: i64, name: &str, value: &str) -> Value {
    user_event(
        kind,
        object_id,
        occurred_at,
        json!({"propertyName": name, "propertyValue": value}),
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Verification

#[tokio::test]
async fn a_signed_batch_is_stored_and_answered_200() {
    let app = WebhookApp::spawn().await;
    let events = json!([user_event("ticket.creation", "1", now_ms(), json!({}))]);
    let body = serde_json::to_vec(&events).unwrap();
    let response = app.post_signed(&body, now_ms(), SECRET).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        (answer["received"].as_u64(), answer["stored"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(app.count("crmsync.webhook_inbox").await, 1);
}

#[tokio::test]
async fn unsigned_forged_stale_future_and_tampered_requests_get_401_with_an_empty_body_and_store_nothing() {
    let app = WebhookApp::spawn().await;
    let body = serde_json::to_vec(&json!([property_change(
        "deal.propertyChange",
        "1",
        now_ms(),
        "description",
        "x"
    )]))
    .unwrap();
    let now = now_ms();
    let mut cases: Vec<(&str, reqwest::RequestBuilder)> = Vec::new();
    cases.push(("unsigned", app.http.post(&app.url).body(body.clone())));
    cases.push((
        "forged with another secret",
        app.http
            .post(&app.url)
            .header(
                "x-hubspot-signature-v3",
                sign_v3("not-the-secret", "POST", &app.url, &body, now),
            )
            .header("x-hubspot-request-timestamp", now.to_string())
            .body(body.clone()),
    ));
    let stale = now - 5 * 60 * 1000 - 1_000;
    cases.push((
        "stale (over 5 minutes old)",
        app.http
            .post(&app.url)
            .header(
                "x-hubspot-signature-v3",
                sign_v3(SECRET, "POST", &app.url, &body, stale),
            )
            .header("x-hubspot-request-timestamp", stale.to_string())
            .body(body.clone()),
    ));
    let future = now + 5 * 60 * 1000 + 1_000;
    cases.push((
        "from the future (over 5 minutes ahead)",
        app.http
            .post(&app.url)
            .header(
                "x-hubspot-signature-v3",
                sign_v3(SECRET, "POST", &app.url, &body, future),
            )
            .header("x-hubspot-request-timestamp", future.to_string())
            .body(body.clone()),
    ));
    let mut tampered = body.clone();
    let position = tampered.iter().position(|b| *b == b'x').unwrap();
    tampered[position] = b'y';
    cases.push((
        "tampered body",
        app.http
            .post(&app.url)
            .header("x-hubspot-signature-v3", sign_v3(SECRET, "POST", &app.url, &body, now))
            .header("x-hubspot-request-timestamp", now.to_string())
            .body(tampered),
    ));
    cases.push((
        "signed for another URL",
        app.http
            .post(&app.url)
            .header(
                "x-hubspot-signature-v3",
                sign_v3(SECRET, "POST", "https://elsewhere.example/webhooks/hubspot", &body, now),
            )
            .header("x-hubspot-request-timestamp", now.to_string())
            .body(body.clone()),
    ));
    cases.push((
        "signature without a timestamp",
        app.http
            .post(&app.url)
            .header("x-hubspot-signature-v3", sign_v3(SECRET, "POST", &app.url, &body, now))
            .body(body.clone()),
    ));
    cases.push((
        "v1 signature while v1 is off",
        app.http
            .post(&app.url)
            .header("x-hubspot-signature", sign_v1(SECRET, &body))
            .header("x-hubspot-signature-version", "v1")
            .body(body.clone()),
    ));
    for (case, request) in cases {
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(response.text().await.unwrap(), "", "{case}: no detail in the body");
    }
    assert_eq!(app.count("crmsync.webhook_inbox").await, 0);
    assert_eq!(app.count("crmsync.sync_conflicts").await, 0);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_gets_413_and_stores_nothing() {
    let app = WebhookApp::spawn().await;
    let padding = "x".repeat(1024 * 1024);
    let body = serde_json::to_vec(&json!([user_event(
        "deal.creation",
        "1",
        now_ms(),
        json!({"padding": padding})
    )]))
    .unwrap();
    let response = app.post_signed(&body, now_ms(), SECRET).await;
    assert_eq!(response.status(), 413);
    assert_eq!(app.count("crmsync.webhook_inbox").await, 0);
}

#[tokio::test]
async fn malformed_json_and_non_event_bodies_get_400_and_store_nothing() {
    let app = WebhookApp::spawn().await;
    for body in [
        &b"[{\"eventId\": 1,"[..],
        b"{\"eventId\": 1}",
        b"[{\"eventId\": 1}]",
        b"not json",
    ] {
        let response = app.post_signed(body, now_ms(), SECRET).await;
        assert_eq!(response.status(), 400, "{}", String::from_utf8_lossy(body));
    }
    assert_eq!(app.count("crmsync.webhook_inbox").await, 0);
}

#[tokio::test]
async fn the_previous_secret_is_accepted_during_a_rotation() {
    let app = WebhookApp::spawn().await;
    let body = serde_json::to_vec(&json!([user_event("ticket.creation", "1", now_ms(), json!({}))])).unwrap();
    assert_eq!(app.post_signed(&body, now_ms(), PREVIOUS_SECRET).await.status(), 200);
    assert_eq!(app.count("crmsync.webhook_inbox").await, 1);
}

#[tokio::test]
async fn v1_signatures_are_accepted_only_when_enabled() {
    let app = WebhookApp::spawn_with(Options {
        accept_v1: true,
        ..Options::default()
    })
    .await;
    let body = serde_json::to_vec(&json!([user_event("ticket.creation", "1", now_ms(), json!({}))])).unwrap();
    let send = |signature: String| {
        app.http
            .post(&app.url)
            .header("x-hubspot-signature", signature)
            .header("x-hubspot-signature-version", "v1")
            .body(body.clone())
            .send()
    };
    assert_eq!(send(sign_v1(SECRET, &body)).await.unwrap().status(), 200);
    assert_eq!(send(sign_v1("wrong", &body)).await.unwrap().status(), 401);
    assert_eq!(app.count("crmsync.webhook_inbox").await, 1);
}

// ---------------------------------------------------------------------------------------------------------------
// Ordering and deduplication

#[tokio::test]
async fn a_redelivered_batch_is_stored_once_and_applied_once() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, hubspot_id) = app.synced_deal().await;
    let events = json!([property_change(
        "deal.propertyChange",
        &hubspot_id,
        now_ms(),
        "dealstage",
        &app.stage_id("contact_made").await
    )]);
    app.deliver(&events).await;
    // HubSpot re-sends the same batch with attemptNumber 1: same dedupe key.
    let mut again = events.clone();
    again[0]["attemptNumber"] = json!(1);
    app.deliver(&again).await;
    assert_eq!(app.count("crmsync.webhook_inbox").await, 1);
    assert_eq!(
        app.count(&format!(
            "activities WHERE deal_id = '{deal}' AND activity_type = 'stage_change'"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn with_hubspot_portal_id_set_another_portals_events_are_answered_200_recorded_as_skipped_and_not_applied() {
    let app = WebhookApp::spawn_with(Options {
        portal_id: true,
        ..Options::default()
    })
    .await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, hubspot_id) = app.synced_deal().await;
    let companies = app.count("companies").await;
    let description = app.deal(deal).await.description;
    let reads_before = app.sim_requests_by_endpoint().await;
    // A sandbox with the same app installed: its ids may well equal ours, yet they name other records.
    let sandbox = json!({ "portalId": 99_999 });
    let mut change = property_change(
        "deal.propertyChange",
        &hubspot_id,
        now_ms(),
        "description",
        "from the sandbox",
    );
    change["portalId"] = sandbox["portalId"].clone();
    let creation = user_event("company.creation", "777", now_ms(), sandbox);
    app.deliver(&json!([change, creation])).await;
    assert_eq!(
        app.deal(deal).await.description,
        description,
        "the sandbox's change was not applied"
    );
    assert_eq!(app.count("companies").await, companies, "nothing was created");
    assert_eq!(
        app.sim_requests_by_endpoint().await,
        reads_before,
        "HubSpot was not asked about the sandbox's records"
    );
    assert_eq!(
        app.inbox_outcomes().await,
        [("skipped".to_owned(), Some(crmsync_inbound::OTHER_PORTAL.to_owned()), 2)]
    );
    // The same change from our own portal applies.
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        &hubspot_id,
        now_ms(),
        "description",
        "from ours"
    )]))
    .await;
    assert_eq!(app.deal(deal).await.description.as_deref(), Some("from ours"));
}

#[tokio::test]
async fn an_older_change_arriving_after_a_newer_one_leaves_the_newer_in_place() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, hubspot_id) = app.synced_deal().await;
    let now = now_ms();
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        &hubspot_id,
        now,
        "description",
        "newer"
    )]))
    .await;
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        &hubspot_id,
        now - 60_000,
        "description",
        "older"
    )]))
    .await;
    let stage_newer = app.stage_id("negotiation").await;
    let stage_older = app.stage_id("contact_made").await;
    app.deliver(&json!([
        property_change("deal.propertyChange", &hubspot_id, now, "dealstage", &stage_newer),
        property_change("deal.propertyChange", &hubspot_id, now - 1, "dealstage", &stage_older),
    ]))
    .await;
    let deal = app.deal(deal).await;
    assert_eq!(deal.description.as_deref(), Some("newer"));
    assert_eq!(deal.stage, "negotiation");
}

#[tokio::test]
async fn events_in_one_batch_apply_in_occurred_at_order_whatever_their_position() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, hubspot_id) = app.synced_deal().await;
    let now = now_ms();
    app.deliver(&json!([
        property_change("deal.propertyChange", &hubspot_id, now + 2, "description", "third"),
        property_change("deal.propertyChange", &hubspot_id, now, "description", "first"),
        property_change("deal.propertyChange", &hubspot_id, now + 1, "description", "second"),
    ]))
    .await;
    assert_eq!(app.deal(deal).await.description.as_deref(), Some("third"));
}

#[tokio::test]
async fn two_lanes_applying_one_backlog_at_once_apply_each_event_once_and_each_records_events_in_order() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(12, 3).await;
    app.drain().await;
    let deals: Vec<(Uuid, String)> = app
        .rows("SELECT id, hubspot_deal_id FROM deals WHERE hubspot_deal_id IS NOT NULL ORDER BY id")
        .await
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(deals.len(), 12);
    // Five description changes per deal, stored newest first so that storage order is not apply order.
    let now = now_ms();
    let payloads: Vec<(&str, Value)> = deals
        .iter()
        .flat_map(|(_, hubspot_id)| {
            (0..5).rev().map(move |step| {
                let value = format!("{hubspot_id} step {step}");
                let event = property_change("deal.propertyChange", hubspot_id, now + step, "description", &value);
                (hubspot_id.as_str(), event)
            })
        })
        .collect();
    let events: Vec<crmsync_db::inbox::NewInboxEvent> = payloads
        .iter()
        .map(|(hubspot_id, payload)| crmsync_db::inbox::NewInboxEvent {
            portal_id: payload["portalId"].as_i64().unwrap(),
            subscription_id: payload["subscriptionId"].as_i64().unwrap(),
            event_id: payload["eventId"].as_i64().unwrap(),
            occurred_at: payload["occurredAt"].as_i64().unwrap(),
            event_type: "deal.propertyChange",
            object_type: Some("deals"),
            object_id: Some(hubspot_id),
            payload,
        })
        .collect();
    let stored = crmsync_db::inbox::PgInboxStore::new(app.pool().clone())
        .insert_batch(&events)
        .await
        .expect("store the backlog");
    assert_eq!(stored.len(), 60);

    // Small passes, so each lane runs several while the other does too.
    let lane = |lane: i32| {
        let applier = app.applier.clone();
        async move {
            let mut applied = 0;
            loop {
                let report = crmsync_inbound::apply_pending_lane(&applier, 7, lane, 2)
                    .await
                    .expect("pass");
                if report.applied + report.skipped + report.waiting + report.dead == 0 {
                    return applied;
                }
                assert_eq!((report.waiting, report.dead), (0, 0), "{report:?}");
                applied += report.applied;
            }
        }
    };
    let (first, second) = tokio::join!(lane(0), lane(1));
    assert!(first > 0 && second > 0, "both lanes had work: {first} and {second}");
    assert_eq!(first + second, 60, "every event applied once");
    for (deal, hubspot_id) in &deals {
        assert_eq!(
            app.deal(*deal).await.description.as_deref(),
            Some(format!("{hubspot_id} step 4").as_str()),
            "the newest change of {hubspot_id} won"
        );
    }
    let open = app
        .rows("SELECT count(*) FROM crmsync.webhook_inbox WHERE status <> 'applied'")
        .await;
    assert_eq!(open[0].get::<_, i64>(0), 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Ownership

/// The local records one test edits in HubSpot, read after the events applied.
struct Local {
    deal: crmsync_testkit::Deal,
    company: crmsync_testkit::Company,
    contact: Contact,
}

/// Where a HubSpot property lands locally.
type LocalField = fn(&Local) -> Option<&str>;

#[tokio::test]
async fn every_hubspot_and_two_way_field_is_applied_and_not_sent_back() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, deal_hs) = app.synced_deal().await;
    let (company, company_hs) = app.synced_company(0).await;
    let contact = app
        .sim_act(
            "create-contact",
            json!({"properties": {"email": "first@example.com", "firstname": "First"}, "companyId": company_hs}),
        )
        .await;
    let contact_hs = contact["id"].as_str().unwrap().to_owned();
    app.deliver(&json!([user_event(
        "contact.creation",
        &contact_hs,
        now_ms(),
        json!({})
    )]))
    .await;
    let contact_id = app
        .contact_by_hubspot_id(&contact_hs)
        .await
        .expect("contact created locally")
        .id;
    let later = now_ms() + 1_000;
    let cases: Vec<(&str, String, &str, &str, LocalField)> = vec![
        ("deal", deal_hs.clone(), "hubspot_owner_id", "8801", |l| {
            l.deal.owner_id.as_deref()
        }),
        ("deal", deal_hs.clone(), "description", "From HubSpot", |l| {
            l.deal.description.as_deref()
        }),
        ("deal", deal_hs.clone(), "hs_priority", "LOW", |l| {
            Some(l.deal.priority.as_str())
        }),
        ("company", company_hs.clone(), "lifecyclestage", "customer", |l| {
            Some(l.company.lifecycle_stage.as_str())
        }),
        ("company", company_hs.clone(), "hubspot_owner_id", "8802", |l| {
            l.company.owner_id.as_deref()
        }),
        ("company", company_hs.clone(), "description", "Company notes", |l| {
            l.company.description.as_deref()
        }),
        ("company", company_hs.clone(), "website", "https://acme.example", |l| {
            l.company.website.as_deref()
        }),
        ("company", company_hs.clone(), "phone", "+1 555 0100", |l| {
            l.company.phone.as_deref()
        }),
        ("contact", contact_hs.clone(), "firstname", "Ada", |l| {
            l.contact.first_name.as_deref()
        }),
        ("contact", contact_hs.clone(), "lastname", "Lovelace", |l| {
            l.contact.last_name.as_deref()
        }),
        ("contact", contact_hs.clone(), "email", "ada@example.com", |l| {
            l.contact.email.as_deref()
        }),
        ("contact", contact_hs.clone(), "phone", "+1 555 0101", |l| {
            l.contact.phone.as_deref()
        }),
        ("contact", contact_hs.clone(), "mobilephone", "+1 555 0102", |l| {
            l.contact.mobile_phone.as_deref()
        }),
        ("contact", contact_hs.clone(), "jobtitle", "CTO", |l| {
            l.contact.job_title.as_deref()
        }),
        ("contact", contact_hs.clone(), "lifecyclestage", "opportunity", |l| {
            Some(l.contact.lifecycle_stage.as_str())
        }),
        ("contact", contact_hs.clone(), "hubspot_owner_id", "8803", |l| {
            l.contact.owner_id.as_deref()
        }),
    ];
    let events: Vec<Value> = cases
        .iter()
        .map(|(object, id, property, value, _)| {
            property_change(&format!("{object}.propertyChange"), id, later, property, value)
        })
        .collect();
    app.deliver(&Value::Array(events)).await;
    let local = Local {
        deal: app.deal(deal).await,
        company: app.company(company).await,
        contact: app.contact(contact_id).await,
    };
    for (object, _, property, value, field) in &cases {
        let expected = if *property == "hs_priority" { "low" } else { value };
        assert_eq!(field(&local), Some(expected), "{object}.{property}");
    }
    assert_eq!(local.contact.full_name, "Ada Lovelace");
    // Each applied value is recorded as what HubSpot holds: the next sync has nothing to send.
    let writes_before = app.write_requests().await;
    let report = app.drain().await;
    assert_eq!((report.companies_updated, report.deals_updated), (0, 0), "{report:?}");
    assert_eq!(app.write_requests().await, writes_before);
}

#[tokio::test]
async fn local_fields_changed_in_hubspot_are_reverted_and_reasserted_by_the_next_sync() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, deal_hs) = app.synced_deal().await;
    let (company, company_hs) = app.synced_company(0).await;
    let local_amount = app.deal(deal).await.deal_value;
    let local_name = app.company(company).await.name;
    // A salesperson edits pipeline-owned values in HubSpot.
    app.sim_act(
        "edit",
        json!({"objectType": "deals", "id": deal_hs, "properties": {"amount": "1"}}),
    )
    .await;
    app.sim_act(
        "edit-company",
        json!({"companyId": company_hs, "properties": {"name": "Renamed in HubSpot"}}),
    )
    .await;
    let events = json!([
        property_change("deal.propertyChange", &deal_hs, now_ms(), "amount", "1"),
        property_change(
            "company.propertyChange",
            &company_hs,
            now_ms(),
            "name",
            "Renamed in HubSpot"
        ),
    ]);
    app.deliver(&events).await;
    assert_eq!(app.deal(deal).await.deal_value, local_amount, "local keeps its amount");
    assert_eq!(app.company(company).await.name, local_name);
    assert_eq!(
        app.count("crmsync.sync_conflicts WHERE winner = 'local' AND rule = 'local'")
            .await,
        2
    );
    assert_eq!(
        app.count("sync_queue WHERE status = 'pending' AND operation = 'update'")
            .await,
        2,
        "both records are queued for the re-assertion"
    );
    let report = app.drain().await;
    assert_eq!((report.companies_updated, report.deals_updated), (1, 1), "{report:?}");
    let deal_in_hubspot = app.sim_deal(&deal_hs).await;
    assert_eq!(
        deal_in_hubspot.prop("amount"),
        local_amount.as_deref().map(|a| a.trim_end_matches(".00")),
        "the sync wrote the local amount back"
    );
    let company_in_hubspot = app.sim_company(&company_hs).await;
    assert_eq!(company_in_hubspot.prop("name"), Some(local_name.as_str()));
}

#[tokio::test]
async fn a_newer_local_edit_beats_an_older_hubspot_change_of_a_two_way_field_but_not_of_a_hubspot_one() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, deal_hs) = app.synced_deal().await;
    let (company, company_hs) = app.synced_company(0).await;
    let before_edit = now_ms() - 5_000;
    app.execute(&format!(
        "UPDATE deals SET priority = 'low', description = 'local notes' WHERE id = '{deal}';
         UPDATE companies SET website = 'https://local.example' WHERE id = '{company}'"
    ))
    .await;
    app.deliver(&json!([
        property_change("deal.propertyChange", &deal_hs, before_edit, "hs_priority", "high"),
        property_change(
            "deal.propertyChange",
            &deal_hs,
            before_edit,
            "description",
            "hubspot notes"
        ),
        property_change(
            "company.propertyChange",
            &company_hs,
            before_edit,
            "website",
            "https://hubspot.example"
        ),
    ]))
    .await;
    // hs_priority and website are two_way: the newer local edit stays. description is HubSpot's (a sales field):
    // its value is taken even over the newer local edit, and the dropped local value is recorded.
    let local = app.deal(deal).await;
    assert_eq!(
        (local.priority.as_str(), local.description.as_deref()),
        ("low", Some("hubspot notes"))
    );
    assert_eq!(
        app.company(company).await.website.as_deref(),
        Some("https://local.example")
    );
    assert_eq!(
        app.count(
            "crmsync.sync_conflicts WHERE winner = 'local' AND rule = 'two_way' AND local_changed_at IS NOT NULL"
        )
        .await,
        2
    );
    assert_eq!(
        app.count(
            "crmsync.sync_conflicts WHERE winner = 'hubspot' AND rule = 'hubspot' AND property = 'description' \
             AND local_value = 'local notes' AND hubspot_value = 'hubspot notes'"
        )
        .await,
        1
    );
    // A HubSpot change newer than the local edit wins, and overriding the unsynced local value is recorded.
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        &deal_hs,
        now_ms() + 1_000,
        "hs_priority",
        "high"
    )]))
    .await;
    assert_eq!(app.deal(deal).await.priority, "high");
    assert_eq!(
        app.count("crmsync.sync_conflicts WHERE winner = 'hubspot' AND property = 'hs_priority'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_stage_change_in_hubspot_maps_through_the_pipeline_and_closes_and_reopens_the_deal() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, deal_hs) = app.synced_deal().await;
    let t = now_ms();
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        &deal_hs,
        t,
        "dealstage",
        &app.stage_id("closed_lost").await
    )]))
    .await;
    let closed = app.deal(deal).await;
    assert_eq!(closed.stage, "closed_lost");
    assert_eq!(
        closed.closed_at,
        chrono::DateTime::from_timestamp_millis(t),
        "closed_at is when it closed in HubSpot"
    );
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        &deal_hs,
        t + 1,
        "dealstage",
        &app.stage_id("negotiation").await
    )]))
    .await;
    let reopened = app.deal(deal).await;
    assert_eq!(
        (reopened.stage.as_str(), reopened.closed_at.is_none()),
        ("negotiation", true)
    );
    assert_eq!(
        app.count(&format!(
            "activities WHERE deal_id = '{deal}' AND activity_type = 'stage_change'
               AND hubspot_sync_status = 'local_only'"
        ))
        .await,
        2
    );
    // A stage id the map does not know, with no move out of our pipeline seen, is an error recorded on the event
    // (dead, with the reason), and the stage stays.
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        &deal_hs,
        t + 2,
        "dealstage",
        "appointmentscheduled"
    )]))
    .await;
    assert_eq!(app.deal(deal).await.stage, "negotiation");
    assert!(
        app.inbox_outcomes()
            .await
            .contains(&("dead".into(), Some("unknown_stage".into()), 1))
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Echo suppression, end to end

async fn assert_echoes_change_nothing_and_send_nothing(app: &WebhookApp, expected_echo_outcome: &str) {
    app.ingest_generated(20, 4).await;
    app.subscribe();
    let snapshot = "SELECT string_agg(t::text, '|' ORDER BY t::text) FROM (
                      SELECT id, deal_name, deal_value, stage, priority, description, owner_id, company_id,
                             hubspot_deal_id, closed_at FROM deals) t";
    let companies = "SELECT string_agg(t::text, '|' ORDER BY t::text) FROM (
                       SELECT id, name, website, phone, lifecycle_stage, owner_id, description, hubspot_company_id
                       FROM companies) t";
    let snapshot_of = |sql: &'static str| app.scalar::<Option<String>>(sql);
    let first = app.drain().await;
    assert_eq!((first.companies_created, first.deals_created), (4, 20), "{first:?}");
    let (deals_before, companies_before) = (snapshot_of(snapshot).await, snapshot_of(companies).await);
    app.wait_for_webhooks().await;
    let stored = app.count("crmsync.webhook_inbox").await;
    assert!(stored >= 24, "the simulator sent the echoes of our writes ({stored})");
    assert_eq!(
        app.count("crmsync.webhook_inbox WHERE status = 'applied' AND outcome NOT IN ('unchanged')")
            .await,
        0,
        "{:?}",
        app.inbox_outcomes().await
    );
    assert!(
        app.inbox_outcomes()
            .await
            .iter()
            .any(|(status, outcome, _)| status == "skipped" && outcome.as_deref() == Some(expected_echo_outcome)),
        "{:?}",
        app.inbox_outcomes().await
    );
    assert_eq!(app.count("crmsync.sync_conflicts").await, 0);
    assert_eq!(
        (snapshot_of(snapshot).await, snapshot_of(companies).await),
        (deals_before, companies_before)
    );
    let writes = app.write_requests().await;
    let second = app.drain().await;
    assert_eq!(second.claimed, 0, "nothing was queued by the echoes: {second:?}");
    assert_eq!(app.write_requests().await, writes, "nothing is sent back");
}

#[tokio::test]
async fn echoes_of_our_writes_are_recognised_by_app_id_and_change_nothing_and_send_nothing() {
    let app = WebhookApp::spawn().await;
    assert_echoes_change_nothing_and_send_nothing(&app, "echo").await;
}

#[tokio::test]
async fn without_an_app_id_the_echo_ledger_recognises_our_writes() {
    let app = WebhookApp::spawn_with(Options {
        app_id: false,
        ..Options::default()
    })
    .await;
    assert_echoes_change_nothing_and_send_nothing(&app, "echo").await;
    // Our creations come back too: records already linked locally, or (when the event beats the sync's write-back)
    // records carrying our crmsync_id. Either way nothing is created.
    assert_eq!(
        app.count(
            "crmsync.webhook_inbox
             WHERE event_type LIKE '%.creation' AND status = 'skipped' AND outcome IN ('already_local', 'ours')"
        )
        .await,
        24,
        "{:?}",
        app.inbox_outcomes().await
    );
    assert_eq!(app.count("companies").await, 4);
    assert_eq!(app.count("deals").await, 20);
}

// ---------------------------------------------------------------------------------------------------------------
// Lifecycle

#[tokio::test]
async fn a_deal_deleted_in_hubspot_is_marked_deleted_stops_syncing_and_restore_brings_it_back() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    app.subscribe();
    let (deal, deal_hs) = app.synced_deal().await;
    app.sim_act("delete-deal", json!({"dealId": deal_hs})).await;
    app.wait_for_webhooks().await;
    assert_eq!(app.deal(deal).await.hubspot_sync_status, "deleted");
    assert_eq!(
        app.count(&format!("deals WHERE id = '{deal}'")).await,
        1,
        "not hard-deleted"
    );
    // A local change to a deleted deal is not sent.
    app.execute(&format!(
        "UPDATE deals SET win_probability = 5 WHERE id = '{deal}';
         INSERT INTO sync_queue (entity_type, entity_id, operation) VALUES ('deal', '{deal}', 'update')"
    ))
    .await;
    let report = app.drain().await;
    assert_eq!(report.deals_updated, 0, "{report:?}");

    app.sim_act("restore-deal", json!({"dealId": deal_hs})).await;
    app.wait_for_webhooks().await;
    assert_eq!(app.deal(deal).await.hubspot_sync_status, "synced");
    let report = app.drain().await;
    assert_eq!(report.deals_updated, 1, "the restored deal catches up: {report:?}");
    assert_eq!(app.sim_deal(&deal_hs).await.prop("b2g_win_probability"), Some("5"));
}

#[tokio::test]
async fn merging_two_companies_in_hubspot_moves_the_merged_companys_deals_to_the_survivor() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(4, 2).await;
    app.drain().await;
    app.subscribe();
    let (survivor, survivor_hs) = app.synced_company(0).await;
    let (merged, merged_hs) = app.synced_company(1).await;
    app.sim_act(
        "merge-companies",
        json!({"primaryId": survivor_hs, "mergedId": merged_hs}),
    )
    .await;
    app.wait_for_webhooks().await;
    assert_eq!(app.count(&format!("deals WHERE company_id = '{survivor}'")).await, 4);
    let merged = app.company(merged).await;
    assert_eq!(
        (merged.hubspot_company_id, merged.hubspot_sync_status.as_str()),
        (None, "deleted")
    );
    assert_eq!(app.company(survivor).await.hubspot_company_id, Some(survivor_hs));
}

#[tokio::test]
async fn a_merge_whose_survivor_is_not_local_relinks_the_merged_record_to_the_survivor_id() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (company, company_hs) = app.synced_company(0).await;
    app.deliver(&json!([user_event(
        "company.merge",
        "999001",
        now_ms(),
        json!({"primaryObjectId": 999001, "mergedObjectIds": [company_hs.parse::<u64>().unwrap()], "newObjectId": 999001})
    )]))
    .await;
    assert_eq!(app.company(company).await.hubspot_company_id.as_deref(), Some("999001"));
}

#[tokio::test]
async fn association_changes_move_deals_and_contacts_between_companies() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(2, 2).await;
    app.drain().await;
    app.subscribe();
    let (deal, deal_hs) = app.synced_deal().await;
    let (first, first_hs) = app.synced_company(0).await;
    let (second, second_hs) = app.synced_company(1).await;
    let target = if app.deal(deal).await.company_id == Some(first) {
        (second, second_hs.clone())
    } else {
        (first, first_hs.clone())
    };
    app.sim_act(
        "associate",
        json!({"fromType": "deals", "fromId": deal_hs, "toType": "companies", "toId": target.1, "primary": true}),
    )
    .await;
    app.wait_for_webhooks().await;
    assert_eq!(app.deal(deal).await.company_id, Some(target.0));
    // A contact made in HubSpot with a company comes in linked to it.
    let contact = app
        .sim_act(
            "create-contact",
            json!({"properties": {"email": "linked@example.com", "firstname": "Lin"}, "companyId": first_hs}),
        )
        .await;
    app.wait_for_webhooks().await;
    let contact_hs = contact["id"].as_str().unwrap();
    assert_eq!(
        app.contact_by_hubspot_id(contact_hs).await.and_then(|c| c.company_id),
        Some(first)
    );
    // Removing the association unlinks it.
    app.sim_act(
        "associate",
        json!({"fromType": "contacts", "fromId": contact_hs, "toType": "companies", "toId": first_hs, "remove": true}),
    )
    .await;
    app.wait_for_webhooks().await;
    assert_eq!(
        app.contact_by_hubspot_id(contact_hs).await.and_then(|c| c.company_id),
        None
    );
}

#[tokio::test]
async fn a_contact_created_in_hubspot_is_created_locally_and_tagged_with_our_id_in_hubspot() {
    let app = WebhookApp::spawn().await;
    app.subscribe();
    let contact = app
        .sim_act(
            "create-contact",
            json!({"properties": {"email": "new@example.com", "firstname": "New", "lastname": "Person", "jobtitle": "CEO"}}),
        )
        .await;
    app.wait_for_webhooks().await;
    let contact_hs = contact["id"].as_str().unwrap();
    let contact = app.contact_by_hubspot_id(contact_hs).await.expect("created locally");
    assert_eq!(
        (
            contact.full_name.as_str(),
            contact.email.as_deref(),
            contact.job_title.as_deref(),
            contact.source.as_str(),
            contact.hubspot_sync_status.as_str()
        ),
        ("New Person", Some("new@example.com"), Some("CEO"), "hubspot", "synced")
    );
    let local_id = contact.id.to_string();
    app.wait_for_webhooks().await;
    assert_eq!(
        app.sim_record("contacts", contact_hs).await.prop("crmsync_id"),
        Some(local_id.as_str()),
        "HubSpot's record carries our id, so an upsert on it finds the record"
    );
    assert_eq!(
        app.count("contacts").await,
        1,
        "the crmsync_id write's echo created nothing"
    );
}

#[tokio::test]
async fn a_deal_whose_company_is_not_local_yet_waits_and_applies_on_the_re_apply_pass() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, deal_hs) = app.synced_deal().await;
    let t = now_ms();
    let association = user_event(
        "deal.associationChange",
        &deal_hs,
        t,
        json!({"associationType": "DEAL_TO_COMPANY", "fromObjectId": deal_hs.parse::<u64>().unwrap(),
               "toObjectId": 777001, "associationRemoved": false, "isPrimaryAssociation": true}),
    );
    app.deliver(&json!([association])).await;
    assert_eq!(
        app.inbox_outcomes().await,
        vec![("retry".to_owned(), Some("waiting".to_owned()), 1)]
    );
    // The company arrives (made in HubSpot; its creation event is applied), then the pass applies the link.
    app.execute(
        "INSERT INTO companies (name, hubspot_company_id, hubspot_sync_status, source) VALUES ('Late Co', '777001', 'synced', 'hubspot')",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = apply_pending_inbox(&app.applier, 100).await.expect("pass");
    assert_eq!(report.applied, 1, "{report:?}");
    let company_id = app.deal(deal).await.company_id.expect("linked to a company");
    assert_eq!(app.company(company_id).await.name, "Late Co");
}

#[tokio::test]
async fn an_event_that_can_never_apply_is_dead_after_its_last_attempt() {
    let app = WebhookApp::spawn().await;
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        "424242",
        now_ms(),
        "description",
        "x"
    )]))
    .await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        apply_pending_inbox(&app.applier, 100).await.expect("pass");
    }
    let event = app.inbox_event().await;
    assert_eq!((event.status.as_str(), event.attempts), ("dead", 3));
    assert!(event.last_error.unwrap().contains("424242"));
}

#[tokio::test]
async fn an_event_that_breaks_a_database_rule_is_given_up_alone_and_the_rest_of_the_batch_applies() {
    let app = WebhookApp::spawn().await;
    app.execute(
        "INSERT INTO contacts (full_name, email, hubspot_contact_id, hubspot_sync_status) VALUES
           ('A', 'a@example.com', '9001', 'synced'), ('B', 'b@example.com', '9002', 'synced')",
    )
    .await;
    let t = now_ms();
    app.deliver(&json!([
        property_change("contact.propertyChange", "9001", t, "jobtitle", "CFO"),
        // HubSpot would not allow this, but a unique index locally refuses it: the event alone is given up.
        property_change("contact.propertyChange", "9002", t + 1, "email", "A@example.com"),
        property_change("contact.propertyChange", "9002", t + 2, "jobtitle", "COO"),
    ]))
    .await;
    let titles: Vec<(Option<String>, Option<String>)> = app
        .select::<Contact>("ORDER BY hubspot_contact_id", &[])
        .await
        .into_iter()
        .map(|contact| (contact.job_title, contact.email))
        .collect();
    assert_eq!(
        titles,
        vec![
            (Some("CFO".into()), Some("a@example.com".into())),
            (Some("COO".into()), Some("b@example.com".into()))
        ]
    );
    let dead = app.select::<InboxEvent>("WHERE status = 'dead'", &[]).await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].last_error.as_deref().unwrap().contains("contacts_email_key"));
    assert_eq!(app.count("crmsync.webhook_inbox WHERE status = 'applied'").await, 2);
}

#[tokio::test]
async fn unknown_types_and_objects_are_acknowledged_recorded_and_not_applied() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, deal_hs) = app.synced_deal().await;
    let mut generic = user_event(
        "object.propertyChange",
        "5",
        now_ms(),
        json!({"propertyName": "subject", "propertyValue": "x"}),
    );
    generic["objectTypeId"] = json!("0-5");
    app.deliver(&json!([
        user_event("conversation.newMessage", "1", now_ms(), json!({})),
        user_event("deal.somethingNew", &deal_hs, now_ms(), json!({})),
        generic,
        property_change("deal.propertyChange", &deal_hs, now_ms(), "hs_lastmodifieddate", "x"),
    ]))
    .await;
    let outcomes = app.inbox_outcomes().await;
    assert_eq!(
        outcomes,
        vec![
            ("skipped".to_owned(), Some("unknown_object".to_owned()), 2),
            ("skipped".to_owned(), Some("unknown_type".to_owned()), 1),
            ("skipped".to_owned(), Some("unmapped_property".to_owned()), 1),
        ]
    );
    assert_eq!(app.deal(deal).await.hubspot_sync_status, "synced");
}

// ---------------------------------------------------------------------------------------------------------------
// HubSpot's 5-second timeout

#[tokio::test]
async fn a_creation_event_gets_its_200_within_the_deadline_while_hubspot_is_slow_and_applies_once_it_recovers() {
    let app = WebhookApp::spawn().await;
    let contact = app
        .sim_act(
            "create-contact",
            json!({"properties": {"email": "slow@example.com", "firstname": "Slow", "lastname": "Read"}}),
        )
        .await;
    let contact_hs = contact["id"].as_str().unwrap().to_owned();
    // Every HubSpot answer now takes 20 s: the creation event's batch read would hold the handler far past
    // HubSpot's 5-second timeout without the apply deadline (2.5 s by default).
    app.sim().set_faults(FaultConfig {
        slow_rate: 1.0,
        slow_delay_ms: 20_000,
        ..FaultConfig::default()
    });
    let started = std::time::Instant::now();
    app.deliver(&json!([user_event(
        "contact.creation",
        &contact_hs,
        now_ms(),
        json!({})
    )]))
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "answered after {elapsed:?}");
    assert_eq!(
        app.inbox_events()
            .await
            .into_iter()
            .map(|event| (event.status, event.attempts))
            .collect::<Vec<_>>(),
        vec![("pending".to_owned(), 0)],
        "the event stays in the inbox, untouched, no attempt spent"
    );
    assert_eq!(app.count("contacts").await, 0);

    app.sim().set_faults(FaultConfig::default());
    let report = apply_pending_inbox(&app.applier, 100).await.expect("re-apply");
    assert_eq!((report.applied, report.created), (1, 1), "{report:?}");
    let local_id = app
        .contact_by_hubspot_id(&contact_hs)
        .await
        .expect("created locally")
        .id
        .to_string();
    assert_eq!(
        app.sim_record("contacts", &contact_hs).await.prop("crmsync_id"),
        Some(local_id.as_str())
    );
    assert_eq!(
        app.inbox_outcomes().await,
        vec![("applied".to_owned(), Some("created".to_owned()), 1)]
    );
}

#[tokio::test]
async fn a_record_created_by_a_pass_that_never_wrote_our_id_back_gets_it_written_on_the_re_apply() {
    let app = WebhookApp::spawn().await;
    let contact = app
        .sim_act("create-contact", json!({"properties": {"email": "half@example.com"}}))
        .await;
    let contact_hs = contact["id"].as_str().unwrap().to_owned();
    // What a pass cut off after its commit leaves: the contact is local and linked, HubSpot lacks our id.
    app.execute(&format!(
        "INSERT INTO contacts (full_name, email, hubspot_contact_id, hubspot_sync_status, source)
         VALUES ('half@example.com', 'half@example.com', '{contact_hs}', 'synced', 'hubspot')"
    ))
    .await;
    app.deliver(&json!([user_event(
        "contact.creation",
        &contact_hs,
        now_ms(),
        json!({})
    )]))
    .await;
    let local_id = app.contacts().await[0].id.to_string();
    assert_eq!(
        app.sim_record("contacts", &contact_hs).await.prop("crmsync_id"),
        Some(local_id.as_str())
    );
    assert_eq!(
        app.inbox_outcomes().await,
        vec![("applied".to_owned(), Some("written_back".to_owned()), 1)]
    );
    assert_eq!(app.count("contacts").await, 1);
}

#[tokio::test]
async fn a_write_back_that_failed_is_retried_and_the_retry_creates_nothing_twice() {
    let app = WebhookApp::spawn().await;
    let contact = app
        .sim_act(
            "create-contact",
            json!({"properties": {"email": "dropped@example.com"}}),
        )
        .await;
    let contact_hs = contact["id"].as_str().unwrap().to_owned();
    // Writes are applied, then their connection is dropped: the client sees every write-back fail.
    app.sim().set_faults(FaultConfig {
        drop_after_write_rate: 1.0,
        ..FaultConfig::default()
    });
    app.deliver(&json!([user_event(
        "contact.creation",
        &contact_hs,
        now_ms(),
        json!({})
    )]))
    .await;
    let event = app.inbox_event().await;
    assert_eq!((event.status.as_str(), event.attempts), ("retry", 1));
    assert!(event.last_error.unwrap().contains("crmsync_id"));
    app.sim().set_faults(FaultConfig::default());
    app.execute("UPDATE crmsync.webhook_inbox SET next_attempt_at = now()")
        .await;
    let report = apply_pending_inbox(&app.applier, 100).await.expect("re-apply");
    assert_eq!(report.dead, 0, "{report:?}");
    assert_eq!(app.count("contacts").await, 1, "one local contact");
    let local_id = app.contacts().await[0].id.to_string();
    assert_eq!(
        app.sim_record("contacts", &contact_hs).await.prop("crmsync_id"),
        Some(local_id.as_str())
    );
    assert_eq!(
        app.count("crmsync.webhook_inbox WHERE status IN ('applied', 'skipped')")
            .await,
        1
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Field policies and origin

#[tokio::test]
async fn a_deal_created_in_hubspot_keeps_its_salespeoples_amount_name_and_close_date() {
    let app = WebhookApp::spawn().await;
    let map = app.pipeline_map().await;
    let deal_hs = app.sim_create_deal(&map.pipeline_id, &map.stage_ids["qualified"]).await;
    app.deliver(&json!([user_event("deal.creation", &deal_hs, now_ms(), json!({}))]))
        .await;
    let deal = app.deal_by_hubspot_id(&deal_hs).await.expect("created locally");
    assert_eq!(
        app.count(&format!(
            "crmsync.record_origins WHERE entity_id = '{}' AND origin = 'hubspot'",
            deal.id
        ))
        .await,
        1
    );
    // A salesperson edits the fields a match-created deal's pipeline owns.
    let edits = [
        ("amount", "125000"),
        ("dealname", "Renamed by sales"),
        ("closedate", "2027-01-15"),
    ];
    let properties: serde_json::Map<String, Value> = edits.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    app.sim_act(
        "edit",
        json!({"objectType": "deals", "id": deal_hs, "properties": properties}),
    )
    .await;
    let later = now_ms() + 1_000;
    let events: Vec<Value> = edits
        .iter()
        .map(|(property, value)| property_change("deal.propertyChange", &deal_hs, later, property, value))
        .collect();
    app.deliver(&Value::Array(events)).await;
    let local = app.deal(deal.id).await;
    assert_eq!(
        (
            local.deal_value.as_deref(),
            local.deal_name.as_str(),
            local.expected_close_date.as_deref()
        ),
        (Some("125000.00"), "Renamed by sales", Some("2027-01-15"))
    );
    assert_eq!(app.count("crmsync.sync_conflicts").await, 0, "nothing was dropped");
    // Never reverted: the next sync has nothing to send, and HubSpot keeps the salesperson's values.
    let writes_before = app.write_requests().await;
    app.drain().await;
    assert_eq!(app.write_requests().await, writes_before);
    let in_hubspot = app.sim_deal(&deal_hs).await;
    assert_eq!(in_hubspot.prop("dealname"), Some("Renamed by sales"));
    assert_eq!(in_hubspot.prop("amount"), Some("125000"));
}

#[tokio::test]
async fn an_override_file_changes_which_side_wins() {
    let app = WebhookApp::spawn_with(Options {
        policy_override: Some("[deal]\namount = \"two_way\"\ndescription = \"ignore\"\n"),
        ..Options::default()
    })
    .await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, deal_hs) = app.synced_deal().await;
    let description_before = app.deal(deal).await.description;
    app.sim_act(
        "edit",
        json!({"objectType": "deals", "id": deal_hs, "properties": {"amount": "777"}}),
    )
    .await;
    let later = now_ms() + 1_000;
    app.deliver(&json!([
        property_change("deal.propertyChange", &deal_hs, later, "amount", "777"),
        property_change("deal.propertyChange", &deal_hs, later, "description", "ignored notes"),
    ]))
    .await;
    let local = app.deal(deal).await;
    assert_eq!(
        local.deal_value.as_deref(),
        Some("777.00"),
        "two_way by the override: applied, not reverted"
    );
    assert_eq!(local.description, description_before, "ignored by the override");
    assert_eq!(app.count("crmsync.sync_conflicts").await, 0);
    assert_eq!(
        app.inbox_outcomes().await,
        vec![
            ("applied".to_owned(), Some("applied".to_owned()), 1),
            ("skipped".to_owned(), Some("ignored".to_owned()), 1),
        ]
    );
    let writes_before = app.write_requests().await;
    app.drain().await;
    assert_eq!(app.write_requests().await, writes_before, "the amount is not sent back");
}

#[tokio::test]
async fn a_local_edit_of_a_two_way_field_reaches_hubspot_and_an_older_hubspot_change_does_not_undo_it() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, deal_hs) = app.synced_deal().await;
    let before_edit = now_ms() - 5_000;
    app.execute(&format!("UPDATE deals SET priority = 'low' WHERE id = '{deal}'"))
        .await;
    app.execute(&format!(
        "INSERT INTO sync_queue (entity_type, entity_id, operation) VALUES ('deal', '{deal}', 'update')"
    ))
    .await;
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        &deal_hs,
        before_edit,
        "hs_priority",
        "high"
    )]))
    .await;
    app.drain().await;
    assert_eq!(app.deal(deal).await.priority, "low");
    assert_eq!(
        app.sim_deal(&deal_hs).await.prop("hs_priority"),
        Some("low"),
        "the newer local edit is sent"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Pipelines

#[tokio::test]
async fn a_deal_created_in_another_pipeline_is_recorded_and_not_imported() {
    let app = WebhookApp::spawn().await;
    let deal_hs = app.sim_create_deal("default", "qualifiedtobuy").await;
    app.deliver(&json!([user_event("deal.creation", &deal_hs, now_ms(), json!({}))]))
        .await;
    assert_eq!(app.count("deals").await, 0);
    assert_eq!(
        app.inbox_outcomes().await,
        vec![("skipped".to_owned(), Some("other_pipeline".to_owned()), 1)]
    );
}

#[tokio::test]
async fn a_deal_created_in_our_pipeline_imports_with_its_mapped_stage() {
    let app = WebhookApp::spawn().await;
    let map = app.pipeline_map().await;
    let deal_hs = app.sim_create_deal(&map.pipeline_id, &map.stage_ids["qualified"]).await;
    app.deliver(&json!([user_event("deal.creation", &deal_hs, now_ms(), json!({}))]))
        .await;
    assert_eq!(
        app.deal_by_hubspot_id(&deal_hs).await.map(|deal| deal.stage).as_deref(),
        Some("qualified")
    );
}

#[tokio::test]
async fn a_deal_created_in_our_pipeline_with_a_stage_the_map_lacks_is_an_error_not_new_match() {
    let app = WebhookApp::spawn().await;
    let mut map = app.pipeline_map().await;
    let unknown = map.stage_ids.remove("negotiation").unwrap();
    let deal_hs = app.sim_create_deal(&map.pipeline_id, &unknown).await;
    // The local map is stale (a stage added in HubSpot since hubspot-setup ran).
    app.sync_store().save_pipeline_map(&map).await.unwrap();
    app.deliver(&json!([user_event("deal.creation", &deal_hs, now_ms(), json!({}))]))
        .await;
    assert_eq!(app.count("deals").await, 0, "not imported as new_match");
    let event = app.inbox_event().await;
    assert_eq!(
        (event.status.as_str(), event.outcome.as_deref()),
        ("dead", Some("unknown_stage"))
    );
    assert!(event.last_error.unwrap().contains(&unknown));
}

#[tokio::test]
async fn a_stage_change_to_a_stage_the_map_lacks_is_an_error_and_leaves_the_stage() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, deal_hs) = app.synced_deal().await;
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        &deal_hs,
        now_ms(),
        "dealstage",
        "999999"
    )]))
    .await;
    assert_eq!(app.deal(deal).await.stage, "new_match");
    let event = app.inbox_event().await;
    assert_eq!(
        (event.status.as_str(), event.outcome.as_deref()),
        ("dead", Some("unknown_stage"))
    );
    assert!(event.last_error.unwrap().contains("999999"));
}

#[tokio::test]
async fn a_deal_moved_to_another_pipeline_is_recorded_and_its_stages_there_are_not_applied() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let (deal, deal_hs) = app.synced_deal().await;
    let t = now_ms();
    app.deliver(&json!([
        property_change("deal.propertyChange", &deal_hs, t, "dealstage", "qualifiedtobuy"),
        property_change("deal.propertyChange", &deal_hs, t, "pipeline", "default"),
    ]))
    .await;
    app.deliver(&json!([property_change(
        "deal.propertyChange",
        &deal_hs,
        t + 1_000,
        "dealstage",
        "closedwon"
    )]))
    .await;
    assert_eq!(app.deal(deal).await.stage, "new_match");
    assert_eq!(
        app.inbox_outcomes().await,
        vec![
            ("skipped".to_owned(), Some("left_pipeline".to_owned()), 1),
            ("skipped".to_owned(), Some("other_pipeline".to_owned()), 2),
        ]
    );
    assert_eq!(
        app.count("sync_queue WHERE status = 'pending'").await,
        0,
        "not re-asserted: the deal is not pulled back into our pipeline"
    );
    // Moved back: its stages apply again.
    let map = app.pipeline_map().await;
    app.deliver(&json!([
        property_change("deal.propertyChange", &deal_hs, t + 2_000, "pipeline", &map.pipeline_id),
        property_change(
            "deal.propertyChange",
            &deal_hs,
            t + 2_001,
            "dealstage",
            &map.stage_ids["qualified"]
        ),
    ]))
    .await;
    assert_eq!(app.deal(deal).await.stage, "qualified");
}

// ---------------------------------------------------------------------------------------------------------------
// Dead events are visible

#[tokio::test]
async fn inbox_status_counts_show_pending_waiting_and_dead_events() {
    let app = WebhookApp::spawn().await;
    let client = app.pool().get().await.unwrap();
    let counts = crmsync_db::inbox::status_counts(&client).await.unwrap();
    assert_eq!((counts.pending, counts.retry, counts.dead), (0, 0, 0));
    assert!(counts.oldest_open_received_at.is_none());
    let t = now_ms();
    app.deliver(&json!([
        property_change("deal.propertyChange", "424242", t, "description", "waits"),
        property_change("deal.propertyChange", "424243", t, "description", "dies"),
    ]))
    .await;
    app.execute(
        "UPDATE crmsync.webhook_inbox SET status = 'dead' WHERE payload->>'propertyValue' = 'dies';
         INSERT INTO crmsync.webhook_inbox (portal_id, subscription_id, event_id, occurred_at, event_type, payload)
         VALUES (1, 1, 1, 1, 'deal.creation', '{}')",
    )
    .await;
    let counts = crmsync_db::inbox::status_counts(&client).await.unwrap();
    assert_eq!((counts.pending, counts.retry, counts.dead), (1, 1, 1));
    assert!(counts.oldest_open_received_at.is_some());
}

// ---------------------------------------------------------------------------------------------------------------
// End to end with the simulator's webhooks

#[tokio::test]
async fn a_deal_moved_to_closed_won_in_hubspot_is_closed_won_locally_within_one_delivery() {
    let app = WebhookApp::spawn().await;
    app.ingest_generated(3, 1).await;
    app.drain().await;
    app.subscribe();
    let (deal, deal_hs) = app.synced_deal().await;
    let closed_won = app.stage_id("closed_won").await;
    app.sim_act("move-deal-stage", json!({"dealId": deal_hs, "stage": closed_won}))
        .await;
    app.wait_for_webhooks().await;
    let deliveries = app.sim().webhooks_json();
    assert_eq!(deliveries["deliveredBatches"], 1, "one delivery: {deliveries}");
    let won = app.deal(deal).await;
    assert_eq!((won.stage.as_str(), won.closed_at.is_some()), ("closed_won", true));
    assert_eq!(
        app.count(&format!(
            "activities WHERE deal_id = '{deal}' AND activity_type = 'stage_change'"
        ))
        .await,
        1
    );
    // Nothing goes back to HubSpot for it.
    let writes = app.write_requests().await;
    let report = app.drain().await;
    assert_eq!(report.claimed, 0, "{report:?}");
    assert_eq!(app.write_requests().await, writes);
}
