//! The HTTP router without a server (tower `oneshot`), over a fresh database.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use crmsync_testkit::{TestApp, send};
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789";

async fn call(app: &TestApp, request: Request<Body>) -> (StatusCode, Value) {
    let answer = send(app.ingest_router(TOKEN), request).await;
    (answer.status, answer.body)
}

fn post(token: Option<&str>, body: &str) -> Request<Body> {
    let mut builder = Request::post("/ingest/matches").header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::from(body.to_owned())).expect("request")
}

fn one_match() -> String {
    json!({
        "opportunity": { "notice_id": "HTTP-1", "title": "Help desk support", "estimated_value": 1000 },
        "contractor": { "uei": "HTTPUEI00001", "name": "Desk Co", "readiness_score": 50 },
        "match_score": 75
    })
    .to_string()
}

#[tokio::test]
async fn ingestion_requires_the_bearer_token() {
    let app = TestApp::new().await;
    for token in [None, Some("wrong-token-0123456789"), Some("short")] {
        let (status, body) = call(&app, post(token, &one_match())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(app.count("deals").await, 0, "nothing was written without a token");
}

#[tokio::test]
async fn an_authorized_delivery_returns_the_same_report_as_the_cli() {
    let app = TestApp::new().await;
    let (status, body) = call(&app, post(Some(TOKEN), &one_match())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "companies_created": 1, "companies_updated": 0, "deals_created": 1, "deals_updated": 0,
                "unchanged": 0, "queued": 2, "rejected": [] })
    );
}

#[tokio::test]
async fn malformed_json_and_unusable_events_are_400s_that_name_the_problem() {
    let app = TestApp::new().await;
    let (status, body) = call(&app, post(Some(TOKEN), "{\"matches\": [")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_json");
    let (status, body) = call(&app, post(Some(TOKEN), "{\"matches\": 5}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_event");
    assert_eq!(body["error"]["field"], "matches");
}

#[tokio::test]
async fn healthz_is_public_and_reports_the_database() {
    let app = TestApp::new().await;
    let (status, body) = call(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["database"], "ok");
}
