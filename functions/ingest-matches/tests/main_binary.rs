//! The ingest-matches binary's `main` under a local Lambda Runtime API, invoked directly as the upstream workflow
//! invokes it (`lambda:InvokeFunction` with a JSON event of matches), against a fresh database; with the retry queue
//! (moto), its fast-path kick: one drain request per burst, and a failed kick that fails nothing.

use crmsync_db::test_db::TestDb;
use crmsync_queue::test_support::sqs_endpoint;
use crmsync_testkit::lambda::FunctionProcess;
use serde_json::json;

async fn start(db: &TestDb) -> FunctionProcess {
    FunctionProcess::start(
        env!("CARGO_BIN_EXE_ingest-matches"),
        "crmsync-ingest-matches",
        &[("DATABASE_URL", db.url()), ("DATABASE_POOL_SIZE", "2")],
    )
    .await
}

#[tokio::test]
async fn a_direct_invoke_reports_each_match_and_the_same_event_again_is_unchanged() {
    let db = TestDb::new().await;
    let function = start(&db).await;
    let event = json!({ "matches": [
        { "opportunity": { "notice_id": "BIN-1", "title": "Fleet telematics" },
          "contractor": { "uei": "BINUEI000001", "name": "Fleet Co" }, "match_score": 55 },
        { "opportunity": { "notice_id": "BIN-2", "title": "Fleet telematics" },
          "contractor": { "uei": "BINUEI000001", "name": "Fleet Co" }, "match_score": 101 }
    ]});

    let report = function.invoke(event.clone()).await.expect("a report");
    assert_eq!(
        (
            &report["companies_created"],
            &report["deals_created"],
            &report["queued"]
        ),
        (&json!(1), &json!(1), &json!(2)),
        "{report}"
    );
    assert_eq!(report["rejected"][0]["index"], 1, "{report}");
    assert_eq!(report["rejected"][0]["field"], "match_score", "{report}");
    assert_eq!(report["rejected"].as_array().map(Vec::len), Some(1), "{report}");

    // The same process answers the next invocation: the pool built at start-up is reused.
    let again = function.invoke(event).await.expect("a report");
    assert_eq!(again["unchanged"], 1, "{again}");
    assert_eq!(
        (&again["companies_created"], &again["deals_created"], &again["queued"]),
        (&json!(0), &json!(0), &json!(0)),
        "{again}"
    );
}

#[tokio::test]
async fn an_event_that_is_not_a_list_of_matches_is_an_error_response_typed_non_retryable() {
    let db = TestDb::new().await;
    let function = start(&db).await;
    let error = function
        .invoke(json!({ "matches": "not a list" }))
        .await
        .expect_err("an error response");
    assert_eq!(error.error_type, "NonRetryable", "{error:?}");
    assert!(error.error_message.contains("matches"), "{error:?}");
    // An error response is one invocation's outcome: the process keeps serving.
    let report = function.invoke(json!({ "matches": [] })).await.expect("a report");
    assert_eq!(report["rejected"], json!([]), "{report}");
}

/// The function as deployed with the fast path: the retry queue's URL (moto) and a one-second debounce window.
async fn start_with_queue(db: &TestDb, queue_url: &str) -> FunctionProcess {
    let endpoint = sqs_endpoint();
    FunctionProcess::start(
        env!("CARGO_BIN_EXE_ingest-matches"),
        "crmsync-ingest-matches",
        &[
            ("DATABASE_URL", db.url()),
            ("DATABASE_POOL_SIZE", "2"),
            ("RETRY_QUEUE_URL", queue_url),
            ("SYNC_KICK_DEBOUNCE_MS", "1000"),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    )
    .await
}

fn one_match(notice_id: &str) -> serde_json::Value {
    json!({ "opportunity": { "notice_id": notice_id, "title": "Fleet telematics" },
            "contractor": { "uei": uei_for(notice_id), "name": "Fleet Co" }, "match_score": 55 })
}

#[tokio::test]
async fn an_ingestion_that_queued_rows_sends_one_drain_request_for_its_burst_and_one_that_queued_nothing_none() {
    let db = TestDb::new().await;
    let queue = crmsync_testkit::fresh_queue("kick-bin").await;
    let function = start_with_queue(&db, queue.queue_url()).await;

    for i in 0..3 {
        let report = function.invoke(one_match(&format!("KB-{i}"))).await.expect("a report");
        assert_eq!(report["queued"], 2, "{report}");
    }
    // A re-delivery queues nothing and kicks nothing.
    let again = function.invoke(one_match("KB-0")).await.expect("a report");
    assert_eq!(again["queued"], 0, "{again}");

    // One drain request (after its one-second delay) for the three ingestions.
    let messages = crmsync_testkit::receive_until_some(&queue).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let body: serde_json::Value = serde_json::from_str(&messages[0].body).expect("json");
    assert_eq!(
        (&body["kind"], &body["requested_by"]),
        (&json!("drain"), &json!("ingest")),
        "{body}"
    );
    assert!(body["due_at"].is_string(), "the request's due time rides along: {body}");
    queue.delete(&messages[0].receipt_handle).await.expect("delete");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let more = queue
        .receive(std::time::Duration::from_secs(1), None)
        .await
        .expect("receive");
    assert!(more.is_empty(), "the burst made one request: {more:?}");
    assert!(
        function.logs().contains("\"DrainKicksRequested\""),
        "the EMF count:\n{}",
        function.logs()
    );
}

#[tokio::test]
async fn without_the_queue_the_kick_fails_but_the_ingestion_succeeds_and_its_rows_stay_queued() {
    let db = TestDb::new().await;
    let missing = format!(
        "{}/123456789012/crmsync-no-such-queue-{}",
        sqs_endpoint(),
        std::process::id()
    );
    let function = start_with_queue(&db, &missing).await;

    let report = function
        .invoke(one_match("KF-1"))
        .await
        .expect("a report, not an error");
    assert_eq!(
        (&report["deals_created"], &report["queued"]),
        (&json!(1), &json!(2)),
        "{report}"
    );
    let logs = function.logs();
    assert!(logs.contains("could not send the drain request"), "{logs}");
    assert!(logs.contains("\"DrainKicksFailed\""), "the EMF count:\n{logs}");
    let client = db.pool().get().await.expect("client");
    let pending: i64 = client
        .query_one("SELECT count(*) FROM sync_queue WHERE status = 'pending'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(pending, 2, "the rows wait for the schedule");
    let waiting: Option<chrono::DateTime<chrono::Utc>> = client
        .query_one("SELECT due_at FROM crmsync.drain_kicks WHERE name = 'outbound'", &[])
        .await
        .expect("kick row")
        .get(0);
    assert_eq!(
        waiting, None,
        "the unsent request was released, so the next kick tries again"
    );
    // The next ingestion tries again (and fails again): the kick is not stuck behind the lost request.
    function.invoke(one_match("KF-2")).await.expect("a report");
    assert_eq!(function.logs().matches("could not send the drain request").count(), 2);
}

/// A valid UEI (12 letters and digits) of its own for each notice id: `KICK` and the id's last 8 letters and digits.
fn uei_for(notice_id: &str) -> String {
    let alphanumeric: String = notice_id.chars().filter(char::is_ascii_alphanumeric).collect();
    let tail = &alphanumeric[alphanumeric.len().saturating_sub(8)..];
    format!("KICK{tail:0>8}")
}
