//! The api Lambda's router takes lambda_http's request type and serves the dashboard and the authenticated API.

use crmsync_app::kick::DrainKicker;
use crmsync_http::api::ApiConfig;
use crmsync_testkit::TestApp;
use lambda_http::http::{Request, StatusCode, header};
use lambda_http::{Body, tower::ServiceExt};

const TOKEN: &str = "lambda-test-token-0123456789";

async fn status(app: axum::Router, path: &str, token: Option<&str>) -> StatusCode {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Body::Empty).expect("request");
    app.oneshot(request).await.expect("response").status()
}

#[tokio::test]
async fn the_function_serves_the_dashboard_publicly_and_the_api_behind_the_token() {
    let test_app = TestApp::new().await;
    let app = api::app(test_app.pool().clone(), &ApiConfig::with_token(TOKEN), DrainKicker::Off);
    assert_eq!(status(app.clone(), "/", None).await, StatusCode::OK);
    assert_eq!(status(app.clone(), "/api/deals", None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(app.clone(), "/api/deals", Some(TOKEN)).await, StatusCode::OK);
    assert_eq!(status(app, "/api/dashboard/stats", Some(TOKEN)).await, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_database_gets_a_503_within_five_seconds() {
    let silent = crmsync_testkit::SilentServer::start().await;
    let app = api::app(
        silent.pool(crmsync_app::Timeouts::API),
        &ApiConfig::with_token(TOKEN),
        DrainKicker::Off,
    );
    let started = std::time::Instant::now();
    assert_eq!(
        status(app.clone(), "/api/deals", Some(TOKEN)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let waited = started.elapsed();
    assert!(waited < std::time::Duration::from_secs(5), "answered after {waited:?}");
    // The dashboard page itself needs no database.
    assert_eq!(status(app, "/", None).await, StatusCode::OK);
}
