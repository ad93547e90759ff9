//! The outbound sync against real parts: a fresh PostgreSQL database per test and the HubSpot simulator on
//! port 0, over real HTTP.

use std::collections::HashMap;
use std::ops::Deref;
use std::time::Duration;

use crmsync_domain::circuit::CircuitSettings;
use crmsync_domain::sync::RetryPolicy;
use crmsync_hubspot::{CreateInput, ObjectType};
use crmsync_hubspot_sim::{FaultConfig, FaultKind, SimConfig};
use crmsync_queue::SqsRetryQueue;
use crmsync_sync::{OutboundSync, SyncReport, SyncSettings};
use crmsync_testkit::{Deal, QueueRow, TestApp, client_for, quick_retries};
use serde_json::json;

type Sync = OutboundSync<SqsRetryQueue>;

/// The app with the outbound sync under test.
struct SyncApp {
    app: TestApp,
    sync: Sync,
}

impl Deref for SyncApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl SyncApp {
    async fn spawn() -> Self {
        Self::around(TestApp::with_hubspot().await, quick_retries())
    }

    async fn spawn_with(sim_config: SimConfig, requests: u32, window: Duration, settings: SyncSettings) -> Self {
        let app = TestApp::builder()
            .sim(sim_config)
            .client_limit(requests, window)
            .start()
            .await;
        Self::around(app, settings)
    }

    /// The sync under test shares the client (and its limiter) that set the pipeline up.
    fn around(app: TestApp, settings: SyncSettings) -> Self {
        let sync = app.outbound_sync(app.hubspot(), None, settings);
        Self { app, sync }
    }

    /// Another sync over the same database, e.g. with a client that does not retry.
    fn sync_with(&self, client: crmsync_hubspot::HubSpotClient, settings: SyncSettings) -> Sync {
        self.outbound_sync(client, None, settings)
    }

    async fn drain(&self) -> SyncReport {
        self.sync.drain("cli", Duration::from_secs(120)).await.expect("drain")
    }

    /// Drains until nothing is due or waiting, sleeping between rounds so backoffs expire.
    async fn drain_until_settled(&self, sync: &Sync) -> Vec<SyncReport> {
        let mut reports = Vec::new();
        for _ in 0..200 {
            reports.push(sync.drain("cli", Duration::from_secs(120)).await.expect("drain"));
            if self.count("sync_queue WHERE status NOT IN ('completed', 'dead')").await == 0 {
                return reports;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the queue did not settle: {reports:?}");
    }

    /// Write requests (POST, PATCH, PUT) the simulator answered, whatever their outcome.
    async fn write_requests(&self) -> u64 {
        self.sim_requests_by_endpoint()
            .await
            .into_iter()
            .filter(|(endpoint, _)| {
                endpoint.starts_with("POST") || endpoint.starts_with("PATCH") || endpoint.starts_with("PUT")
            })
            .map(|(_, n)| n)
            .sum()
    }
}

#[tokio::test]
async fn a_drain_creates_companies_then_deals_with_primary_associations_and_writes_back_ids() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(30, 6).await;
    let report = app.drain().await;
    assert_eq!(
        (report.companies_created, report.deals_created, report.associations),
        (6, 30, 30),
        "{report:?}"
    );
    assert_eq!((report.failed, report.dead, report.deferred), (0, 0, 0));

    let companies = app.sim_by_local_id("companies").await;
    let deals = app.sim_by_local_id("deals").await;
    assert_eq!((companies.len(), deals.len()), (6, 30));
    for deal in app.deals().await {
        let company = app
            .company(deal.company_id.expect("a deal of a match has a company"))
            .await;
        let remote = &deals[&deal.id.to_string()];
        assert_eq!(
            remote["id"].as_str(),
            deal.hubspot_deal_id.as_deref(),
            "local row holds HubSpot's deal id"
        );
        assert_eq!(deal.hubspot_sync_status, "synced");
        assert!(deal.last_hubspot_sync.is_some());
        let company_hubspot_id = company.hubspot_company_id.expect("company synced");
        assert_eq!(
            remote["associations"]["companies"],
            json!([company_hubspot_id]),
            "associated with its own company"
        );
        assert_eq!(
            remote["properties"]["closedate"].as_str().map(|d| &d[..10]),
            Some("2027-05-01")
        );
        let amount: rust_decimal::Decimal = remote["properties"]["amount"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            amount,
            deal.deal_value
                .expect("deal value")
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        );
    }
    assert_eq!(app.count("sync_queue WHERE status <> 'completed'").await, 0);
    assert_eq!(app.count("crmsync.sync_runs WHERE status = 'succeeded'").await, 1);
    assert!(app.count("crmsync.echo_ledger WHERE property = 'dealname'").await >= 30);
}

#[tokio::test]
async fn a_second_run_sends_nothing_and_creates_nothing() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(10, 3).await;
    app.drain().await;
    let writes = app.write_requests().await;
    // The same rows queued again (as a redelivered change would) find nothing changed.
    app.execute("INSERT INTO sync_queue (entity_type, entity_id, operation) SELECT 'deal', id, 'update' FROM deals")
        .await;
    let report = app.drain().await;
    assert_eq!(report.unchanged, 10, "{report:?}");
    assert_eq!(report.deals_updated + report.deals_created, 0);
    assert_eq!(app.write_requests().await, writes, "no write request reached HubSpot");
    assert_eq!(app.sim_objects("deals").await.len(), 10);
}

#[tokio::test]
async fn several_rows_for_one_deal_become_one_write_of_only_the_changed_properties() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(3, 1).await;
    app.drain().await;
    let ledger_before = app.count("crmsync.echo_ledger").await;
    app.execute(
        "UPDATE deals SET deal_value = 4242 WHERE deal_name LIKE 'Opportunity 1 %';
         INSERT INTO sync_queue (entity_type, entity_id, operation)
         SELECT 'deal', id, 'update' FROM deals, generate_series(1, 3) WHERE deal_name LIKE 'Opportunity 1 %';",
    )
    .await;
    let report = app.drain().await;
    assert_eq!(
        (report.claimed, report.deals_updated),
        (3, 1),
        "three rows, one write: {report:?}"
    );
    let written: Vec<String> = app
        .rows(&format!(
            "SELECT property FROM crmsync.echo_ledger ORDER BY id OFFSET {ledger_before}"
        ))
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(written, vec!["amount"], "only the changed property was sent");
    let deals = app.sim_records("deals").await;
    assert!(deals.iter().any(|d| d.prop("amount") == Some("4242")));
}

#[tokio::test]
async fn a_deal_queued_alone_brings_its_company_into_hubspot_first() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(2, 1).await;
    app.execute("DELETE FROM sync_queue WHERE entity_type = 'company'")
        .await;
    let report = app.drain().await;
    assert_eq!(
        (report.companies_created, report.deals_created, report.deferred),
        (1, 2, 0),
        "{report:?}"
    );
    let company_id = app.sim_objects("companies").await[0]["id"].as_str().unwrap().to_owned();
    for deal in app.sim_objects("deals").await {
        assert_eq!(deal["associations"]["companies"], json!([company_id]));
    }
}

#[tokio::test]
async fn a_deal_waits_without_failing_while_its_company_cannot_be_written() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    // HubSpot answers every write with 423 Locked for a while: the company fails (retryable), the deal waits.
    app.sim().set_faults(FaultConfig {
        next: vec![FaultKind::Locked; 60],
        ..FaultConfig::default()
    });
    let report = app.drain().await;
    assert_eq!(report.deals_created, 0);
    assert_eq!(report.deferred, 1, "{report:?}");
    assert_eq!(
        app.count("sync_queue WHERE entity_type = 'deal' AND status = 'pending' AND attempts = 0")
            .await,
        1
    );
    assert_eq!(
        app.count("sync_queue WHERE entity_type = 'company' AND status = 'failed'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_dry_run_reports_per_entity_type_and_sends_nothing() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(5, 2).await;
    let before = app.sim().total_requests();
    let report = app.sync.dry_run().await.expect("dry run");
    assert_eq!(report["company"]["create"], 2);
    assert_eq!(report["deal"]["create"], 5);
    assert_eq!(app.sim().total_requests(), before, "no request reached HubSpot");
    assert_eq!(
        app.count("sync_queue WHERE status = 'pending'").await,
        7,
        "nothing claimed"
    );
}

#[tokio::test]
async fn a_rejected_input_fails_only_itself_and_its_neighbours_sync() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(5, 1).await;
    // One deal points at a stage id HubSpot does not have: a per-input validation error in a 207.
    app.execute(
        "UPDATE crmsync.settings SET value = jsonb_set(value, '{stage_ids,qualified}', '\"999999\"');
         UPDATE deals SET stage = 'qualified' WHERE deal_name LIKE 'Opportunity 2 %';",
    )
    .await;
    let report = app.drain().await;
    assert_eq!((report.deals_created, report.dead), (4, 1), "{report:?}");
    let dead = app.select_one::<QueueRow>("WHERE status = 'dead'", &[]).await;
    let dead_error = dead.last_error.expect("a dead row says why");
    assert!(dead_error.starts_with("permanent:"), "{dead_error}");
    assert_eq!(app.sim_objects("deals").await.len(), 4);
}

#[tokio::test]
async fn the_rate_limit_holds_with_no_429_on_2000_deals() {
    // 100 requests per 10 s on both sides, as HubSpot's Free/Starter private apps; the batch APIs need ~35.
    let app = SyncApp::spawn_with(SimConfig::default(), 100, Duration::from_secs(10), quick_retries()).await;
    app.ingest_generated(2_000, 400).await;
    let report = app.drain().await;
    assert_eq!(
        (report.companies_created, report.deals_created),
        (400, 2_000),
        "{report:?}"
    );
    assert_eq!(app.sim().outcome_count("429"), 0);
    assert_eq!(app.sync.hubspot().stats().responses_429, 0);
}

#[tokio::test]
async fn the_limiter_paces_a_run_that_needs_more_than_one_window() {
    // 5 requests per second: 300 deals over 300 companies need 3 + 3 upserts + 1 association call + setup reads.
    let sim_config = SimConfig {
        requests_per_window: 5,
        rate_window: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let app = SyncApp::spawn_with(sim_config, 5, Duration::from_secs(1), quick_retries()).await;
    app.ingest_generated(300, 300).await;
    let report = app.drain().await;
    assert_eq!(
        (report.companies_created, report.deals_created),
        (300, 300),
        "{report:?}"
    );
    assert_eq!(
        app.sim().outcome_count("429"),
        0,
        "the client never exceeded the window"
    );
}

#[tokio::test]
async fn retryable_faults_on_a_fifth_of_calls_converge_with_no_duplicate_and_nothing_lost() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(300, 40).await;
    app.sim().set_faults(FaultConfig {
        error_rate: 0.2,
        lock_rate: 0.05,
        ..FaultConfig::default()
    });
    // No retries inside the client, so the queue's own retry path does the work.
    let sync = app.sync_with(app.hubspot_without_retries(), quick_retries());
    let reports = app.drain_until_settled(&sync).await;
    assert!(
        reports.iter().map(|r| r.failed).sum::<u64>() > 0,
        "faults were injected and retried"
    );
    assert_eq!(app.sim_by_local_id("companies").await.len(), 40);
    assert_eq!(app.sim_by_local_id("deals").await.len(), 300);
    assert_eq!(
        app.count("deals WHERE hubspot_deal_id IS NULL").await,
        0,
        "nothing lost"
    );
    let unfinished: Vec<QueueRow> = app.select("WHERE status <> 'completed'", &[]).await;
    assert!(unfinished.is_empty(), "{unfinished:#?}");
}

#[tokio::test]
async fn a_connection_dropped_after_the_write_was_applied_creates_no_duplicate() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(50, 5).await;
    // The first drain's company upsert goes through and its deal create is applied but never answered; after that,
    // half of all writes are.
    app.sim().set_faults(FaultConfig {
        drop_after_write_rate: 0.5,
        next: vec![FaultKind::Slow, FaultKind::DropAfterWrite],
        slow_delay_ms: 1,
        ..FaultConfig::default()
    });
    let sync = app.sync_with(app.hubspot_without_retries(), quick_retries());
    app.drain_until_settled(&sync).await;
    assert_eq!(
        app.sim()
            .request_count("POST /crm/objects/{version}/{object_type}/batch/create", "dropped"),
        1,
        "the deals were created and the answer dropped"
    );
    assert_eq!(app.sim_by_local_id("companies").await.len(), 5);
    assert_eq!(
        app.sim_by_local_id("deals").await.len(),
        50,
        "their retry upserted them"
    );
    app.assert_converged(5, 50).await;
}

#[tokio::test]
async fn a_first_create_that_meets_the_record_an_unrecorded_attempt_made_upserts_it_with_its_association() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(3, 1).await;
    let deal = app.select::<Deal>("ORDER BY id LIMIT 1", &[]).await.remove(0);
    let pipeline = app.pipeline_map().await;
    let stage = pipeline.stage_ids.values().next().expect("a stage").clone();
    // An earlier run created this deal in HubSpot and died before recording its id (and its attempt).
    let earlier = app
        .hubspot()
        .batch_create(
            ObjectType::Deals,
            &[CreateInput {
                properties: [
                    ("crmsync_id".to_owned(), deal.id.to_string()),
                    ("dealname".to_owned(), "Earlier".to_owned()),
                    ("pipeline".to_owned(), pipeline.pipeline_id.clone()),
                    ("dealstage".to_owned(), stage),
                ]
                .into_iter()
                .collect(),
                associations: Vec::new(),
            }],
        )
        .await
        .expect("create")
        .into_results()
        .remove(0)
        .expect("created");
    let report = app.drain().await;
    assert_eq!(
        (report.deals_created, report.deals_updated, report.failed),
        (2, 1, 0),
        "{report:?}"
    );
    let deals = app.sim_by_local_id("deals").await;
    assert_eq!(deals.len(), 3, "no duplicate");
    assert_eq!(deals[&deal.id.to_string()]["id"], json!(earlier.id));
    let company_id = app.sim_objects("companies").await[0]["id"].as_str().unwrap().to_owned();
    for deal in app.sim_objects("deals").await {
        assert_eq!(deal["associations"]["companies"], json!([company_id]), "{deal}");
    }
    app.assert_converged(1, 3).await;
}

#[tokio::test]
async fn two_concurrent_runs_process_each_row_once() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(600, 60).await;
    let small_batches = SyncSettings {
        batch_size: 50,
        ..quick_retries()
    };
    let first = app.sync_with(
        client_for(app.sim(), 1_000, Duration::from_secs(10)),
        small_batches.clone(),
    );
    let second = app.sync_with(client_for(app.sim(), 1_000, Duration::from_secs(10)), small_batches);
    let (a, b) = tokio::join!(
        first.drain("cli", Duration::from_secs(120)),
        second.drain("cli", Duration::from_secs(120))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.claimed > 0 && b.claimed > 0, "both runs took work: {a:?} {b:?}");
    assert_eq!(a.claimed + b.claimed, 660, "every row claimed exactly once");
    assert_eq!(a.deals_created + b.deals_created, 600);
    assert_eq!(app.sim_by_local_id("deals").await.len(), 600);
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_which_recovers_a_crashed_run() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(4, 1).await;
    // A run that claimed everything and died: its lease is in the past.
    app.execute("UPDATE sync_queue SET status = 'in_progress', locked_until = now() - interval '1 second', locked_by = 'dead-run'").await;
    let report = app.drain().await;
    assert_eq!((report.claimed, report.deals_created), (5, 4), "{report:?}");
    // A live lease is left alone.
    app.execute("UPDATE sync_queue SET status = 'in_progress', locked_until = now() + interval '1 hour'")
        .await;
    assert_eq!(app.drain().await.claimed, 0);
}

#[tokio::test]
async fn contacts_and_engagements_reach_hubspot_associated_with_their_records() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.execute(
        "INSERT INTO contacts (id, company_id, full_name, email, job_title)
           SELECT '00000000-0000-0000-0000-00000000c0a1', id, 'Grace Hopper', 'grace@navy.example', 'Admiral' FROM companies;
         INSERT INTO activities (id, activity_type, subject, body, deal_id, contact_id)
           SELECT '00000000-0000-0000-0000-00000000ac01', 'note', 'Capability statement', 'Sent the PDF', d.id,
                  '00000000-0000-0000-0000-00000000c0a1' FROM deals d;
         INSERT INTO activities (id, activity_type, subject, company_id, direction, duration_seconds)
           SELECT '00000000-0000-0000-0000-00000000ac02', 'call', 'Intro call', id, 'outbound', 300 FROM companies;
         INSERT INTO sync_queue (entity_type, entity_id, operation) VALUES
           ('contact', '00000000-0000-0000-0000-00000000c0a1', 'create'),
           ('activity', '00000000-0000-0000-0000-00000000ac01', 'create'),
           ('activity', '00000000-0000-0000-0000-00000000ac02', 'create');",
    )
    .await;
    let report = app.drain().await;
    assert_eq!(
        (
            report.contacts_created,
            report.engagements_created,
            report.deals_created
        ),
        (1, 2, 1),
        "{report:?}"
    );
    let company_id = app.sim_objects("companies").await[0]["id"].as_str().unwrap().to_owned();
    let deal_id = app.sim_objects("deals").await[0]["id"].as_str().unwrap().to_owned();
    let contacts = app.sim_objects("contacts").await;
    assert_eq!(contacts[0]["properties"]["firstname"], "Grace");
    assert_eq!(contacts[0]["associations"]["companies"], json!([company_id]));
    let contact_id = contacts[0]["id"].as_str().unwrap().to_owned();
    let notes = app.sim_objects("notes").await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["associations"]["deals"], json!([deal_id]));
    assert_eq!(notes[0]["associations"]["contacts"], json!([contact_id]));
    let calls = app.sim_objects("calls").await;
    assert_eq!(calls[0]["properties"]["hs_call_duration"], "300000");
    assert_eq!(calls[0]["associations"]["companies"], json!([company_id]));
    assert_eq!(app.count("activities WHERE hubspot_engagement_id IS NOT NULL").await, 2);
    assert_eq!(app.count("sync_queue WHERE status <> 'completed'").await, 0);
}

#[tokio::test]
async fn a_contact_whose_email_hubspot_already_has_is_linked_to_that_record() {
    let app = SyncApp::spawn().await;
    let created = app
        .sim_act(
            "create-contact",
            json!({ "properties": { "email": "ada@example.com", "firstname": "Ada" } }),
        )
        .await;
    let existing_id = created["id"].as_str().expect("created contact id").to_owned();
    app.execute(
        "INSERT INTO contacts (id, full_name, email) VALUES ('00000000-0000-0000-0000-00000000c0a2', 'Ada Lovelace', 'ada@example.com');
         INSERT INTO sync_queue (entity_type, entity_id, operation) VALUES ('contact', '00000000-0000-0000-0000-00000000c0a2', 'create');",
    )
    .await;
    let report = app.drain().await;
    assert_eq!(
        (report.contacts_updated, report.failed, report.dead),
        (1, 0, 0),
        "{report:?}"
    );
    let contacts = app.sim_records("contacts").await;
    assert_eq!(contacts.len(), 1, "no duplicate contact");
    assert_eq!(
        contacts[0].prop("crmsync_id"),
        Some("00000000-0000-0000-0000-00000000c0a2")
    );
    let contacts = app.contacts().await;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].hubspot_contact_id, Some(existing_id));
}

#[tokio::test]
async fn an_engagement_create_whose_answer_was_lost_is_found_not_duplicated() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    app.execute(
        "INSERT INTO activities (id, activity_type, subject, deal_id)
           SELECT '00000000-0000-0000-0000-00000000ac03', 'note', 'Debrief', id FROM deals;
         INSERT INTO sync_queue (entity_type, entity_id, operation) VALUES ('activity', '00000000-0000-0000-0000-00000000ac03', 'create');",
    )
    .await;
    // The create is applied, then the connection drops before any answer: the client cannot know it worked.
    app.sim().set_faults(FaultConfig {
        next: vec![FaultKind::DropAfterWrite],
        ..FaultConfig::default()
    });
    let sync = app.sync_with(app.hubspot_without_retries(), quick_retries());
    let reports = app.drain_until_settled(&sync).await;
    assert_eq!(reports[0].failed, 1, "{reports:?}");
    assert_eq!(
        app.sim_objects("notes").await.len(),
        1,
        "the retry found the note instead of creating another"
    );
    assert_eq!(app.count("activities WHERE hubspot_engagement_id IS NOT NULL").await, 1);
}

#[tokio::test]
async fn a_drain_applies_waiting_webhook_events_before_it_sends_anything() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let hubspot_deal_id = app.deals().await[0].hubspot_deal_id.clone().expect("synced");
    let won_stage = app.stage_id("closed_won").await;
    // A salesperson's stage move, stored by the webhook route but not applied yet (e.g. the process stopped).
    let occurred_at = chrono::Utc::now().timestamp_millis();
    let event = json!({ "eventId": 1, "subscriptionId": 2, "portalId": 62515, "appId": 54321, "occurredAt": occurred_at,
                        "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": hubspot_deal_id.parse::<i64>().unwrap(),
                        "propertyName": "dealstage", "propertyValue": won_stage, "changeSource": "CRM_UI" });
    app.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO crmsync.webhook_inbox (portal_id, subscription_id, event_id, occurred_at, event_type, object_type, object_id, payload)
             VALUES (62515, 2, 1, $1, 'deal.propertyChange', 'deal', $2, $3)",
            &[&occurred_at, &hubspot_deal_id, &event],
        )
        .await
        .unwrap();
    let applier = app.applier(Some("54321".into()));
    let sync = app
        .sync_with(client_for(app.sim(), 1_000, Duration::from_secs(10)), quick_retries())
        .with_inbox(applier);
    let writes = app.write_requests().await;
    sync.drain("cli", Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        app.count("deals WHERE stage = 'closed_won' AND closed_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        app.write_requests().await,
        writes,
        "HubSpot's own change is not sent back"
    );
}

#[tokio::test]
async fn a_takeover_counts_the_crashed_attempt_so_a_row_that_crashes_every_run_ends_dead() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(2, 2).await;
    // One deal's row has been taken over 7 times already (max 8): the run holding it died each time.
    app.execute(
        "UPDATE sync_queue SET status = 'in_progress', locked_until = now() - interval '1 second', locked_by = 'dead-run';
         UPDATE sync_queue SET attempts = 7
         WHERE entity_type = 'deal' AND entity_id = (SELECT id FROM deals WHERE deal_name LIKE 'Opportunity 0 %');",
    )
    .await;
    let report = app.drain().await;
    assert_eq!((report.deals_created, report.dead), (1, 1), "{report:?}");
    let dead = app.select_one::<QueueRow>("WHERE status = 'dead'", &[]).await;
    assert_eq!(dead.attempts, 8, "the eighth crash was the last attempt");
    assert!(
        dead.last_error
            .expect("last error")
            .contains("stopped before they finished")
    );
    // The others were taken over once: that crashed attempt counts.
    assert_eq!(
        app.count("sync_queue WHERE status = 'completed' AND attempts = 1")
            .await,
        3
    );
}

#[tokio::test]
async fn an_engagement_a_crashed_run_created_is_found_not_duplicated() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    app.execute(
        "INSERT INTO activities (id, activity_type, subject, deal_id)
           SELECT '00000000-0000-0000-0000-00000000ac05', 'note', 'Site visit', id FROM deals;
         INSERT INTO sync_queue (entity_type, entity_id, operation) VALUES ('activity', '00000000-0000-0000-0000-00000000ac05', 'create');",
    )
    .await;
    // A run created the note, then was killed before its write-back: the row is in progress, attempts 0.
    let created = app
        .sync
        .hubspot()
        .batch_create(
            crmsync_hubspot::ObjectType::Notes,
            &[crmsync_hubspot::CreateInput {
                properties: [
                    (
                        "crmsync_id".to_owned(),
                        "00000000-0000-0000-0000-00000000ac05".to_owned(),
                    ),
                    ("hs_note_body".to_owned(), "Site visit".to_owned()),
                    ("hs_timestamp".to_owned(), "2026-01-01T00:00:00Z".to_owned()),
                ]
                .into_iter()
                .collect(),
                associations: vec![],
            }],
        )
        .await
        .expect("create")
        .into_results()
        .remove(0)
        .expect("created");
    app.execute(
        "UPDATE sync_queue SET status = 'in_progress', locked_until = now() - interval '1 second', locked_by = 'killed'
         WHERE entity_type = 'activity'",
    )
    .await;
    let report = app.drain().await;
    assert_eq!(report.engagements_created, 0, "{report:?}");
    assert_eq!(app.sim_objects("notes").await.len(), 1, "no second note");
    let activities = app.activities().await;
    assert_eq!(activities.len(), 1);
    assert_eq!(activities[0].hubspot_engagement_id, Some(created.id));
}

#[tokio::test]
async fn a_run_whose_lease_expired_cannot_overwrite_the_result_of_the_run_that_took_over() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(3, 3).await;
    let store = app.sync.store();
    let first = store.claim(100, Duration::from_secs(300), "run-a/1").await.unwrap();
    assert_eq!(first.len(), 6);
    app.execute("UPDATE sync_queue SET locked_until = now() - interval '1 second'")
        .await;
    let second = store.claim(100, Duration::from_secs(300), "run-b/1").await.unwrap();
    assert_eq!(second.len(), 6);
    assert!(second.iter().all(|i| i.taken_over && i.attempts == 1), "{second:?}");
    let ids: Vec<uuid::Uuid> = first.iter().map(|i| i.id).collect();

    // Run A comes back late: none of its write-backs change a row B holds.
    let lost = store.complete(&[], &ids, "run-a/1").await.unwrap();
    assert_eq!(lost.len(), 6);
    let decision = crmsync_domain::sync::RetryDecision::Dead { attempts: 1 };
    assert!(
        store
            .fail(&ids, "late", decision, false, "run-a/1")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.defer(&ids, "late", Duration::ZERO, "run-a/1").await.unwrap(), 0);
    assert_eq!(
        app.count("sync_queue WHERE status = 'in_progress' AND locked_by = 'run-b/1'")
            .await,
        6
    );
    // B's own write-back goes through.
    assert!(store.complete(&[], &ids, "run-b/1").await.unwrap().is_empty());
    assert_eq!(app.count("sync_queue WHERE status = 'completed'").await, 6);
}

#[tokio::test]
async fn concurrent_claims_never_split_one_entity_between_runs() {
    let app = SyncApp::spawn().await;
    // 60 deals with three queued rows each.
    app.execute(
        "INSERT INTO sync_queue (entity_type, entity_id, operation)
         SELECT 'deal', e.id, 'update' FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, 60)) e,
                generate_series(1, 3)",
    )
    .await;
    let mut owner: HashMap<uuid::Uuid, String> = HashMap::new();
    let mut rows = 0;
    for round in 0..30 {
        let claims: Vec<_> = (0..6)
            .map(|n| {
                let store = app.sync.store().clone();
                tokio::spawn(async move {
                    let lease = format!("run-{n}/{round}");
                    let items = store.claim(4, Duration::from_secs(300), &lease).await.unwrap();
                    (lease, items)
                })
            })
            .collect();
        let mut any = false;
        for claim in claims {
            let (lease, items) = claim.await.unwrap();
            any |= !items.is_empty();
            rows += items.len();
            let mut per_entity: HashMap<uuid::Uuid, usize> = HashMap::new();
            for item in &items {
                *per_entity.entry(item.entity_id).or_default() += 1;
            }
            for (entity, count) in per_entity {
                assert_eq!(count, 3, "a claim takes all of an entity's open rows");
                if let Some(other) = owner.insert(entity, lease.clone()) {
                    panic!("entity {entity} claimed by {other} and {lease}");
                }
            }
        }
        if !any {
            break;
        }
    }
    assert_eq!(rows, 180);
}

#[tokio::test]
async fn a_deal_is_associated_with_its_company_even_when_the_companys_own_update_fails() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    app.execute(
        "UPDATE companies SET name = 'Renamed Inc';
         UPDATE deals SET deal_value = 777;
         INSERT INTO sync_queue (entity_type, entity_id, operation) SELECT 'company', id, 'update' FROM companies;
         INSERT INTO sync_queue (entity_type, entity_id, operation) SELECT 'deal', id, 'update' FROM deals;",
    )
    .await;
    // The company's upsert (the round's first call) fails; the company is already in HubSpot, so its deal goes on.
    app.sim().set_faults(FaultConfig {
        next: vec![FaultKind::Locked],
        ..FaultConfig::default()
    });
    let sync = app.sync_with(app.hubspot_without_retries(), quick_retries());
    let report = sync.drain("cli", Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        (report.failed, report.deals_updated, report.deferred),
        (1, 1, 0),
        "{report:?}"
    );
    assert!(app.sim_records("deals").await[0].prop("amount") == Some("777"));
}

#[tokio::test]
async fn a_deal_whose_company_is_dead_fails_saying_why_instead_of_waiting_forever() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.execute(
        "UPDATE sync_queue SET status = 'dead', last_error = 'permanent: refused' WHERE entity_type = 'company'",
    )
    .await;
    let writes = app.write_requests().await;
    let report = app.drain().await;
    assert_eq!(
        (report.deals_created, report.dead, report.deferred),
        (0, 1, 0),
        "{report:?}"
    );
    assert_eq!(app.write_requests().await, writes, "the dead company is not sent");
    let dead = app
        .select_one::<QueueRow>("WHERE entity_type = 'deal' AND status = 'dead'", &[])
        .await;
    let company_id = app.deal(dead.entity_id).await.company_id.expect("company");
    let error = dead.last_error.expect("last error");
    assert!(
        error.contains(&format!("company {company_id} cannot be synced: its sync item is dead")),
        "{error}"
    );
}

#[tokio::test]
async fn a_deal_whose_company_was_deleted_fails_saying_why() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.execute(
        "UPDATE companies SET hubspot_sync_status = 'deleted';
         DELETE FROM sync_queue WHERE entity_type = 'company';",
    )
    .await;
    let report = app.drain().await;
    assert_eq!((report.deals_created, report.dead), (0, 1), "{report:?}");
    assert_eq!(
        app.count("sync_queue WHERE status = 'dead' AND last_error LIKE '%cannot be synced: its record is deleted'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_failing_company_is_not_resent_for_its_waiting_deal_before_its_own_backoff() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    // The company failed and backs off for an hour; its deal is due now.
    app.execute(
        "UPDATE sync_queue SET status = 'failed', attempts = 1, next_attempt_at = now() + interval '1 hour'
         WHERE entity_type = 'company'",
    )
    .await;
    let writes = app.write_requests().await;
    let report = app.drain().await;
    assert_eq!((report.deferred, report.companies_created), (1, 0), "{report:?}");
    assert_eq!(app.write_requests().await, writes);
    assert_eq!(
        app.count("sync_queue WHERE entity_type = 'deal' AND status = 'pending' AND attempts = 0")
            .await,
        1
    );
}

#[tokio::test]
async fn no_hubspot_batch_starts_after_the_deadline_and_unsent_rows_go_back_without_an_attempt() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(5, 5).await;
    // Every answer takes 1.5 s: the companies' batch starts within the 1 s budget and ends after it.
    app.sim().set_faults(FaultConfig {
        slow_rate: 1.0,
        slow_delay_ms: 1_500,
        ..FaultConfig::default()
    });
    let report = app.sync.drain("cli", Duration::from_secs(1)).await.unwrap();
    assert_eq!(report.deals_created, 0, "{report:?}");
    assert_eq!(report.postponed, 5, "{report:?}");
    assert!(app.sim_objects("deals").await.is_empty(), "no deal batch was started");
    assert_eq!(
        app.count(
            "sync_queue WHERE entity_type = 'deal' AND status = 'pending' AND attempts = 0
               AND next_attempt_at <= now() AND locked_by IS NULL"
        )
        .await,
        5
    );
    app.sim().set_faults(FaultConfig::default());
    let report = app.drain().await;
    assert_eq!(report.deals_created, 5, "{report:?}");
}

#[tokio::test]
async fn a_run_counts_only_its_own_hubspot_requests_and_closes_runs_that_never_finished() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(3, 1).await;
    app.execute(
        "INSERT INTO crmsync.sync_runs (trigger, started_at) VALUES ('schedule', now() - interval '2 hours');
         INSERT INTO crmsync.sync_runs (trigger) VALUES ('cli');",
    )
    .await;
    app.drain().await;
    app.execute("INSERT INTO sync_queue (entity_type, entity_id, operation) SELECT 'deal', id, 'update' FROM deals")
        .await;
    let before = app.sim().total_requests();
    let report = app.drain().await;
    assert_eq!(
        report.hubspot_requests,
        app.sim().total_requests() - before,
        "{report:?}"
    );
    assert_eq!(
        app.count("crmsync.sync_runs WHERE status = 'failed' AND error LIKE 'abandoned:%'")
            .await,
        1,
        "the two-hour-old run is closed"
    );
    assert_eq!(
        app.count("crmsync.sync_runs WHERE status = 'running'").await,
        1,
        "a recent run is left alone"
    );
}

#[tokio::test]
async fn a_dead_item_fails_its_record_a_redrive_makes_it_pending_and_the_next_sync_synced() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(2, 1).await;
    // One deal's stage maps to a stage id HubSpot does not have: a permanent, per-input error.
    let stage_id: String = app
        .scalar("SELECT value->'stage_ids'->>'qualified' FROM crmsync.settings WHERE key = 'hubspot_pipeline'")
        .await;
    app.execute(
        "UPDATE crmsync.settings SET value = jsonb_set(value, '{stage_ids,qualified}', '\"999999\"');
         UPDATE deals SET stage = 'qualified' WHERE deal_name LIKE 'Opportunity 1 %';",
    )
    .await;
    let report = app.drain().await;
    assert_eq!((report.deals_created, report.dead), (1, 1), "{report:?}");
    let dead = app.select_one::<QueueRow>("WHERE status = 'dead'", &[]).await;
    let statuses = |deals: Vec<crmsync_testkit::Deal>| {
        let mut statuses: Vec<(bool, String)> = deals
            .into_iter()
            .map(|deal| (deal.id == dead.entity_id, deal.hubspot_sync_status))
            .collect();
        statuses.sort();
        statuses
    };
    assert_eq!(
        statuses(app.deals().await),
        [(false, "synced".to_owned()), (true, "failed".to_owned())],
        "the dead item's deal failed, its neighbour synced"
    );
    assert_eq!(app.companies().await[0].hubspot_sync_status, "synced");

    // HubSpot's pipeline is fixed, and an operator redrives: pending again, then synced by the next run.
    app.execute(&format!(
        "UPDATE crmsync.settings SET value = jsonb_set(value, '{{stage_ids,qualified}}', '\"{stage_id}\"')"
    ))
    .await;
    assert_eq!(app.sync.store().redrive(10).await.unwrap(), [dead.id]);
    assert_eq!(app.deal(dead.entity_id).await.hubspot_sync_status, "pending");
    let report = app.drain().await;
    assert_eq!((report.deals_created, report.dead), (1, 0), "{report:?}");
    let deal = app.deal(dead.entity_id).await;
    assert_eq!(deal.hubspot_sync_status, "synced");
    assert!(deal.hubspot_deal_id.is_some() && deal.last_hubspot_sync.is_some());
    assert_eq!(app.sim_objects("deals").await.len(), 2);
}

#[tokio::test]
async fn a_record_stays_pending_when_its_item_dies_while_a_newer_change_waits_and_that_change_syncs_it() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.drain().await;
    let deal = app.deals().await.remove(0);
    assert_eq!(deal.hubspot_sync_status, "synced");
    // A local change (to a field HubSpot does not get) is queued and claimed by a run.
    let queue_change = format!(
        "UPDATE deals SET hubspot_sync_status = 'pending' WHERE id = '{id}';
         INSERT INTO sync_queue (entity_type, entity_id, operation) VALUES ('deal', '{id}', 'update');",
        id = deal.id
    );
    app.execute(&queue_change).await;
    let store = app.sync.store();
    let claimed = store.claim(10, Duration::from_secs(300), "run-a/1").await.unwrap();
    assert_eq!(claimed.len(), 1);
    // Another change is queued while the run holds the first, whose item then dies.
    app.execute(&queue_change).await;
    let dead = crmsync_domain::sync::RetryDecision::Dead { attempts: 1 };
    let ids = [claimed[0].id];
    assert_eq!(
        store
            .fail(&ids, "permanent: refused", dead, false, "run-a/1")
            .await
            .unwrap(),
        ids
    );
    assert_eq!(
        app.deal(deal.id).await.hubspot_sync_status,
        "pending",
        "the newer change is still to be sent"
    );

    // The newer change finds nothing HubSpot lacks: it completes, and the deal is in sync again.
    let writes = app.write_requests().await;
    let report = app.drain().await;
    assert_eq!((report.unchanged, report.dead), (1, 0), "{report:?}");
    assert_eq!(app.write_requests().await, writes, "nothing was sent");
    assert_eq!(app.deal(deal.id).await.hubspot_sync_status, "synced");
}

/// Settings whose circuit breaker never opens, for tests about the retry window alone.
fn without_circuit() -> SyncSettings {
    SyncSettings {
        circuit: CircuitSettings {
            failures_to_open: 1_000_000,
            ..CircuitSettings::default()
        },
        ..quick_retries()
    }
}

/// Settings whose circuit opens after `failures` retryable failures in a row, for a minute.
fn with_circuit(failures: u32) -> SyncSettings {
    SyncSettings {
        circuit: CircuitSettings {
            failures_to_open: failures,
            cooldown: Duration::from_secs(60),
        },
        ..quick_retries()
    }
}

impl SyncApp {
    /// Failed rows are due now: the clock moved past their backoff.
    async fn backoffs_pass(&self) {
        self.execute("UPDATE sync_queue SET next_attempt_at = now() WHERE status = 'failed'")
            .await;
    }

    /// The circuit's cool-down is over: the clock moved past it.
    async fn cooldown_passes(&self) {
        self.execute("UPDATE crmsync.sync_circuit SET open_until = now() WHERE state <> 'closed'")
            .await;
    }

    /// The items' first retryable failures were `interval` ago (an SQL interval): the outage lasted that long.
    async fn failing_since(&self, interval: &str) {
        self.execute(&format!(
            "UPDATE crmsync.sync_retry_state SET first_failed_at = now() - interval '{interval}'"
        ))
        .await;
    }

    async fn circuit_state(&self) -> String {
        self.scalar("SELECT state FROM crmsync.sync_circuit WHERE name = 'hubspot'")
            .await
    }

    /// HubSpot recovers: no faults, the circuit's cool-down over, the backoffs too; drains until settled.
    async fn recover_and_settle(&self, sync: &Sync) -> Vec<SyncReport> {
        self.sim().set_faults(FaultConfig::default());
        self.cooldown_passes().await;
        self.backoffs_pass().await;
        self.drain_until_settled(sync).await
    }

    /// Every row completed, and every record synced with the ids HubSpot holds.
    async fn assert_converged(&self, companies: usize, deals: usize) {
        let unfinished: Vec<QueueRow> = self.select("WHERE status <> 'completed'", &[]).await;
        assert!(unfinished.is_empty(), "{unfinished:#?}");
        assert_eq!(self.sim_by_local_id("companies").await.len(), companies);
        assert_eq!(self.sim_by_local_id("deals").await.len(), deals);
        assert_eq!(
            self.count("deals WHERE hubspot_sync_status <> 'synced' OR hubspot_deal_id IS NULL")
                .await,
            0
        );
    }
}

#[tokio::test]
async fn a_two_hour_outage_kills_nothing_and_the_sync_converges_afterwards() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(20, 4).await;
    app.sim().set_faults(FaultConfig {
        next: vec![FaultKind::Unavailable; 100_000],
        ..FaultConfig::default()
    });
    let sync = app.sync_with(app.hubspot_without_retries(), without_circuit());
    // Twelve failed attempts each, more than SYNC_MAX_ATTEMPTS (8), over what is two hours by the items' clock.
    for _ in 0..12 {
        sync.drain("cli", Duration::from_secs(120)).await.expect("drain");
        app.backoffs_pass().await;
    }
    app.failing_since("2 hours").await;
    let report = sync.drain("cli", Duration::from_secs(120)).await.expect("drain");
    assert_eq!((report.failed, report.dead), (4, 0), "{report:?}");
    assert_eq!(app.count("sync_queue WHERE status = 'dead'").await, 0);
    assert_eq!(
        app.count("sync_queue WHERE entity_type = 'company' AND status = 'failed' AND attempts >= 13")
            .await,
        4,
        "every attempt is counted on the row (a drain may retry more than once), none toward max attempts"
    );
    assert_eq!(app.count("deals WHERE hubspot_sync_status = 'failed'").await, 0);

    let reports = app.recover_and_settle(&sync).await;
    assert_eq!(reports.iter().map(|r| r.dead).sum::<u64>(), 0);
    app.assert_converged(4, 20).await;
}

#[tokio::test]
async fn a_429_storm_kills_nothing_opens_the_circuit_and_the_sync_converges_afterwards() {
    // HubSpot's window is 10 s, and a 429 makes the client and the item wait that long (its rate headers say so): a
    // portal with a 200 ms window keeps the storm quick.
    let sim = SimConfig {
        rate_window: Duration::from_millis(200),
        ..SimConfig::default()
    };
    let app = SyncApp::spawn_with(sim, 100, Duration::from_millis(200), quick_retries()).await;
    app.ingest_generated(10, 2).await;
    app.sim().set_faults(FaultConfig {
        next: vec![FaultKind::TooManyRequests; 100_000],
        ..FaultConfig::default()
    });
    let sync = app.sync_with(client_for(app.sim(), 100, Duration::from_millis(200)), with_circuit(5));
    let mut reports = Vec::new();
    for _ in 0..12 {
        reports.push(sync.drain("cli", Duration::from_secs(120)).await.expect("drain"));
        app.backoffs_pass().await;
        app.cooldown_passes().await;
    }
    app.failing_since("3 hours").await;
    reports.push(sync.drain("cli", Duration::from_secs(120)).await.expect("drain"));
    assert!(reports.iter().any(|r| r.circuit_opened), "{reports:?}");
    assert!(
        reports.iter().any(|r| r.circuit_probed && !r.circuit_closed),
        "probes during the storm failed"
    );
    assert_eq!(reports.iter().map(|r| r.dead).sum::<u64>(), 0);
    assert_eq!(app.count("sync_queue WHERE status = 'dead'").await, 0);
    assert!(app.sim().outcome_count("429") >= 5);

    let reports = app.recover_and_settle(&sync).await;
    assert!(
        reports[0].circuit_probed && reports[0].circuit_closed,
        "{:?}",
        reports[0]
    );
    assert_eq!(app.circuit_state().await, "closed");
    app.assert_converged(2, 10).await;
}

#[tokio::test]
async fn a_retryable_failure_after_the_retry_window_kills_the_item_and_fails_its_record() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    app.sim().set_faults(FaultConfig {
        next: vec![FaultKind::Unavailable; 100],
        ..FaultConfig::default()
    });
    // Backoffs longer than any drain: the failed row is not claimed again within the drain however slow the
    // machine (or the pooler) is; the test moves the clock with backoffs_pass.
    let settings = without_circuit();
    let settings = SyncSettings {
        retry: RetryPolicy {
            base_delay: Duration::from_secs(3_600),
            max_delay: Duration::from_secs(3_600),
            ..settings.retry
        },
        ..settings
    };
    let sync = app.sync_with(app.hubspot_without_retries(), settings);
    let report = sync.drain("cli", Duration::from_secs(120)).await.expect("drain");
    assert_eq!((report.failed, report.dead), (1, 0), "{report:?}");
    app.failing_since("24 hours 1 second").await;
    app.backoffs_pass().await;
    let report = sync.drain("cli", Duration::from_secs(120)).await.expect("drain");
    assert_eq!((report.failed, report.dead), (0, 1), "{report:?}");
    let dead = app.select_one::<QueueRow>("WHERE status = 'dead'", &[]).await;
    assert_eq!((dead.entity_type.as_str(), dead.attempts), ("company", 2));
    assert_eq!(app.companies().await[0].hubspot_sync_status, "failed");

    // A redrive starts a new window.
    app.sim().set_faults(FaultConfig::default());
    assert_eq!(sync.store().redrive(10).await.unwrap(), [dead.id]);
    assert_eq!(app.count("crmsync.sync_retry_state").await, 0);
}

#[tokio::test]
async fn a_permanent_400_still_dies_at_once_inside_the_retry_window() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(2, 1).await;
    // One deal's stage maps to a stage id HubSpot does not have: a 400 validation error for that input only.
    app.execute(
        "UPDATE crmsync.settings SET value = jsonb_set(value, '{stage_ids,qualified}', '\"999999\"');
         UPDATE deals SET stage = 'qualified' WHERE deal_name LIKE 'Opportunity 1 %';",
    )
    .await;
    let sync = app.sync_with(app.hubspot_without_retries(), without_circuit());
    let report = sync.drain("cli", Duration::from_secs(120)).await.expect("drain");
    assert_eq!(
        (report.deals_created, report.failed, report.dead),
        (1, 0, 1),
        "{report:?}"
    );
    let dead = app.select_one::<QueueRow>("WHERE status = 'dead'", &[]).await;
    assert_eq!(dead.attempts, 1);
    assert!(dead.last_error.expect("error").starts_with("permanent: "));
    assert_eq!(
        app.count("crmsync.sync_retry_state").await,
        0,
        "no retry window was started"
    );
}

#[tokio::test]
async fn the_circuit_opens_after_failures_in_a_row_defers_retry_messages_probes_and_closes() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(3, 3).await;
    app.sim().set_faults(FaultConfig {
        next: vec![FaultKind::Unavailable; 100_000],
        ..FaultConfig::default()
    });
    let queue = crmsync_testkit::fresh_queue("crmsync-circuit").await;
    let sync = app.outbound_sync(app.hubspot_without_retries(), Some(queue.clone()), with_circuit(3));
    // The company batches fail (a drain retries as often as backoffs expire during it); the third failed call in a
    // row opens the circuit.
    let first = sync.drain("cli", Duration::from_secs(120)).await.expect("drain");
    let mut reports = vec![first];
    while !reports.last().expect("a report").circuit_opened {
        assert!(reports.len() < 10, "the circuit never opened: {reports:?}");
        app.backoffs_pass().await;
        reports.push(sync.drain("cli", Duration::from_secs(120)).await.expect("drain"));
    }
    assert!(app.sim().outcome_count("503") >= 3);
    assert_eq!(app.circuit_state().await, "open");
    assert_eq!(app.count("sync_queue WHERE status = 'dead'").await, 0);

    // Open: a drain sends nothing, even with rows due.
    let requests = app.sim().total_requests();
    let report = sync.drain("cli", Duration::from_secs(120)).await.expect("drain");
    assert_eq!((report.claimed, report.circuit_open), (0, true), "{report:?}");
    assert_eq!(app.sim().total_requests(), requests, "no HubSpot call while open");

    // A retry delivery while open is deferred: a fresh message with the same attempts, nothing failed or claimed.
    let row = app
        .select_one::<QueueRow>("WHERE entity_type = 'company' ORDER BY id LIMIT 1", &[])
        .await;
    let message = json!({"sync_queue_id": row.id, "entity_type": "company", "entity_id": row.entity_id,
                         "attempts": row.attempts});
    let delivery = crmsync_sync::RetryDelivery {
        message_id: "m-1".into(),
        body: message.to_string(),
    };
    let failed = sync.handle_retry_messages(&[delivery]).await.expect("handled");
    assert!(failed.is_empty(), "deferred, not failed");
    assert_eq!(app.sim().total_requests(), requests);
    let deferred_run: serde_json::Value = app
        .scalar("SELECT counts FROM crmsync.sync_runs WHERE trigger = 'retry_queue' ORDER BY started_at DESC LIMIT 1")
        .await;
    assert_eq!(
        (
            deferred_run["circuit_deferred"].as_u64(),
            deferred_run["circuit_open"].as_bool()
        ),
        (Some(1), Some(true))
    );
    let status: String = app
        .scalar(&format!("SELECT status FROM sync_queue WHERE id = '{}'", row.id))
        .await;
    assert_eq!(status, "failed");

    // The cool-down ends while HubSpot is still down: one probe, which fails, and the circuit stays open.
    app.cooldown_passes().await;
    let report = sync.drain("cli", Duration::from_secs(120)).await.expect("drain");
    assert_eq!(
        (report.circuit_probed, report.circuit_closed, report.claimed),
        (true, false, 0),
        "{report:?}"
    );
    assert_eq!(app.sim().total_requests(), requests + 1, "exactly one probe");
    assert_eq!(app.circuit_state().await, "open");

    // HubSpot recovers: the next probe closes the circuit, and the same drain syncs everything.
    let reports = app.recover_and_settle(&sync).await;
    assert!(
        reports[0].circuit_probed && reports[0].circuit_closed,
        "{:?}",
        reports[0]
    );
    assert_eq!(app.circuit_state().await, "closed");
    app.assert_converged(3, 3).await;
    let noted: i64 = app
        .scalar(
            "SELECT count(*) FROM crmsync.sync_runs
             WHERE (counts->>'circuit_opened')::bool OR (counts->>'circuit_closed')::bool",
        )
        .await;
    assert_eq!(noted, 2, "the run record notes the opening and the closing");
}

#[tokio::test]
async fn an_association_answer_missing_an_input_is_retried_and_the_deal_is_not_synced_until_done() {
    let app = SyncApp::spawn().await;
    app.ingest_generated(1, 1).await;
    // A retry (the first attempt failed before it reached HubSpot): the deal goes by upsert and its association in a
    // batch of its own (a first attempt creates both in one request).
    app.execute("UPDATE sync_queue SET attempts = 1 WHERE entity_type = 'deal'")
        .await;
    app.sim().set_faults(FaultConfig {
        association_results_dropped: 1,
        ..FaultConfig::default()
    });
    let sync = app.sync_with(app.hubspot_without_retries(), without_circuit());
    let report = sync.drain("cli", Duration::from_secs(120)).await.expect("drain");
    assert_eq!(
        (report.deals_created, report.associations, report.failed, report.dead),
        (1, 0, 1, 0),
        "{report:?}"
    );
    let deal = app.single_deal().await;
    assert!(deal.hubspot_deal_id.is_some(), "the deal itself is in HubSpot");
    assert_ne!(deal.hubspot_sync_status, "synced", "its association is not done");
    let row = app.select_one::<QueueRow>("WHERE entity_type = 'deal'", &[]).await;
    assert_eq!(row.status, "failed");
    assert!(row.last_error.expect("error").contains("outcome is unknown"));

    app.backoffs_pass().await;
    let report = sync.drain("cli", Duration::from_secs(120)).await.expect("drain");
    assert_eq!(
        (report.associations, report.failed, report.dead),
        (1, 0, 0),
        "{report:?}"
    );
    let deal = app.single_deal().await;
    assert_eq!(deal.hubspot_sync_status, "synced");
    let company = app.companies().await.remove(0);
    let remote = &app.sim_by_local_id("deals").await[&deal.id.to_string()];
    assert_eq!(
        remote["associations"]["companies"],
        json!([company.hubspot_company_id.expect("company synced")]),
        "one association, made once"
    );
    app.assert_converged(1, 1).await;
}

#[tokio::test]
async fn a_kicked_drain_takes_everything_due_at_its_start_in_rounds_while_they_come_back_full() {
    // Batches of 10 rows: 12 matches queue 24 rows (a company and a deal each), so the drain a kick asked for needs
    // three rounds (10, 10, 4) and stops after the short one, with nothing left behind for the schedule.
    let app = SyncApp::around(
        TestApp::with_hubspot().await,
        SyncSettings {
            batch_size: 10,
            ..quick_retries()
        },
    );
    app.ingest_generated(12, 12).await;
    let report = app.sync.drain_requested(Duration::from_secs(120)).await.expect("drain");
    assert_eq!(
        (report.rounds, report.companies_created, report.deals_created),
        (3, 12, 12),
        "{report:?}"
    );
    assert_eq!(app.count("sync_queue WHERE status <> 'completed'").await, 0);
    assert_eq!(app.count("crmsync.sync_runs WHERE trigger = 'kick'").await, 1);
}
