//! The hubspot-webhook Lambda's router, fed lambda_http's own request type built from an API Gateway HTTP API
//! event: the signed URI is rebuilt from the request context's domain, the raw path and the raw query.

use crmsync_app::webhook::{Applier, ApplyMode, WebhookConfig, WebhookState};
use crmsync_db::test_db::TestDb;
use crmsync_hubspot::signature::sign_v3;
use crmsync_hubspot::{HubSpotClient, HubSpotConfig};
use lambda_http::http::StatusCode;
use lambda_http::tower::ServiceExt;
use serde_json::json;

const SECRET: &str = "lambda-client-secret-0123456789";
const DOMAIN: &str = "abc123.execute-api.us-east-1.amazonaws.com";
const RAW_QUERY: &str = "source=hubspot%3Aprod&list=%28a%2Cb%29&sp=a%20b";

fn state(db: &TestDb) -> WebhookState {
    let config = WebhookConfig::from_lookup(|name| (name == "HUBSPOT_CLIENT_SECRET").then(|| SECRET.to_owned()))
        .expect("config");
    // Unknown event types never call HubSpot; the client only has to exist.
    let hubspot = HubSpotClient::new(HubSpotConfig::new(
        "http://127.0.0.1:9",
        "unused-token".to_owned().into(),
    ))
    .expect("client");
    WebhookState::new(
        &config,
        Applier::new(db.pool().clone(), hubspot, None),
        ApplyMode::Inline,
    )
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
    let now = chrono::Utc::now().timestamp_millis();
    let signature = sign_v3(SECRET, "POST", signed_uri, body.as_bytes(), now);
    let request = lambda_http::request::from_str(&event(&body, &signature, now)).expect("API Gateway event");
    app.oneshot(request).await.expect("response").status()
}

#[tokio::test]
async fn a_request_signed_for_the_api_gateway_domain_with_an_encoded_query_is_accepted_and_stored() {
    let db = TestDb::new().await;
    let app = hubspot_webhook::app(state(&db));
    let public = format!("https://{DOMAIN}/webhooks/hubspot?{RAW_QUERY}");
    assert_eq!(deliver(app, &public).await, StatusCode::OK);
    let client = db.pool().get().await.unwrap();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM crmsync.webhook_inbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn a_request_signed_for_the_internal_host_is_refused_and_nothing_is_stored() {
    let db = TestDb::new().await;
    let app = hubspot_webhook::app(state(&db));
    let internal = format!("https://internal.example/webhooks/hubspot?{RAW_QUERY}");
    assert_eq!(deliver(app, &internal).await, StatusCode::UNAUTHORIZED);
    let client = db.pool().get().await.unwrap();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM crmsync.webhook_inbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
}

#[test]
fn outside_lambda_there_is_no_public_uri_from_the_environment() {
    let request = lambda_http::http::Request::post("/webhooks/hubspot").body(()).unwrap();
    assert_eq!(hubspot_webhook::lambda_public_uri(&request), None);
}
