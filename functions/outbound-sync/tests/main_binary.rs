//! The outbound-sync binary's `main` under a local Lambda Runtime API, against a fresh database, the HubSpot
//! simulator and moto's SQS: EventBridge Scheduler's default event drains the queue, an SQS batch from the retry
//! queue gets a partial batch response (ReportBatchItemFailures), a drain request on it (the fast path) drains, and
//! anything else is refused.

use std::time::Duration;

use crmsync_app::hubspot_setup::hubspot_setup;
use crmsync_app::ingest::ingest_matches;
use crmsync_app::kick::{DrainKicker, KickOutcome, SqsKicks};
use crmsync_db::kick::PgDrainKicks;
use crmsync_db::test_db::TestDb;
use crmsync_db::{PgMatchStore, PgSyncStore};
use crmsync_domain::kick::DrainRequest;
use crmsync_domain::sync::{EntityType, RetryMessage, RetryTarget};
use crmsync_hubspot::{HubSpotClient, HubSpotConfig};
use crmsync_hubspot_sim::{HubSpotSim, RunningSim, SimConfig};
use crmsync_queue::SqsRetryQueue;
use crmsync_queue::test_support::{sqs_client, sqs_endpoint};
use crmsync_testkit::lambda::{FunctionProcess, receive_sqs_event, scheduler_event};
use serde_json::{Value, json};

/// The function as deployed: its database (HubSpot set up, as `crmsync hubspot-setup` does once per portal), the
/// simulator as HubSpot, moto's SQS as the retry queue, and the running binary.
struct Deployed {
    db: TestDb,
    sim: RunningSim,
    queue: SqsRetryQueue,
    function: FunctionProcess,
}

async fn deploy() -> Deployed {
    let db = TestDb::new().await;
    let sim = HubSpotSim::start(
        SimConfig {
            requests_per_window: 1_000,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("simulator");
    let client =
        HubSpotClient::new(HubSpotConfig::new(sim.base_url(), sim.access_token().to_owned().into())).expect("client");
    hubspot_setup(&PgSyncStore::new(db.pool().clone()), &client)
        .await
        .expect("hubspot setup");
    let name = format!(
        "crmsync-main-binary-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let queue = SqsRetryQueue::ensure_queues(sqs_client().await, &name, 2, Duration::from_secs(1))
        .await
        .expect("queues");
    let base_url = sim.base_url();
    let endpoint = sqs_endpoint();
    let function = FunctionProcess::start(
        env!("CARGO_BIN_EXE_outbound-sync"),
        "crmsync-outbound-sync",
        &[
            ("DATABASE_URL", db.url()),
            ("DATABASE_POOL_SIZE", "4"),
            ("HUBSPOT_BASE_URL", &base_url),
            ("HUBSPOT_ACCESS_TOKEN", sim.access_token()),
            ("HUBSPOT_REQUESTS_PER_10S", "100"),
            ("RETRY_QUEUE_URL", queue.queue_url()),
            ("SYNC_MAX_ATTEMPTS", "8"),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    )
    .await;
    Deployed {
        db,
        sim,
        queue,
        function,
    }
}

impl Deployed {
    async fn ingest(&self, notice_id: &str, uei: &str) {
        let event = json!({ "opportunity": { "notice_id": notice_id, "title": "Satellite ground station support" },
                            "contractor": { "uei": uei, "name": format!("Orbit {uei}") }, "match_score": 77 });
        let report = ingest_matches(&PgMatchStore::new(self.db.pool().clone()), &event, "test")
            .await
            .expect("ingest");
        assert!(report.rejected.is_empty(), "{report:?}");
    }

    /// One tick of the 5-minute schedule: EventBridge Scheduler's default event.
    async fn tick(&self) -> Value {
        self.function
            .invoke(scheduler_event("crmsync-outbound-sync-every-5-minutes"))
            .await
            .expect("a drain report")
    }

    /// The simulator's records of `object_type`, by their crmsync_id property.
    async fn hubspot_ids(&self, object_type: &str) -> Vec<String> {
        let url = format!("{}/__sim/state?type={object_type}", self.sim.base_url());
        let state: Value = reqwest::get(url).await.expect("state").json().await.expect("json");
        let mut ids: Vec<String> = state["objects"][object_type]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["properties"]["crmsync_id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    async fn local_ids(&self, sql: &str) -> Vec<String> {
        let client = self.db.pool().get().await.expect("client");
        let mut ids: Vec<String> = client
            .query(sql, &[])
            .await
            .expect("query")
            .iter()
            .map(|row| row.get(0))
            .collect();
        ids.sort();
        ids
    }
}

#[tokio::test]
async fn the_scheduler_default_event_drains_ingested_deals_into_hubspot_twice_in_one_process() {
    let app = deploy().await;
    app.ingest("MAIN-1", "MAINUEI00001").await;

    let report = app.tick().await;
    assert_eq!(
        (
            &report["companies_created"],
            &report["deals_created"],
            &report["failed"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "{report}"
    );
    let deals = app.local_ids("SELECT id::text FROM deals").await;
    assert_eq!(app.hubspot_ids("deals").await, deals, "the deal is in HubSpot");

    // The next tick reaches the same process (a warm start): the pool, HubSpot client and queue built in `main`
    // serve it too.
    app.ingest("MAIN-2", "MAINUEI00002").await;
    let report = app.tick().await;
    assert_eq!(
        (&report["companies_created"], &report["deals_created"]),
        (&json!(1), &json!(1)),
        "{report}"
    );
    let deals = app.local_ids("SELECT id::text FROM deals").await;
    assert_eq!(deals.len(), 2);
    assert_eq!(app.hubspot_ids("deals").await, deals);
}

#[tokio::test]
async fn an_sqs_batch_reports_only_the_unreadable_message_as_failed() {
    let app = deploy().await;
    app.ingest("MAIN-3", "MAINUEI00003").await;
    // The company's first attempt failed and its backoff is over: the retry queue's message is due.
    let client = app.db.pool().get().await.expect("client");
    client
        .batch_execute(
            "UPDATE sync_queue SET status = 'failed', attempts = 1, next_attempt_at = now()
             WHERE entity_type = 'company'",
        )
        .await
        .expect("fail the company's first attempt");
    let row = client
        .query_one(
            "SELECT id, entity_id, entity_id::text FROM sync_queue WHERE entity_type = 'company'",
            &[],
        )
        .await
        .expect("the company's row");
    let message = RetryMessage {
        target: RetryTarget::SyncQueue {
            id: row.get(0),
            entity_type: EntityType::Company,
            entity_id: row.get(1),
        },
        attempts: 1,
    };
    app.queue
        .send(&[(message, Duration::ZERO)])
        .await
        .expect("send the retry message");
    let sqs = sqs_client().await;
    sqs.send_message()
        .queue_url(app.queue.queue_url())
        .message_body("not a retry message")
        .send()
        .await
        .expect("send the unreadable message");

    let event = receive_sqs_event(&sqs, app.queue.queue_url(), 2).await;
    let unreadable = event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["body"] == "not a retry message")
        .map(|r| r["messageId"].clone())
        .expect("the unreadable message");
    let response = app.function.invoke(event).await.expect("a batch response");
    assert_eq!(
        response,
        json!({ "batchItemFailures": [{ "itemIdentifier": unreadable }] }),
        "only the unreadable message failed"
    );
    let company: String = row.get(2);
    assert_eq!(
        app.local_ids("SELECT status FROM sync_queue WHERE entity_type = 'company'")
            .await,
        ["completed"]
    );
    let companies = app.local_ids("SELECT id::text FROM companies").await;
    assert_eq!(companies, [company], "the row names the one company");
    assert_eq!(
        app.hubspot_ids("companies").await,
        companies,
        "the retried company is in HubSpot"
    );
}

#[tokio::test]
async fn an_event_from_any_other_source_is_an_error_response() {
    let app = deploy().await;
    let error = app
        .function
        .invoke(json!({ "hello": "world" }))
        .await
        .expect_err("an error response");
    assert_eq!(error.error_type, "NonRetryable", "{error:?}");
    assert!(
        error
            .error_message
            .contains("neither an SQS batch, a scheduled event nor an action"),
        "{error:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The fast path: a drain request on the retry queue (what ingest-matches and api send after they queued rows).

impl Deployed {
    /// The kicker ingest-matches builds from RETRY_QUEUE_URL, with a one-second debounce window.
    fn kicker(&self, queue: SqsRetryQueue) -> DrainKicker {
        DrainKicker::Sqs(SqsKicks::new(
            PgDrainKicks::outbound(self.db.pool().clone()),
            queue,
            Duration::from_secs(1),
        ))
    }

    /// Ingests one match as ingest-matches does (ingestion, then the kick); returns the kick's outcome.
    async fn ingest_and_kick(&self, kicker: &DrainKicker, notice_id: &str) -> KickOutcome {
        self.ingest(notice_id, &uei_for(notice_id)).await;
        kicker.kick("ingest").await
    }

    /// What the event source mapping does after a batch without failures: deletes its messages.
    async fn acknowledge(&self, event: &Value) {
        for record in event["Records"].as_array().into_iter().flatten() {
            self.queue
                .delete(record["receiptHandle"].as_str().expect("receiptHandle"))
                .await
                .expect("delete");
        }
    }

    async fn kick_runs(&self) -> i64 {
        let client = self.db.pool().get().await.expect("client");
        client
            .query_one("SELECT count(*) FROM crmsync.sync_runs WHERE trigger = 'kick'", &[])
            .await
            .expect("count")
            .get(0)
    }

    async fn pending_rows(&self) -> i64 {
        let client = self.db.pool().get().await.expect("client");
        client
            .query_one("SELECT count(*) FROM sync_queue WHERE status = 'pending'", &[])
            .await
            .expect("count")
            .get(0)
    }
}

#[tokio::test]
async fn a_drain_request_drains_and_a_row_committed_after_the_drain_started_gets_its_own_request() {
    let app = deploy().await;
    let kicker = app.kicker(app.queue.clone());
    let sqs = sqs_client().await;

    assert_eq!(app.ingest_and_kick(&kicker, "FP-1").await, KickOutcome::Requested);
    assert_eq!(
        app.ingest_and_kick(&kicker, "FP-2").await,
        KickOutcome::Covered,
        "inside the window"
    );

    // The event source delivers the one request; the function drains both matches.
    let event = receive_sqs_event(&sqs, app.queue.queue_url(), 1).await;
    assert_eq!(
        serde_json::from_str::<Value>(event["Records"][0]["body"].as_str().unwrap()).unwrap()["kind"],
        "drain"
    );
    let response = app.function.invoke(event.clone()).await.expect("a batch response");
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    app.acknowledge(&event).await;
    let deals = app.local_ids("SELECT id::text FROM deals").await;
    assert_eq!(deals.len(), 2);
    assert_eq!(app.hubspot_ids("deals").await, deals, "both deals are in HubSpot");
    assert_eq!(app.kick_runs().await, 1);

    // The race: a row committed after that drain's last claim, still inside the first kick's window by the clock.
    // The drain forgot the request when it started, so this kick asks again instead of being "covered".
    assert_eq!(app.ingest_and_kick(&kicker, "FP-3").await, KickOutcome::Requested);
    let event = receive_sqs_event(&sqs, app.queue.queue_url(), 1).await;
    let response = app.function.invoke(event.clone()).await.expect("a batch response");
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    app.acknowledge(&event).await;
    let deals = app.local_ids("SELECT id::text FROM deals").await;
    assert_eq!(
        app.hubspot_ids("deals").await,
        deals,
        "the third deal is in HubSpot too"
    );
    assert_eq!((app.kick_runs().await, app.pending_rows().await), (2, 0));
}

#[tokio::test]
async fn a_hundred_ingestions_in_two_seconds_send_a_handful_of_drain_requests() {
    let app = deploy().await;
    let kicker = app.kicker(app.queue.clone());
    let started = std::time::Instant::now();
    let mut outcomes = Vec::new();
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    for i in 0..100 {
        pace.tick().await;
        outcomes.push(app.ingest_and_kick(&kicker, &format!("BURST-{i:03}")).await);
    }
    let elapsed = started.elapsed();
    let requested = outcomes.iter().filter(|o| **o == KickOutcome::Requested).count();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, KickOutcome::Requested | KickOutcome::Covered)),
        "{outcomes:?}"
    );
    // Nothing consumed the requests, so the first covers the burst for its window plus the lost window (32 s).
    assert!(
        (1..=5).contains(&requested),
        "{requested} requests for 100 ingestions in {elapsed:?}"
    );
    let mut messages = 0;
    loop {
        let received = app.queue.receive(Duration::from_secs(3), None).await.expect("receive");
        if received.is_empty() {
            break;
        }
        messages += received.len();
        for message in received {
            app.queue.delete(&message.receipt_handle).await.expect("delete");
        }
    }
    assert_eq!(messages, requested, "one message per request");
}

#[tokio::test]
async fn a_full_batch_asks_for_a_drain_at_once_and_the_delayed_request_it_replaced_does_nothing() {
    let app = deploy().await;
    // A window of a minute: only a full batch (100 deals due) makes a drain come sooner.
    let kicker = DrainKicker::Sqs(SqsKicks::new(
        PgDrainKicks::outbound(app.db.pool().clone()),
        app.queue.clone(),
        Duration::from_secs(60),
    ));
    let kicks = PgDrainKicks::outbound(app.db.pool().clone());
    let sqs = sqs_client().await;

    assert_eq!(app.ingest_and_kick(&kicker, "FULL-000").await, KickOutcome::Requested);
    let delayed_due_at = kicks.waiting().await.expect("read").expect("a request waits");
    for i in 1..98 {
        app.ingest(&format!("FULL-{i:03}"), &uei_for(&format!("FULL-{i:03}")))
            .await;
    }
    assert_eq!(
        app.ingest_and_kick(&kicker, "FULL-098").await,
        KickOutcome::Covered,
        "99 deals due: the window applies"
    );
    assert_eq!(
        app.ingest_and_kick(&kicker, "FULL-099").await,
        KickOutcome::Requested,
        "the 100th deal due fills a batch: the request is pulled forward"
    );
    let pulled_forward = kicks.waiting().await.expect("read").expect("a request waits");
    assert!(pulled_forward < delayed_due_at, "{pulled_forward} < {delayed_due_at}");

    // The message without delay arrives now (the first one is still delayed) and drains the 100 deals.
    let event = receive_sqs_event(&sqs, app.queue.queue_url(), 1).await;
    let body: Value = serde_json::from_str(event["Records"][0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["due_at"], json!(pulled_forward), "{body}");
    let response = app.function.invoke(event.clone()).await.expect("a batch response");
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    app.acknowledge(&event).await;
    let deals = app.local_ids("SELECT id::text FROM deals").await;
    assert_eq!(deals.len(), 100);
    assert_eq!(app.hubspot_ids("deals").await, deals, "every deal is in HubSpot");
    assert_eq!((app.kick_runs().await, app.pending_rows().await), (1, 0));

    // A new write asks for its own drain, a minute away. The first request's message arrives meanwhile (here sent
    // again at once, as SQS would deliver it after its delay): its request was drained, so it does nothing.
    assert_eq!(app.ingest_and_kick(&kicker, "FULL-100").await, KickOutcome::Requested);
    let next_due_at = kicks.waiting().await.expect("read").expect("a request waits");
    app.queue
        .send_drain_request(&DrainRequest::new("ingest", delayed_due_at), Duration::ZERO)
        .await
        .expect("send");
    let event = receive_sqs_event(&sqs, app.queue.queue_url(), 1).await;
    for record in event["Records"].as_array().unwrap() {
        let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            body["due_at"],
            json!(delayed_due_at),
            "only the first request's message: {body}"
        );
    }
    let response = app.function.invoke(event).await.expect("a batch response");
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    assert_eq!(
        (app.kick_runs().await, app.pending_rows().await),
        (1, 2),
        "no drain: the new match's company and deal wait for their own request"
    );
    assert_eq!(
        kicks.waiting().await.expect("read"),
        Some(next_due_at),
        "the newer request still waits for its message"
    );
}

#[tokio::test]
async fn without_the_sqs_queue_the_kick_fails_and_the_row_goes_out_at_the_next_scheduled_run() {
    let app = deploy().await;
    let missing = SqsRetryQueue::new(
        sqs_client().await,
        format!(
            "{}/123456789012/crmsync-deleted-queue-{}",
            sqs_endpoint(),
            std::process::id()
        ),
        None,
    );
    let kicker = app.kicker(missing);
    assert_eq!(app.ingest_and_kick(&kicker, "GONE-1").await, KickOutcome::Failed);
    assert_eq!(
        app.pending_rows().await,
        2,
        "the company and the deal wait in sync_queue"
    );
    assert_eq!(
        PgDrainKicks::outbound(app.db.pool().clone())
            .waiting()
            .await
            .expect("read"),
        None,
        "the unsent request is released"
    );

    let report = app.tick().await;
    assert_eq!(report["deals_created"], 1, "{report}");
    let deals = app.local_ids("SELECT id::text FROM deals").await;
    assert_eq!(app.hubspot_ids("deals").await, deals);
    assert_eq!((app.kick_runs().await, app.pending_rows().await), (0, 0));
}

/// A valid UEI (12 letters and digits) of its own for each notice id: `KICK` and the id's last 8 letters and digits.
fn uei_for(notice_id: &str) -> String {
    let alphanumeric: String = notice_id.chars().filter(char::is_ascii_alphanumeric).collect();
    let tail = &alphanumeric[alphanumeric.len().saturating_sub(8)..];
    format!("KICK{tail:0>8}")
}
