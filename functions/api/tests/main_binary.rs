//! The api binary's `main` under a local Lambda Runtime API, answering API Gateway HTTP API (payload 2.0)
//! requests routed as template.yaml routes them (`GET /` and `ANY /{proxy+}`), against a fresh database.

use crmsync_app::ingest::ingest_matches;
use crmsync_db::PgMatchStore;
use crmsync_db::test_db::TestDb;
use crmsync_testkit::lambda::{FunctionProcess, HttpApiRequest};
use serde_json::json;

const TOKEN: &str = "main-binary-api-token-0123456789";

async fn start(db: &TestDb) -> FunctionProcess {
    FunctionProcess::start(
        env!("CARGO_BIN_EXE_api"),
        "crmsync-api",
        &[
            ("DATABASE_URL", db.url()),
            ("DATABASE_POOL_SIZE", "2"),
            ("API_TOKEN", TOKEN),
            ("API_CORS_ORIGINS", ""),
        ],
    )
    .await
}

/// A request matched by the `ANY /{proxy+}` route.
fn api_request(method: &str, path: &str) -> HttpApiRequest {
    HttpApiRequest::new(method, path)
        .route("ANY /{proxy+}")
        .path_parameter("proxy", path.trim_start_matches('/'))
}

async fn seed_one_deal(db: &TestDb) {
    let event = json!({ "opportunity": { "notice_id": "API-BIN-1", "title": "Cloud migration" },
                        "contractor": { "uei": "APIBINUEI001", "name": "Nimbus LLC" }, "match_score": 64 });
    ingest_matches(&PgMatchStore::new(db.pool().clone()), &event, "test")
        .await
        .expect("ingest");
}

#[tokio::test]
async fn the_deals_page_needs_the_bearer_token_and_then_lists_the_deals() {
    let db = TestDb::new().await;
    seed_one_deal(&db).await;
    let function = start(&db).await;

    let refused = function
        .request(&api_request("GET", "/api/deals").query("limit=10"))
        .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.json()["error"]["code"], "unauthorized", "{}", refused.body);

    let page = function
        .request(
            &api_request("GET", "/api/deals")
                .query("limit=10")
                .header("Authorization", &format!("Bearer {TOKEN}")),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["items"][0]["company_name"], "Nimbus LLC", "{page}");
    assert_eq!(page["next_cursor"], json!(null), "{page}");
}

#[tokio::test]
async fn the_dashboard_page_is_served_at_the_root() {
    let db = TestDb::new().await;
    let function = start(&db).await;
    let page = function.request(&HttpApiRequest::new("GET", "/").route("GET /")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.header("content-type").is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        page.headers
    );
    assert!(page.body.contains("<title>crmsync dashboard</title>"), "{}", page.body);
}

#[tokio::test]
async fn a_contact_posted_as_json_is_created() {
    let db = TestDb::new().await;
    let function = start(&db).await;
    let created = function
        .request(
            &api_request("POST", "/api/contacts")
                .header("Authorization", &format!("Bearer {TOKEN}"))
                .json(&json!({ "full_name": "Grace Hopper", "email": "grace@main-binary.example" })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let contact = created.json();
    assert_eq!(contact["full_name"], "Grace Hopper", "{contact}");
    assert_eq!(contact["hubspot_sync_status"], "pending", "{contact}");

    // A warm start: the same process and pool list it.
    let listed = function
        .request(&api_request("GET", "/api/contacts").header("Authorization", &format!("Bearer {TOKEN}")))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.json()["items"][0]["id"], contact["id"], "{}", listed.body);
}
