//! The hubspot-webhook binary's `main` under a local Lambda Runtime API, answering API Gateway HTTP API (payload
//! 2.0) requests signed as HubSpot signs them (v3: method, the public URI, body and timestamp), against a fresh
//! database.

use crmsync_db::test_db::TestDb;
use crmsync_hubspot::signature::sign_v3;
use crmsync_testkit::lambda::{FunctionProcess, HttpApiRequest};
use serde_json::json;

const SECRET: &str = "main-binary-client-secret-0123456789";
/// Percent-encoded as HubSpot sends it; the signature covers it exactly as sent.
const RAW_QUERY: &str = "source=hubspot%3Aprod&list=%28a%2Cb%29";

/// The function's settings; HubSpot is never called for the event type these tests send.
fn settings<'a>(db: &'a TestDb, client_secret: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut settings = vec![
        ("DATABASE_URL", db.url()),
        ("DATABASE_POOL_SIZE", "2"),
        ("HUBSPOT_BASE_URL", "http://127.0.0.1:9"),
        ("HUBSPOT_ACCESS_TOKEN", "unused-token"),
        ("HUBSPOT_WEBHOOK_ACCEPT_V1", "false"),
    ];
    if let Some(secret) = client_secret {
        settings.push(("HUBSPOT_CLIENT_SECRET", secret));
    }
    settings
}

async fn start(db: &TestDb) -> FunctionProcess {
    FunctionProcess::start(
        env!("CARGO_BIN_EXE_hubspot-webhook"),
        "crmsync-hubspot-webhook",
        &settings(db, Some(SECRET)),
    )
    .await
}

/// A webhook delivery as API Gateway hands it over, signed with `secret` over the public URI. The Host header is
/// an internal name, as behind a custom domain mapping: only requestContext.domainName is what HubSpot called.
fn delivery(secret: &str) -> HttpApiRequest {
    let body = json!([{"eventId": 91, "subscriptionId": 2, "portalId": 3, "occurredAt": 4,
                       "subscriptionType": "ticket.creation", "objectId": 5}])
    .to_string();
    let request = HttpApiRequest::new("POST", "/webhooks/hubspot")
        .route("POST /webhooks/hubspot")
        .query(RAW_QUERY)
        .header("host", "internal.example")
        .header("content-type", "application/json")
        .header("user-agent", "HubSpot Connect 2.0 (http://dev.hubspot.com/)")
        .body(body.clone());
    let now = chrono::Utc::now().timestamp_millis();
    let signature = sign_v3(secret, "POST", &request.public_uri(), body.as_bytes(), now);
    request
        .header("x-hubspot-signature-v3", &signature)
        .header("x-hubspot-request-timestamp", &now.to_string())
}

async fn inbox_count(db: &TestDb) -> i64 {
    db.pool()
        .get()
        .await
        .expect("client")
        .query_one("SELECT count(*) FROM crmsync.webhook_inbox", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn a_delivery_signed_over_the_public_uri_is_accepted_and_lands_in_the_inbox() {
    let db = TestDb::new().await;
    let function = start(&db).await;
    let answer = function.request(&delivery(SECRET)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(inbox_count(&db).await, 1);
    let event: i64 = db
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SELECT (payload->>'eventId')::bigint FROM crmsync.webhook_inbox", &[])
        .await
        .expect("the stored event")
        .get(0);
    assert_eq!(event, 91);
}

#[tokio::test]
async fn a_delivery_with_a_bad_signature_is_refused_and_nothing_is_stored() {
    let db = TestDb::new().await;
    let function = start(&db).await;
    let answer = function.request(&delivery("some-other-client-secret-000000")).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(inbox_count(&db).await, 0);

    // The same process still accepts a good one afterwards.
    assert_eq!(function.request(&delivery(SECRET)).await.status, 200);
    assert_eq!(inbox_count(&db).await, 1);
}

#[tokio::test]
async fn without_a_client_secret_main_exits_with_an_error_before_polling_for_events() {
    let db = TestDb::new().await;
    let function = FunctionProcess::start(
        env!("CARGO_BIN_EXE_hubspot-webhook"),
        "crmsync-hubspot-webhook",
        &settings(&db, None),
    )
    .await;
    let status = function.exit_status().await;
    assert!(!status.success(), "{status:?}");
    assert!(
        function.logs().contains("HUBSPOT_CLIENT_SECRET must be set"),
        "{}",
        function.logs()
    );
    // `main` returns its error before lambda_runtime starts, so nothing is posted to /runtime/init/error: Lambda
    // sees the process exit (Runtime.ExitError) instead.
    assert_eq!(function.init_error(), None);
}
