//! The Lambda handler called directly, as the runtime would, against a fresh database.

use crmsync_app::kick::DrainKicker;
use crmsync_db::PgMatchStore;
use crmsync_testkit::TestApp;
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::json;

#[tokio::test]
async fn the_handler_ingests_an_event_and_reports_rejections() {
    let app = TestApp::new().await;
    let store = app.match_store();
    let event = json!({ "matches": [
        { "opportunity": { "notice_id": "L-1", "title": "Fleet telematics" },
          "contractor": { "uei": "LAMBDAUEI001", "name": "Fleet Co" }, "match_score": 55 },
        { "opportunity": { "notice_id": "L-2", "title": "Fleet telematics" },
          "contractor": { "uei": "LAMBDAUEI001", "name": "Fleet Co" } }
    ]});
    let report = ingest_matches::handle(&store, &DrainKicker::Off, LambdaEvent::new(event, Context::default()))
        .await
        .expect("handled");
    assert_eq!(
        (report.companies_created, report.deals_created, report.queued),
        (1, 1, 2)
    );
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].index, 1);
    assert_eq!(report.rejected[0].field.as_deref(), Some("match_score"));
}

#[tokio::test]
async fn an_unusable_event_fails_as_non_retryable_and_an_unreachable_database_as_retryable() {
    let app = TestApp::new().await;
    let store = app.match_store();
    let failure = ingest_matches::handle(
        &store,
        &DrainKicker::Off,
        LambdaEvent::new(json!([1, 2].repeat(6000)), Context::default()),
    )
    .await
    .expect_err("too many matches");
    assert_eq!(Diagnostic::from(failure).error_type, "NonRetryable");

    let unreachable = crmsync_db::connect_pool("postgres://postgres@127.0.0.1:1/none", 1).expect("pool");
    let failure = ingest_matches::handle(
        &PgMatchStore::new(unreachable),
        &DrainKicker::Off,
        LambdaEvent::new(
            json!({ "match_id": "0b7e5c1a-0000-4000-8000-000000000042" }),
            Context::default(),
        ),
    )
    .await
    .expect_err("no database");
    assert_eq!(Diagnostic::from(failure).error_type, "Retryable");
}
