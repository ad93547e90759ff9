//! The ingest-matches binary's `main` under a local Lambda Runtime API, invoked directly as the upstream workflow
//! invokes it (`lambda:InvokeFunction` with a JSON event of matches), against a fresh database.

use crmsync_db::test_db::TestDb;
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
