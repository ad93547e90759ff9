//! The hubspot-webhook Lambda's router, fed lambda_http's own request type built from an API Gateway HTTP API
//! event: the signed URI is rebuilt from the request context's domain, the raw path and the raw query. Events that
//! must wait go through a real SQS queue (moto's server; `AWS_ENDPOINT_URL` when set, else one started per test
//! process) and come back through the retry handler.

use std::sync::Arc;

use crmsync_http::webhook::WebhookState;
use crmsync_hubspot::signature::sign_v3;
use crmsync_inbound::Applier;
use crmsync_queue::SqsRetryQueue;
use crmsync_sync::{OutboundSync, SyncSettings};
use crmsync_testkit::{
    TestApp, deliveries, fresh_queue, inbox_retries, receive_until_some, unused_hubspot, webhook_config,
};
use lambda_http::http::StatusCode;
use lambda_http::tower::ServiceExt;
use serde_json::json;

const SECRET: &str = "lambda-client-secret-0123456789";
const DOMAIN: &str = "abc123.execute-api.us-east-1.amazonaws.com";
const RAW_QUERY: &str = "source=hubspot%3Aprod&list=%28a%2Cb%29&sp=a%20b";

/// The Lambda's state: our secret, and an applier whose HubSpot client is never called (unknown event types and
/// association events need no HubSpot call).
fn state(app: &TestApp) -> WebhookState {
    app.webhook_state(&webhook_config(&[("HUBSPOT_CLIENT_SECRET", SECRET)]), app.applier(None))
}

/// An API Gateway HTTP API (payload 2.0) event whose Host header differs from the public domain, as behind a
/// custom domain mapping.
fn event(body: &str, signature: &str, timestamp: i64) -> String {
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/hubspot",
        "rawPath": "/webhooks/hubspot",
        "rawQueryString": RAW_QUERY,
        "headers": {
            "host": "internal.example",
            "content-type": "application/json",
            "x-hubspot-signature-v3": signature,
            "x-hubspot-request-timestamp": timestamp.to_string(),
        },
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": DOMAIN, "domainPrefix": "abc123",
            "http": {"method": "POST", "path": "/webhooks/hubspot", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4",
                     "userAgent": "HubSpot Connect 2.0"},
            "requestId": "req-1", "routeKey": "POST /webhooks/hubspot", "stage": "$default",
            "time": "25/Nov/2026:10:00:00 +0000", "timeEpoch": 1_795_000_000_000_i64
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

async fn deliver(app: axum::Router, signed_uri: &str) -> StatusCode {
    let body = json!([{"eventId": 1, "subscriptionId": 2, "portalId": 3, "occurredAt": 4,
                       "subscriptionType": "ticket.creation", "objectId": 5}])
    .to_string();
    deliver_body(app, signed_uri, &body).await
}

async fn deliver_body(app: axum::Router, signed_uri: &str, body: &str) -> StatusCode {
    let now = chrono::Utc::now().timestamp_millis();
    let signature = sign_v3(SECRET, "POST", signed_uri, body.as_bytes(), now);
    let request = lambda_http::request::from_str(&event(body, &signature, now)).expect("API Gateway event");
    app.oneshot(request).await.expect("response").status()
}

#[tokio::test]
async fn a_request_signed_for_the_api_gateway_domain_with_an_encoded_query_is_accepted_and_stored() {
    let app = TestApp::new().await;
    let public = format!("https://{DOMAIN}/webhooks/hubspot?{RAW_QUERY}");
    assert_eq!(
        deliver(hubspot_webhook::app(state(&app)), &public).await,
        StatusCode::OK
    );
    assert_eq!(app.count("crmsync.webhook_inbox").await, 1);
}

#[tokio::test]
async fn a_request_signed_for_the_internal_host_is_refused_and_nothing_is_stored() {
    let app = TestApp::new().await;
    let internal = format!("https://internal.example/webhooks/hubspot?{RAW_QUERY}");
    assert_eq!(
        deliver(hubspot_webhook::app(state(&app)), &internal).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.count("crmsync.webhook_inbox").await, 0);
}

#[test]
fn outside_lambda_there_is_no_public_uri_from_the_environment() {
    let request = lambda_http::http::Request::post("/webhooks/hubspot").body(()).unwrap();
    assert_eq!(hubspot_webhook::lambda_public_uri(&request), None);
}

// ---------------------------------------------------------------------------------------------------------------
// Waiting events through SQS

async fn sqs_queue() -> SqsRetryQueue {
    fresh_queue("crmsync-webhook-test").await
}

/// The Lambda's state with the SQS retry queue, and an applier whose waits are a few milliseconds.
fn state_with_queue(app: &TestApp, queue: &SqsRetryQueue, max_attempts: i32) -> (WebhookState, Applier) {
    let applier = app
        .applier(None)
        .with_retry_queue(Arc::new(queue.clone()))
        .with_retry_policy(inbox_retries(max_attempts));
    let config = webhook_config(&[("HUBSPOT_CLIENT_SECRET", SECRET)]);
    (app.webhook_state(&config, applier.clone()), applier)
}

/// A deal linked to HubSpot deal 5001, whose HubSpot company 777001 is not local.
async fn deal_without_its_company(app: &TestApp) {
    app.execute(
        "INSERT INTO deals (deal_name, stage, hubspot_deal_id, hubspot_sync_status)
         VALUES ('Waiting deal', 'new_match', '5001', 'synced')",
    )
    .await;
}

fn association_body() -> String {
    json!([{"eventId": 10, "subscriptionId": 2, "portalId": 3, "occurredAt": chrono::Utc::now().timestamp_millis(),
            "subscriptionType": "deal.associationChange", "objectId": 5001, "changeSource": "CRM_UI",
            "associationType": "DEAL_TO_COMPANY", "fromObjectId": 5001, "toObjectId": 777001,
            "associationRemoved": false, "isPrimaryAssociation": true}])
    .to_string()
}

/// The outbound-sync Lambda's SQS handler over the test database and queue, applying inbox events with `applier`.
fn retry_handler(app: &TestApp, queue: &SqsRetryQueue, applier: Applier) -> OutboundSync<SqsRetryQueue> {
    app.outbound_sync(unused_hubspot(), Some(queue.clone()), SyncSettings::default())
        .with_inbox(applier)
}

#[tokio::test]
async fn a_waiting_event_gets_a_retry_message_on_sqs_and_handling_it_applies_the_event_once_its_company_is_local() {
    let app = TestApp::new().await;
    let queue = sqs_queue().await;
    let (state, applier) = state_with_queue(&app, &queue, 5);
    deal_without_its_company(&app).await;
    let public = format!("https://{DOMAIN}/webhooks/hubspot?{RAW_QUERY}");
    let status = deliver_body(hubspot_webhook::app(state), &public, &association_body()).await;
    assert_eq!(status, StatusCode::OK);
    let event = app.inbox_event().await;
    assert_eq!(
        (event.status.as_str(), event.attempts),
        ("retry", 1),
        "the company is not local: it waits"
    );

    let messages = receive_until_some(&queue).await;
    assert_eq!(messages.len(), 1, "one retry message");
    let body: serde_json::Value = serde_json::from_str(&messages[0].body).unwrap();
    assert_eq!(body["entity_type"], crmsync_domain::webhook::INBOX_RETRY_KIND);
    assert_eq!(body["sync_queue_id"].as_str(), Some(event.id.to_string().as_str()));

    // The company arrives; the retry handler (the outbound-sync Lambda's SQS source) takes the message.
    app.execute(
        "INSERT INTO companies (name, hubspot_company_id, hubspot_sync_status, source)
         VALUES ('Late Co', '777001', 'synced', 'hubspot')",
    )
    .await;
    let sync = retry_handler(&app, &queue, applier);
    let deliveries = deliveries(&messages);
    let failed = sync.handle_retry_messages(&deliveries).await.expect("handled");
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(app.inbox_event().await.status, "applied");
    let deal = app.deal_by_hubspot_id("5001").await.expect("deal 5001");
    let company = app.company(deal.company_id.expect("linked to its company")).await;
    assert_eq!(company.name, "Late Co");
}

#[tokio::test]
async fn an_event_that_dies_gets_a_dlq_bound_message_and_shows_in_the_dead_count() {
    let app = TestApp::new().await;
    let queue = sqs_queue().await;
    let (state, applier) = state_with_queue(&app, &queue, 1);
    deal_without_its_company(&app).await;
    let public = format!("https://{DOMAIN}/webhooks/hubspot?{RAW_QUERY}");
    let status = deliver_body(hubspot_webhook::app(state), &public, &association_body()).await;
    assert_eq!(status, StatusCode::OK);
    let event = app.inbox_event().await;
    assert_eq!(
        (event.status.as_str(), event.attempts),
        ("dead", 1),
        "one attempt allowed"
    );

    let messages = receive_until_some(&queue).await;
    assert_eq!(messages.len(), 1, "the dead event has a message, for the DLQ alarm");
    let body: serde_json::Value = serde_json::from_str(&messages[0].body).unwrap();
    assert_eq!(body["entity_type"], crmsync_domain::webhook::INBOX_RETRY_KIND);
    assert_eq!(body["sync_queue_id"].as_str(), Some(event.id.to_string().as_str()));
    // The retry handler (the outbound-sync Lambda's SQS source) reports the dead event's message failed, so the
    // redrive policy moves it to the DLQ, and sends no second message for it.
    let sync = retry_handler(&app, &queue, applier);
    let deliveries = deliveries(&messages[..1]);
    let failed = sync.handle_retry_messages(&deliveries).await.expect("handled");
    assert_eq!(
        failed,
        vec![messages[0].message_id.clone()],
        "the dead event's message is reported failed"
    );
    queue.delete(&messages[0].receipt_handle).await.unwrap();
    assert!(
        receive_until_some(&queue).await.is_empty(),
        "no new message for a dead event"
    );

    let counts = crmsync_db::inbox::status_counts(&app.pool().get().await.unwrap())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.retry, counts.dead), (0, 0, 1));
}

// ---------------------------------------------------------------------------------------------------------------
// A database that does not answer, or a row someone else holds

#[tokio::test]
async fn an_unreachable_database_gets_a_503_within_four_seconds_so_hubspot_retries() {
    let silent = crmsync_testkit::SilentServer::start().await;
    let pool = silent.pool(crmsync_app::Timeouts::WEBHOOK);
    let state = WebhookState::new(
        &webhook_config(&[("HUBSPOT_CLIENT_SECRET", SECRET)]),
        Applier::new(pool, unused_hubspot(), None),
        crmsync_http::webhook::ApplyMode::Inline,
    );
    let public = format!("https://{DOMAIN}/webhooks/hubspot?{RAW_QUERY}");
    let started = std::time::Instant::now();
    let status = deliver(hubspot_webhook::app(state), &public).await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(waited < std::time::Duration::from_secs(4), "answered after {waited:?}");
}

#[tokio::test]
async fn an_event_for_a_row_another_session_holds_is_stored_answered_in_time_and_applied_once_the_lock_goes() {
    let app = TestApp::new().await;
    app.ingest_generated(1, 1).await;
    let deal = app.single_deal().await;
    let client = app.pool().get().await.unwrap();
    client
        .execute("UPDATE deals SET hubspot_deal_id = '777001' WHERE id = $1", &[&deal.id])
        .await
        .unwrap();
    // Another session holds the deal, as a long ingestion or an operator's open transaction would.
    let holder = crmsync_db::migrate::connect_url(app.db.direct_url()).await.unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM deals WHERE id = '{}' FOR UPDATE",
            deal.id
        ))
        .await
        .unwrap();

    let body = json!([{"eventId": 41, "subscriptionId": 2, "portalId": 3, "occurredAt": 1_795_000_000_000_i64,
                       "subscriptionType": "deal.deletion", "objectId": 777_001}])
    .to_string();
    let public = format!("https://{DOMAIN}/webhooks/hubspot?{RAW_QUERY}");
    let webhook = hubspot_webhook::app(
        app.webhook_state(&webhook_config(&[("HUBSPOT_CLIENT_SECRET", SECRET)]), app.applier(None)),
    );
    let started = std::time::Instant::now();
    let status = deliver_body(webhook, &public, &body).await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::OK, "stored, so HubSpot need not retry");
    assert!(waited < std::time::Duration::from_secs(4), "answered after {waited:?}");
    let open: i64 = client
        .query_one(
            "SELECT count(*) FROM crmsync.webhook_inbox WHERE status <> 'applied'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 1, "the event waits in the inbox");

    holder.batch_execute("ROLLBACK").await.unwrap();
    let report = crmsync_inbound::apply_pending_inbox(&app.applier(None), 10)
        .await
        .expect("re-apply pass");
    assert_eq!(report.applied, 1, "{report:?}");
    assert_eq!(app.deal(deal.id).await.hubspot_sync_status, "deleted");
}
