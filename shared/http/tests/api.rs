//! The dashboard REST API and the web dashboard through the real router (tower `oneshot`, no server), each test
//! over its own fresh PostgreSQL database.

use std::ops::Deref;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use crmsync_domain::sync::RetryDecision;
use crmsync_http::api::{ApiConfig, JwtRules, RequiredClaim};
use crmsync_testkit::{Answer, TestApp, send};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "api-test-token-0123456789";
const JWT_SECRET: &str = "jwt-test-secret-that-is-long-enough-0123456789";
const ORIGIN: &str = "https://crm.example.com";

/// Fixed ids for the seeded records.
const ALPHA: &str = "00000000-0000-4000-8000-0000000000c1";
const BETA: &str = "00000000-0000-4000-8000-0000000000c2";
const DEAL_A1: &str = "00000000-0000-4000-8000-0000000000a1";
const DEAL_A2: &str = "00000000-0000-4000-8000-0000000000a2";
const DEAL_B1: &str = "00000000-0000-4000-8000-0000000000b1";
const DEAL_B2_WON: &str = "00000000-0000-4000-8000-0000000000b2";
const ADA: &str = "00000000-0000-4000-8000-0000000000d1";

const SEED: &str = "
INSERT INTO companies (id, name, uei, readiness_score, qualification_status) VALUES
  ('00000000-0000-4000-8000-0000000000c1', 'Alpha Federal', 'AAAAAAAAAAA1', 90, 'qualified'),
  ('00000000-0000-4000-8000-0000000000c2', 'Beta Systems', 'BBBBBBBBBBB2', 70, 'unqualified'),
  ('00000000-0000-4000-8000-0000000000c3', '100% Gamma_Works', 'CCCCCCCCCCC3', 85, 'qualified');
INSERT INTO deals (id, company_id, deal_name, deal_value, stage, priority, closed_at) VALUES
  ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000c1', 'Cloud migration - Alpha', 100, 'new_match', 'high', NULL),
  ('00000000-0000-4000-8000-0000000000a2', '00000000-0000-4000-8000-0000000000c1', 'Cyber audit - Alpha', 300, 'qualified', 'medium', NULL),
  ('00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-0000000000c2', 'Help desk - Beta', 50, 'new_match', 'medium', NULL),
  ('00000000-0000-4000-8000-0000000000b2', '00000000-0000-4000-8000-0000000000c2', 'Data center - Beta', 999, 'closed_won', 'low', '2026-10-05T12:00:00Z');
INSERT INTO contacts (id, company_id, full_name, email) VALUES
  ('00000000-0000-4000-8000-0000000000d1', '00000000-0000-4000-8000-0000000000c1', 'Ada Lovelace', 'ada@alpha.example');
INSERT INTO activities (activity_type, subject, company_id, contact_id, created_at) VALUES
  ('call', 'Intro call', '00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000d1', '2026-11-01T10:00:00Z');
";

/// The app with one API instance (a router with its own statistics cache), as one Lambda.
struct ApiApp {
    app: TestApp,
    router: Router,
}

impl Deref for ApiApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// The Supabase project's auth URL (API_JWT_ISSUER).
const ISSUER: &str = "https://abcdefgh.supabase.co/auth/v1";

/// The API's configuration: the bearer token, the Supabase JWT secret with its issuer and one allowed user, and
/// one allowed origin.
fn api_config() -> ApiConfig {
    ApiConfig {
        api_token: Some(SecretString::from(TOKEN)),
        jwt_secret: Some(SecretString::from(JWT_SECRET)),
        jwt_rules: JwtRules {
            allowed_emails: vec!["ada@alpha.example".into()],
            ..JwtRules::for_issuer(ISSUER)
        },
        cors_origins: vec![ORIGIN.parse().unwrap()],
    }
}

impl ApiApp {
    async fn new() -> Self {
        let app = TestApp::new().await;
        let router = app.api_router(&api_config());
        Self { app, router }
    }

    async fn seeded() -> Self {
        let app = Self::new().await;
        app.execute(SEED).await;
        app
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        send(self.router.clone(), request).await
    }

    async fn get_as(&self, path: &str, authorization: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.get_as(path, Some(&format!("Bearer {TOKEN}"))).await
    }

    async fn post_as(&self, path: &str, body: &Value, authorization: &str) -> Answer {
        let request = Request::post(path)
            .header(header::AUTHORIZATION, authorization)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_as(path, &body, &format!("Bearer {TOKEN}")).await
    }
}

fn jwt(algorithm: Algorithm, secret: &str, claims: &Value) -> String {
    let token = jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    format!("Bearer {token}")
}

fn in_an_hour() -> i64 {
    chrono::Utc::now().timestamp() + 3600
}

fn assert_error(answer: &Answer, status: StatusCode, code: &str, field: Option<&str>) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.text);
    assert_eq!(answer.body["error"]["field"].as_str(), field, "{}", answer.text);
    assert!(
        answer.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        answer.text
    );
}

fn ids(answer: &Answer) -> Vec<String> {
    answer.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", answer.text))
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Authentication, CORS and the page

const EVERY_ROUTE: [(&str, &str); 12] = [
    ("GET", "/api/openapi.json"),
    ("GET", "/api/dashboard/stats"),
    ("GET", "/api/deals"),
    ("GET", "/api/deals/00000000-0000-4000-8000-0000000000a1"),
    ("POST", "/api/deals/00000000-0000-4000-8000-0000000000a1/stage"),
    ("GET", "/api/companies"),
    ("GET", "/api/companies/00000000-0000-4000-8000-0000000000c1"),
    ("GET", "/api/contacts"),
    ("POST", "/api/contacts"),
    ("GET", "/api/activities"),
    ("POST", "/api/activities"),
    ("GET", "/api/sync/conflicts"),
];

#[tokio::test]
async fn every_api_route_answers_401_with_a_bearer_challenge_without_valid_credentials() {
    let app = ApiApp::seeded().await;
    for (method, path) in EVERY_ROUTE {
        for authorization in [None, Some("Bearer wrong-token-0123456789abc"), Some(TOKEN)] {
            let mut request = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(path)
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(authorization) = authorization {
                request = request.header(header::AUTHORIZATION, authorization);
            }
            let answer = app
                .send(request.body(Body::from(r#"{"stage":"closed_won"}"#)).unwrap())
                .await;
            assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized", None);
            let challenge = answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{method} {path}: {challenge}");
        }
    }
    assert_eq!(
        app.count("sync_queue").await,
        0,
        "nothing was written without credentials"
    );
    assert_eq!(app.count("deals WHERE stage = 'closed_won'").await, 1);
}

#[tokio::test]
async fn an_unknown_api_path_is_a_json_404_only_with_credentials() {
    let app = ApiApp::seeded().await;
    for path in [
        "/api/nothing-here",
        "/api/deals/00000000-0000-4000-8000-0000000000a1/nothing",
    ] {
        let unauthenticated = app.get_as(path, None).await;
        assert_error(&unauthenticated, StatusCode::UNAUTHORIZED, "unauthorized", None);
        let answer = app.get(path).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found", None);
        assert!(
            answer.body["error"]["message"].as_str().unwrap().contains(path),
            "{}",
            answer.text
        );
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_naming_the_allowed_methods_only_with_credentials() {
    let app = ApiApp::seeded().await;
    for (method, path, allowed) in [
        ("DELETE", "/api/deals", "GET"),
        ("GET", "/api/deals/00000000-0000-4000-8000-0000000000a1/stage", "POST"),
        ("PUT", "/api/contacts", "GET"),
        ("PATCH", "/api/dashboard/stats", "GET"),
    ] {
        let request = |authorization: Option<String>| {
            let mut request = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(path);
            if let Some(authorization) = authorization {
                request = request.header(header::AUTHORIZATION, authorization);
            }
            request.body(Body::empty()).unwrap()
        };
        let unauthenticated = app.send(request(None)).await;
        assert_error(&unauthenticated, StatusCode::UNAUTHORIZED, "unauthorized", None);
        let answer = app.send(request(Some(format!("Bearer {TOKEN}")))).await;
        assert_error(&answer, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None);
        let allow = answer.headers[header::ALLOW].to_str().unwrap();
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow}");
        assert!(!allow.contains(method), "{method} {path}: Allow {allow}");
    }
    assert_eq!(app.count("sync_queue").await, 0);
}

#[tokio::test]
async fn the_bare_api_path_and_unknown_paths_outside_it_are_json_404s() {
    let app = ApiApp::new().await;
    let unauthenticated = app.get_as("/api", None).await;
    assert_error(&unauthenticated, StatusCode::UNAUTHORIZED, "unauthorized", None);
    assert_error(&app.get("/api").await, StatusCode::NOT_FOUND, "not_found", None);
    // Outside /api there is no data to guard: the page is public, and so is its 404.
    for path in ["/nothing-here", "/assets/missing.js"] {
        let answer = app.get_as(path, None).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found", None);
    }
    let posted = app.post_as("/", &json!({}), "Bearer x").await;
    assert_error(&posted, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None);
    assert!(posted.headers[header::ALLOW].to_str().unwrap().contains("GET"));
}

#[tokio::test]
async fn a_supabase_user_jwt_is_accepted_and_recorded_as_the_author_of_what_it_logs() {
    let app = ApiApp::seeded().await;
    let authorization = jwt(
        Algorithm::HS256,
        JWT_SECRET,
        &json!({ "iss": ISSUER, "sub": "user-42", "role": "authenticated", "aud": "authenticated",
                 "email": "ada@alpha.example", "exp": in_an_hour() }),
    );
    assert_eq!(
        app.get_as("/api/deals", Some(&authorization)).await.status,
        StatusCode::OK
    );
    let answer = app
        .post_as(
            "/api/activities",
            &json!({ "activity_type": "note", "subject": "Met at the expo", "deal_id": DEAL_A1 }),
            &authorization,
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.body["created_by"], "user:user-42");
}

#[tokio::test]
async fn an_expired_jwt_is_refused_as_expired() {
    let app = ApiApp::new().await;
    let authorization = jwt(
        Algorithm::HS256,
        JWT_SECRET,
        &json!({ "iss": ISSUER, "aud": "authenticated", "sub": "user-42", "role": "authenticated",
                 "email": "ada@alpha.example", "exp": chrono::Utc::now().timestamp() - 3600 }),
    );
    let answer = app.get_as("/api/deals", Some(&authorization)).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized", None);
    assert!(answer.body["error"]["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn a_jwt_signed_with_another_secret_is_refused() {
    let app = ApiApp::new().await;
    let authorization = jwt(
        Algorithm::HS256,
        "a-different-secret-that-is-also-long-enough-42",
        &json!({ "role": "authenticated", "exp": in_an_hour() }),
    );
    let answer = app.get_as("/api/deals", Some(&authorization)).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized", None);
}

#[tokio::test]
async fn a_jwt_with_another_algorithm_is_refused_even_when_signed_with_the_secret() {
    let app = ApiApp::new().await;
    for algorithm in [Algorithm::HS384, Algorithm::HS512] {
        let authorization = jwt(
            algorithm,
            JWT_SECRET,
            &json!({ "role": "authenticated", "exp": in_an_hour() }),
        );
        let answer = app.get_as("/api/deals", Some(&authorization)).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized", None);
    }
}

#[tokio::test]
async fn supabases_public_anon_key_does_not_open_the_api() {
    let app = ApiApp::new().await;
    let authorization = jwt(
        Algorithm::HS256,
        JWT_SECRET,
        &json!({ "iss": "supabase", "ref": "abcdefgh", "role": "anon", "exp": in_an_hour() }),
    );
    let answer = app.get_as("/api/deals", Some(&authorization)).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "forbidden", None);
    assert!(answer.body["error"]["message"].as_str().unwrap().contains("role"));
}

/// A Supabase session token for `email` with `changes` applied to its claims (a null removes a claim).
fn session_token(email: &str, changes: Value) -> String {
    let mut claims = json!({
        "iss": ISSUER, "aud": "authenticated", "sub": "user-7", "role": "authenticated", "email": email,
        "iat": chrono::Utc::now().timestamp(), "exp": in_an_hour(),
    });
    let Value::Object(changes) = changes else {
        panic!("claims are an object")
    };
    for (key, value) in changes {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(&key);
        } else {
            claims[key] = value;
        }
    }
    jwt(Algorithm::HS256, JWT_SECRET, &claims)
}

#[tokio::test]
async fn jwts_from_another_issuer_for_another_audience_expired_or_not_yet_valid_get_401_naming_the_claim() {
    let app = ApiApp::new().await;
    let now = chrono::Utc::now().timestamp();
    for (changes, says) in [
        (
            json!({ "iss": "https://another-project.supabase.co/auth/v1" }),
            "issuer",
        ),
        (json!({ "iss": null }), "issuer"),
        (json!({ "aud": "anon" }), "audience"),
        (json!({ "aud": null }), "audience"),
        (json!({ "exp": now - 120 }), "expired"),
        (json!({ "nbf": now + 600 }), "nbf"),
    ] {
        let answer = app
            .get_as("/api/deals", Some(&session_token("ada@alpha.example", changes.clone())))
            .await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized", None);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{changes}: {message}");
        assert!(
            answer.headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
}

#[tokio::test]
async fn only_the_allow_list_gets_in_service_role_and_allowed_users_not_whoever_signed_up() {
    let app = ApiApp::new().await;
    // Anyone can sign up on a default Supabase project: a genuine token of a user not on the list is a 403.
    for (token, says) in [
        (session_token("mallory@example.com", json!({})), "allow-list"),
        (session_token("ada@alpha.example", json!({ "role": "anon" })), "role"),
        (
            session_token("ada@alpha.example", json!({ "role": "supabase_admin" })),
            "role",
        ),
    ] {
        let answer = app.get_as("/api/deals", Some(&token)).await;
        assert_error(&answer, StatusCode::FORBIDDEN, "forbidden", None);
        assert!(
            answer.body["error"]["message"].as_str().unwrap().contains(says),
            "{}",
            answer.text
        );
    }
    // The allowed user (whatever the case of the email), and the project's service_role key, get in.
    let allowed = session_token("Ada@Alpha.example", json!({}));
    assert_eq!(app.get_as("/api/deals", Some(&allowed)).await.status, StatusCode::OK);
    let service_key = jwt(
        Algorithm::HS256,
        JWT_SECRET,
        &json!({ "iss": "supabase", "ref": "abcdefgh", "role": "service_role", "iat": 1_700_000_000, "exp": in_an_hour() }),
    );
    assert_eq!(
        app.get_as("/api/deals", Some(&service_key)).await.status,
        StatusCode::OK
    );
    // Another project's service key (same secret reused, another ref) is not this project's.
    let other_project = jwt(
        Algorithm::HS256,
        JWT_SECRET,
        &json!({ "iss": "supabase", "ref": "zzzzzzzz", "role": "service_role", "exp": in_an_hour() }),
    );
    let answer = app.get_as("/api/deals", Some(&other_project)).await;
    assert_error(&answer, StatusCode::UNAUTHORIZED, "unauthorized", None);
}

#[tokio::test]
async fn a_custom_claim_lets_users_in_when_configured() {
    let app = TestApp::new().await;
    let mut config = api_config();
    config.jwt_rules.allowed_emails.clear();
    config.jwt_rules.required_claim = Some(RequiredClaim {
        path: vec!["app_metadata".into(), "crmsync_role".into()],
        value: "sales".into(),
    });
    let router = app.api_router(&config);
    let sales = session_token(
        "bob@example.com",
        json!({ "app_metadata": { "crmsync_role": "sales" } }),
    );
    let answer = send(router.clone(), authorized_get("/api/deals", &sales)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // user_metadata is the user's own to edit: it does not count.
    let forged = session_token(
        "bob@example.com",
        json!({ "user_metadata": { "crmsync_role": "sales" } }),
    );
    let answer = send(router, authorized_get("/api/deals", &forged)).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "forbidden", None);
}

fn authorized_get(path: &str, authorization: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, authorization)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn the_dashboard_page_and_its_assets_are_public_with_a_strict_content_security_policy() {
    let app = ApiApp::new().await;
    let page = app.get_as("/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains("<title>crmsync dashboard</title>"));
    assert!(page.text.contains("/assets/dashboard.js"));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    for (path, kind) in [
        ("/assets/dashboard.js", "text/javascript"),
        ("/assets/dashboard.css", "text/css"),
    ] {
        let asset = app.get_as(path, None).await;
        assert_eq!(asset.status, StatusCode::OK, "{path}");
        assert!(
            asset.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind),
            "{path}"
        );
    }
    let script = app.get_as("/assets/dashboard.js", None).await.text;
    assert!(script.contains("sessionStorage"), "the token is kept per tab");
    assert!(!script.contains("innerHTML"), "API data is set as text, never as HTML");
}

#[tokio::test]
async fn a_preflight_from_the_configured_origin_is_allowed_without_a_token_and_others_are_not() {
    let app = ApiApp::new().await;
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/deals")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = app.send(preflight(ORIGIN)).await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(allowed.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
    let allowed_headers = allowed.headers[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap();
    assert!(allowed_headers.contains("authorization"), "{allowed_headers}");
    let other = app.send(preflight("https://evil.example.net")).await;
    assert!(other.headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    let request = Request::get("/api/deals")
        .header(header::ORIGIN, ORIGIN)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let answer = app.send(request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_behind_the_bearer_scheme() {
    let app = ApiApp::new().await;
    let answer = app.get("/api/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    for (method, path) in &EVERY_ROUTE[1..] {
        let template = path
            .replace("00000000-0000-4000-8000-0000000000a1", "{id}")
            .replace("00000000-0000-4000-8000-0000000000c1", "{id}");
        let operation = &doc["paths"][&template][method.to_lowercase()];
        assert!(operation.is_object(), "{method} {template} is documented");
        assert!(
            operation["responses"]["401"].is_object(),
            "{method} {template} documents 401"
        );
    }
    assert_eq!(doc["security"], json!([{ "bearer": [] }]));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let stages = &doc["components"]["schemas"]["StageMoveBody"]["properties"]["stage"]["enum"];
    assert_eq!(stages.as_array().map(Vec::len), Some(8), "{stages}");
}

// ---------------------------------------------------------------------------------------------------------------
// Deals

#[tokio::test]
async fn deals_are_listed_with_their_company_and_filtered_by_stage_priority_and_company() {
    let app = ApiApp::seeded().await;
    let all = app.get("/api/deals").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(ids(&all), [DEAL_A1, DEAL_A2, DEAL_B1, DEAL_B2_WON], "id order");
    assert_eq!(all.body["next_cursor"], Value::Null);
    let first = &all.body["items"][0];
    assert_eq!(first["company_name"], "Alpha Federal");
    assert_eq!(first["deal_value"], "100.00", "money is a decimal string");
    assert_eq!(first["stage"], "new_match");

    assert_eq!(ids(&app.get("/api/deals?stage=new_match").await), [DEAL_A1, DEAL_B1]);
    assert_eq!(ids(&app.get("/api/deals?priority=medium").await), [DEAL_A2, DEAL_B1]);
    assert_eq!(
        ids(&app.get(&format!("/api/deals?company_id={BETA}")).await),
        [DEAL_B1, DEAL_B2_WON]
    );
    assert_eq!(
        ids(&app
            .get(&format!("/api/deals?stage=new_match&company_id={ALPHA}&priority=high"))
            .await),
        [DEAL_A1]
    );
    assert_eq!(
        ids(&app.get("/api/deals?stage=negotiation").await),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn deal_pages_follow_the_cursor_until_every_deal_was_seen_exactly_once() {
    let app = ApiApp::seeded().await;
    app.execute(
        "INSERT INTO deals (company_id, deal_name, stage)
         SELECT '00000000-0000-4000-8000-0000000000c3', 'Bulk ' || n, 'contact_made' FROM generate_series(1, 41) n",
    )
    .await;
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/deals?limit=20&cursor={cursor}"),
            None => "/api/deals?limit=20".to_owned(),
        };
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let page_ids = ids(&page);
        sizes.push(page_ids.len());
        seen.extend(page_ids.clone());
        match page.body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(
                    Some(next),
                    page_ids.last().map(String::as_str),
                    "the cursor is the last id"
                );
                cursor = Some(next.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(sizes, [20, 20, 5]);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "45 distinct deals, in id order, none twice");

    let filtered_first = app.get("/api/deals?stage=contact_made&limit=40").await;
    let cursor = filtered_first.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .get(&format!("/api/deals?stage=contact_made&limit=40&cursor={cursor}"))
        .await;
    assert_eq!(ids(&rest).len(), 1, "the cursor keeps the filter's place");
    assert_eq!(rest.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn the_page_size_defaults_to_twenty_and_must_be_from_one_to_a_hundred() {
    let app = ApiApp::new().await;
    app.execute("INSERT INTO deals (deal_name) SELECT 'D' || n FROM generate_series(1, 120) n")
        .await;
    assert_eq!(ids(&app.get("/api/deals").await).len(), 20);
    assert_eq!(ids(&app.get("/api/deals?limit=100").await).len(), 100);
    assert_eq!(ids(&app.get("/api/deals?limit=1").await).len(), 1);
    for bad in ["0", "101", "-1", "ten", "1e3", ""] {
        let answer = app.get(&format!("/api/deals?limit={bad}")).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_parameter", Some("limit"));
    }
}

#[tokio::test]
async fn bad_filters_are_400s_that_name_the_parameter() {
    let app = ApiApp::seeded().await;
    let cases = [
        ("/api/deals?stage=won", "stage"),
        ("/api/deals?stage=", "stage"),
        ("/api/deals?priority=urgent", "priority"),
        ("/api/deals?company_id=not-a-uuid", "company_id"),
        ("/api/deals?cursor=12345", "cursor"),
        ("/api/companies?qualification_status=maybe", "qualification_status"),
        ("/api/companies?q=%00", "q"),
        ("/api/contacts?company_id=xyz", "company_id"),
        ("/api/activities?deal_id=1", "deal_id"),
        ("/api/activities?limit=500", "limit"),
    ];
    for (path, field) in cases {
        let answer = app.get(path).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_parameter", Some(field));
    }
    let unknown_stage = app.get("/api/deals?stage=won").await;
    assert!(
        unknown_stage.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("closed_won"),
        "the message lists the stages: {}",
        unknown_stage.text
    );
}

#[tokio::test]
async fn a_deal_is_shown_by_id_and_malformed_or_unknown_ids_are_400_and_404() {
    let app = ApiApp::seeded().await;
    let deal = app.get(&format!("/api/deals/{DEAL_B2_WON}")).await;
    assert_eq!(deal.status, StatusCode::OK);
    assert_eq!(deal.body["deal_name"], "Data center - Beta");
    assert_eq!(deal.body["closed_at"], "2026-10-05T12:00:00Z");
    let malformed = app.get("/api/deals/12").await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "invalid_parameter", Some("id"));
    let missing = app.get(&format!("/api/deals/{}", Uuid::new_v4())).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", Some("id"));
}

#[tokio::test]
async fn moving_a_deal_to_closed_won_sets_closed_at_logs_a_stage_change_and_queues_the_update() {
    let app = ApiApp::seeded().await;
    let answer = app
        .post(&format!("/api/deals/{DEAL_A2}/stage"), json!({ "stage": "closed_won" }))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["changed"], true);
    assert_eq!(answer.body["previous_stage"], "qualified");
    assert_eq!(answer.body["deal"]["stage"], "closed_won");
    assert!(answer.body["deal"]["closed_at"].is_string());
    assert_eq!(answer.body["deal"]["hubspot_sync_status"], "pending");
    let activity = &answer.body["activity"];
    assert_eq!(activity["activity_type"], "stage_change");
    assert_eq!(activity["subject"], "Stage changed from qualified to closed_won");
    assert_eq!(activity["deal_id"], DEAL_A2);
    assert_eq!(activity["company_id"], ALPHA, "the deal's company");
    assert_eq!(activity["created_by"], "api_token");
    assert_eq!(activity["hubspot_sync_status"], "local_only");

    let queued = app.queue_rows(DEAL_A2).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].entity_type, "deal");
    assert_eq!(queued[0].operation, "update");
    assert_eq!(queued[0].status, "pending");
    assert_eq!(queued[0].payload["stage"], "closed_won");
    assert_eq!(queued[0].payload["previous_stage"], "qualified");
    assert_eq!(
        app.count("sync_queue WHERE entity_type <> 'deal'").await,
        0,
        "a stage_change activity stays local"
    );
}

#[tokio::test]
async fn moving_a_deal_deleted_in_hubspot_is_a_409_that_changes_and_queues_nothing() {
    let app = ApiApp::seeded().await;
    app.execute(&format!(
        "UPDATE deals SET hubspot_sync_status = 'deleted' WHERE id = '{DEAL_B2_WON}'"
    ))
    .await;
    let activities = app.count("activities").await;
    let answer = app
        .post(
            &format!("/api/deals/{DEAL_B2_WON}/stage"),
            json!({ "stage": "negotiation" }),
        )
        .await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict", Some("id"));
    assert_eq!(
        app.deal(DEAL_B2_WON).await.stage,
        "closed_won",
        "the stage is unchanged"
    );
    assert_eq!(app.count("activities").await, activities);
    assert_eq!(app.count("sync_queue").await, 0);
}

#[tokio::test]
async fn moving_a_closed_deal_back_to_an_open_stage_clears_closed_at() {
    let app = ApiApp::seeded().await;
    let answer = app
        .post(
            &format!("/api/deals/{DEAL_B2_WON}/stage"),
            json!({ "stage": "negotiation" }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["deal"]["stage"], "negotiation");
    assert_eq!(answer.body["deal"]["closed_at"], Value::Null);
    let lost = app
        .post(
            &format!("/api/deals/{DEAL_B2_WON}/stage"),
            json!({ "stage": "closed_lost" }),
        )
        .await;
    assert!(lost.body["deal"]["closed_at"].is_string());
    assert_eq!(app.count("activities WHERE activity_type = 'stage_change'").await, 2);
}

#[tokio::test]
async fn moving_a_deal_to_the_stage_it_is_in_changes_and_queues_nothing() {
    let app = ApiApp::seeded().await;
    let answer = app
        .post(&format!("/api/deals/{DEAL_A1}/stage"), json!({ "stage": "new_match" }))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["changed"], false);
    assert_eq!(answer.body["activity"], Value::Null);
    assert_eq!(app.count("sync_queue").await, 0);
    assert_eq!(app.count("activities WHERE activity_type = 'stage_change'").await, 0);
}

#[tokio::test]
async fn bad_stage_moves_are_refused_and_change_nothing() {
    let app = ApiApp::seeded().await;
    let path = format!("/api/deals/{DEAL_A1}/stage");
    let unknown = app.post(&path, json!({ "stage": "won" })).await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "invalid_parameter", Some("stage"));
    let wrong_type = app.post(&path, json!({ "stage": 3 })).await;
    assert_error(&wrong_type, StatusCode::BAD_REQUEST, "invalid_parameter", Some("stage"));
    let missing_field = app.post(&path, json!({})).await;
    assert_error(&missing_field, StatusCode::BAD_REQUEST, "invalid_body", None);
    let extra_field = app.post(&path, json!({ "stage": "qualified", "force": true })).await;
    assert_error(
        &extra_field,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        Some("force"),
    );
    let missing_deal = app
        .post(
            &format!("/api/deals/{}/stage", Uuid::new_v4()),
            json!({ "stage": "qualified" }),
        )
        .await;
    assert_error(&missing_deal, StatusCode::NOT_FOUND, "not_found", Some("id"));
    let malformed_id = app.post("/api/deals/nope/stage", json!({ "stage": "qualified" })).await;
    assert_error(&malformed_id, StatusCode::BAD_REQUEST, "invalid_parameter", Some("id"));

    let not_json = app
        .send(
            Request::post(&path)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(r#"{"stage":"qualified"}"#))
                .unwrap(),
        )
        .await;
    assert_error(
        &not_json,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        None,
    );
    let broken_json = app
        .send(
            Request::post(&path)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"stage": "qualified""#))
                .unwrap(),
        )
        .await;
    assert_error(&broken_json, StatusCode::BAD_REQUEST, "invalid_body", None);

    assert_eq!(app.count("sync_queue").await, 0);
    assert_eq!(app.count("deals WHERE stage = 'new_match'").await, 2);
}

// ---------------------------------------------------------------------------------------------------------------
// Companies

#[tokio::test]
async fn companies_are_listed_by_name_and_filtered_by_qualification_and_a_literal_name_search() {
    let app = ApiApp::seeded().await;
    let names = |answer: &Answer| -> Vec<String> {
        answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&app.get("/api/companies").await),
        ["100% Gamma_Works", "Alpha Federal", "Beta Systems"]
    );
    assert_eq!(
        names(&app.get("/api/companies?qualification_status=qualified").await),
        ["100% Gamma_Works", "Alpha Federal"]
    );
    assert_eq!(names(&app.get("/api/companies?q=ALPHA").await), ["Alpha Federal"]);
    assert_eq!(names(&app.get("/api/companies?q=0%25%20g").await), ["100% Gamma_Works"]);
    assert_eq!(
        names(&app.get("/api/companies?q=%25").await),
        ["100% Gamma_Works"],
        "% is matched literally"
    );
    assert_eq!(names(&app.get("/api/companies?q=a_w").await), ["100% Gamma_Works"]);
    assert_eq!(
        names(&app.get("/api/companies?q=").await).len(),
        3,
        "an empty search matches all"
    );

    let first = app.get("/api/companies?limit=2").await;
    assert_eq!(names(&first), ["100% Gamma_Works", "Alpha Federal"]);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(cursor, ALPHA);
    let second = app.get(&format!("/api/companies?limit=2&cursor={cursor}")).await;
    assert_eq!(names(&second), ["Beta Systems"]);
    assert_eq!(second.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_company_is_shown_with_its_engagement_and_an_unknown_one_is_a_404() {
    let app = ApiApp::seeded().await;
    let answer = app.get(&format!("/api/companies/{ALPHA}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["company"]["name"], "Alpha Federal");
    assert_eq!(answer.body["company"]["readiness_score"], "90.00");
    let engagement = &answer.body["engagement"];
    assert_eq!(engagement["total_deals"], 2);
    assert_eq!(engagement["active_deals"], 2);
    assert_eq!(engagement["pipeline_value"], "400.00");
    assert_eq!(engagement["contacts"], 1);
    assert_eq!(engagement["activities"], 1);
    let missing = app.get(&format!("/api/companies/{}", Uuid::new_v4())).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", Some("id"));
}

// ---------------------------------------------------------------------------------------------------------------
// Contacts

#[tokio::test]
async fn a_contact_is_created_and_queued_for_hubspot_in_the_same_transaction() {
    let app = ApiApp::seeded().await;
    let answer = app
        .post(
            "/api/contacts",
            json!({ "full_name": "  Grace Hopper ", "email": "grace@beta.example", "company_id": BETA,
                    "job_title": "CTO", "phone": "", "is_primary": true }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.body["full_name"], "Grace Hopper", "trimmed");
    assert_eq!(answer.body["phone"], Value::Null, "blank is absent");
    assert_eq!(answer.body["source"], "manual");
    assert_eq!(answer.body["hubspot_sync_status"], "pending");
    assert_eq!(answer.body["is_primary"], true);
    let id = answer.body["id"].as_str().unwrap();
    assert_eq!(
        app.count(&format!(
            "sync_queue WHERE entity_type = 'contact' AND operation = 'create'
               AND status = 'pending' AND entity_id = '{id}' AND payload->>'email' = 'grace@beta.example'"
        ))
        .await,
        1
    );
    let listed = app.get(&format!("/api/contacts?company_id={BETA}")).await;
    assert_eq!(ids(&listed), [id]);
    let all = app.get("/api/contacts").await;
    assert_eq!(ids(&all).len(), 2);
}

#[tokio::test]
async fn a_duplicate_email_is_a_409_naming_email_whatever_its_case() {
    let app = ApiApp::seeded().await;
    let answer = app
        .post(
            "/api/contacts",
            json!({ "full_name": "Ada Again", "email": "ADA@Alpha.Example" }),
        )
        .await;
    assert_error(&answer, StatusCode::CONFLICT, "conflict", Some("email"));
    assert_eq!(app.count("contacts").await, 1);
    assert_eq!(
        app.count("sync_queue").await,
        0,
        "the queue row rolled back with the contact"
    );
}

#[tokio::test]
async fn invalid_contacts_are_400s_naming_the_field_and_an_unknown_company_a_404() {
    let app = ApiApp::seeded().await;
    let cases = [
        (json!({ "full_name": "X", "email": "not-an-email" }), "email"),
        (json!({ "full_name": "X", "email": "x@localhost" }), "email"),
        (json!({ "full_name": "   " }), "full_name"),
        (json!({ "full_name": "A\u{0}B" }), "full_name"),
        (json!({ "full_name": "x".repeat(201) }), "full_name"),
        (json!({ "full_name": "X", "company_id": "nope" }), "company_id"),
        (json!({ "full_name": 7 }), "full_name"),
    ];
    for (body, field) in cases {
        let answer = app.post("/api/contacts", body.clone()).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_parameter", Some(field));
    }
    let no_name = app.post("/api/contacts", json!({ "email": "a@b.example" })).await;
    assert_error(&no_name, StatusCode::BAD_REQUEST, "invalid_body", None);
    let unknown_company = app
        .post(
            "/api/contacts",
            json!({ "full_name": "X", "company_id": Uuid::new_v4() }),
        )
        .await;
    assert_error(&unknown_company, StatusCode::NOT_FOUND, "not_found", Some("company_id"));
    assert_eq!(app.count("contacts").await, 1);
    assert_eq!(app.count("sync_queue").await, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Activities

#[tokio::test]
async fn an_activity_on_a_deal_is_logged_under_the_deals_company_and_queued_as_an_engagement() {
    let app = ApiApp::seeded().await;
    let answer = app
        .post(
            "/api/activities",
            json!({ "activity_type": "meeting", "subject": "Capability briefing", "body": "Went well.",
                    "deal_id": DEAL_B1, "occurred_at": "2026-11-20T15:00:00Z" }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.body["company_id"], BETA);
    assert_eq!(answer.body["occurred_at"], "2026-11-20T15:00:00Z");
    assert_eq!(answer.body["hubspot_sync_status"], "pending");
    let id = answer.body["id"].as_str().unwrap();
    assert_eq!(
        app.count(&format!(
            "sync_queue WHERE entity_type = 'activity' AND operation = 'create'
               AND entity_id = '{id}' AND payload->>'activity_type' = 'meeting'"
        ))
        .await,
        1
    );
    let on_contact = app
        .post(
            "/api/activities",
            json!({ "activity_type": "email", "subject": "Follow-up", "contact_id": ADA }),
        )
        .await;
    assert_eq!(on_contact.body["company_id"], ALPHA, "the contact's company");
}

#[tokio::test]
async fn an_activity_needs_a_known_type_and_a_target_that_exists() {
    let app = ApiApp::seeded().await;
    let no_target = app
        .post(
            "/api/activities",
            json!({ "activity_type": "note", "subject": "Orphan" }),
        )
        .await;
    assert_error(
        &no_target,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        Some("deal_id"),
    );
    for internal in ["stage_change", "system", "fax"] {
        let answer = app
            .post(
                "/api/activities",
                json!({ "activity_type": internal, "subject": "S", "deal_id": DEAL_A1 }),
            )
            .await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            Some("activity_type"),
        );
    }
    for field in ["deal_id", "company_id", "contact_id"] {
        let answer = app
            .post(
                "/api/activities",
                json!({ "activity_type": "call", "subject": "S", field: Uuid::new_v4() }),
            )
            .await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found", Some(field));
    }
    let blank = app
        .post(
            "/api/activities",
            json!({ "activity_type": "note", "subject": " ", "deal_id": DEAL_A1 }),
        )
        .await;
    assert_error(&blank, StatusCode::BAD_REQUEST, "invalid_parameter", Some("subject"));
    let bad_time = app
        .post(
            "/api/activities",
            json!({ "activity_type": "note", "subject": "S", "deal_id": DEAL_A1, "occurred_at": "yesterday" }),
        )
        .await;
    assert_error(
        &bad_time,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        Some("occurred_at"),
    );
    assert_eq!(app.count("activities").await, 1);
    assert_eq!(app.count("sync_queue").await, 0);
}

#[tokio::test]
async fn activities_are_listed_newest_first_per_target_and_paginated() {
    let app = ApiApp::seeded().await;
    app.execute(
        "INSERT INTO activities (activity_type, subject, deal_id, company_id, created_at)
         SELECT 'note', 'Note ' || n, '00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000c1',
                '2026-11-10T00:00:00Z'::timestamptz + n * interval '1 minute'
         FROM generate_series(1, 25) n;
         -- two at the same instant: the id breaks the tie
         INSERT INTO activities (activity_type, subject, deal_id, created_at) VALUES
           ('call', 'Tie 1', '00000000-0000-4000-8000-0000000000a1', '2026-11-09T00:00:00Z'),
           ('call', 'Tie 2', '00000000-0000-4000-8000-0000000000a1', '2026-11-09T00:00:00Z');",
    )
    .await;
    let mut subjects = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/activities?deal_id={DEAL_A1}&limit=10&cursor={c}"),
            None => format!("/api/activities?deal_id={DEAL_A1}&limit=10"),
        };
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for item in page.body["items"].as_array().unwrap() {
            subjects.push(item["subject"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(subjects.len(), 27, "{subjects:?}");
    assert_eq!(subjects[0], "Note 25", "newest first");
    assert_eq!(subjects[24], "Note 1");
    let mut ties = subjects[25..].to_vec();
    ties.sort();
    assert_eq!(ties, ["Tie 1", "Tie 2"], "both tied rows, once each");

    let by_contact = app.get(&format!("/api/activities?contact_id={ADA}")).await;
    assert_eq!(by_contact.body["items"][0]["subject"], "Intro call");
    assert_eq!(by_contact.body["items"].as_array().unwrap().len(), 1);
    let by_company = app.get(&format!("/api/activities?company_id={ALPHA}&limit=100")).await;
    assert_eq!(by_company.body["items"].as_array().unwrap().len(), 26);
}

// ---------------------------------------------------------------------------------------------------------------
// Dashboard statistics

#[tokio::test]
async fn dashboard_stats_are_the_guides_four_queries_and_the_syncs_health() {
    let app = ApiApp::seeded().await;
    app.execute(
        "INSERT INTO deals (company_id, deal_name, deal_value, stage, closed_at) VALUES
           ('00000000-0000-4000-8000-0000000000c3', 'G lost', 10, 'closed_lost', '2026-10-20T12:00:00Z'),
           ('00000000-0000-4000-8000-0000000000c3', 'G won', 10, 'closed_won', '2026-11-02T12:00:00Z');
         INSERT INTO sync_queue (entity_type, entity_id, operation, status) VALUES
           ('deal', gen_random_uuid(), 'create', 'pending'), ('deal', gen_random_uuid(), 'create', 'pending'),
           ('company', gen_random_uuid(), 'update', 'failed'), ('deal', gen_random_uuid(), 'update', 'dead'),
           ('deal', gen_random_uuid(), 'update', 'completed');
         INSERT INTO crmsync.sync_runs (trigger, status, started_at, finished_at, counts) VALUES
           ('schedule', 'succeeded', '2026-11-24T10:00:00Z', '2026-11-24T10:00:05Z', '{\"synced\": 3}'),
           ('schedule', 'partial', '2026-11-24T10:05:00Z', '2026-11-24T10:05:04Z', '{\"synced\": 1, \"failed\": 1}');",
    )
    .await;
    let answer = app.get("/api/dashboard/stats").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let stats = &answer.body;
    assert_eq!(
        stats["pipeline"],
        json!([
            { "stage": "new_match", "count": 2, "total_value": "150.00" },
            { "stage": "qualified", "count": 1, "total_value": "300.00" }
        ])
    );
    assert_eq!(
        stats["top_companies"],
        json!([
            { "name": "Alpha Federal", "readiness_score": "90.00", "active_deals": 2, "pipeline_value": "400.00" },
            { "name": "Beta Systems", "readiness_score": "70.00", "active_deals": 1, "pipeline_value": "50.00" }
        ])
    );
    assert_eq!(
        stats["recent_activities"],
        json!([{ "activity_type": "call", "subject": "Intro call", "company_name": "Alpha Federal",
                 "contact_name": "Ada Lovelace", "created_at": "2026-11-01T10:00:00Z",
                 "logged_in": "local", "owner_name": null }])
    );
    assert_eq!(
        stats["win_rate"],
        json!([
            { "month": "2026-11-01T00:00:00Z", "won": 1, "lost": 0, "win_rate_pct": "100.00" },
            { "month": "2026-10-01T00:00:00Z", "won": 1, "lost": 1, "win_rate_pct": "50.00" }
        ])
    );
    let health = &stats["sync_health"];
    assert_eq!(
        (
            health["pending"].as_i64(),
            health["failed"].as_i64(),
            health["dead"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(health["last_run"]["status"], "partial");
    assert_eq!(health["last_run"]["counts"], json!({ "synced": 1, "failed": 1 }));
    assert_eq!(
        (&health["failed_record_count"], &health["failed_records"]),
        (&json!(0), &json!([])),
        "the dead row's record does not exist: no record failed"
    );
}

#[tokio::test]
async fn dashboard_stats_of_an_empty_database_are_empty_with_no_last_run() {
    let app = ApiApp::new().await;
    let answer = app.get("/api/dashboard/stats").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.body,
        json!({ "pipeline": [], "top_companies": [], "recent_activities": [], "win_rate": [],
                "sync_health": { "pending": 0, "failed": 0, "dead": 0, "last_run": null,
                                 "failed_record_count": 0, "failed_records": [] } })
    );
}

#[tokio::test]
async fn dashboard_stats_come_from_the_cache_until_a_write_through_the_api_invalidates_them() {
    let app = ApiApp::seeded().await;
    let cache_status = |answer: &Answer| answer.headers["cache-status"].to_str().unwrap().to_owned();
    let open_new_match = |answer: &Answer| answer.body["pipeline"][0]["count"].as_i64().unwrap();

    let first = app.get("/api/dashboard/stats").await;
    assert_eq!(cache_status(&first), "crmsync; fwd=miss");
    assert_eq!(open_new_match(&first), 2);

    // A change made behind the API's back is not seen while the cache is fresh...
    app.execute("INSERT INTO deals (deal_name, deal_value) VALUES ('Sneaked in', 5)")
        .await;
    let cached = app.get("/api/dashboard/stats").await;
    assert_eq!(cache_status(&cached), "crmsync; hit");
    assert_eq!(open_new_match(&cached), 2, "served from the cache");
    assert_eq!(cached.body, first.body);

    // ...but a write through the API clears it.
    let write = app
        .post(
            "/api/activities",
            json!({ "activity_type": "note", "subject": "Fresh", "company_id": BETA }),
        )
        .await;
    assert_eq!(write.status, StatusCode::CREATED);
    let fresh = app.get("/api/dashboard/stats").await;
    assert_eq!(cache_status(&fresh), "crmsync; fwd=miss");
    assert_eq!(open_new_match(&fresh), 3);
    assert_eq!(fresh.body["recent_activities"][0]["subject"], "Fresh");

    let moved = app
        .post(
            &format!("/api/deals/{DEAL_A1}/stage"),
            json!({ "stage": "closed_lost" }),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    let after_move = app.get("/api/dashboard/stats").await;
    assert_eq!(cache_status(&after_move), "crmsync; fwd=miss");
    assert_eq!(open_new_match(&after_move), 2);
    assert_eq!(after_move.body["recent_activities"][0]["activity_type"], "stage_change");
}

#[tokio::test]
async fn a_write_through_one_instance_invalidates_the_statistics_another_instance_cached() {
    let mut app = ApiApp::seeded().await;
    let cache_status = |answer: &Answer| answer.headers["cache-status"].to_str().unwrap().to_owned();
    let open_new_match = |answer: &Answer| answer.body["pipeline"][0]["count"].as_i64().unwrap();
    assert_eq!(
        cache_status(&app.get("/api/dashboard/stats").await),
        "crmsync; fwd=miss"
    );
    let cached = app.get("/api/dashboard/stats").await;
    assert_eq!(cache_status(&cached), "crmsync; hit");
    assert_eq!(open_new_match(&cached), 2);

    // Another instance (its own process and cache) moves a new_match deal on.
    let second_instance = app.api_router(&api_config());
    let first_instance = std::mem::replace(&mut app.router, second_instance);
    let moved = app
        .post(
            &format!("/api/deals/{DEAL_A1}/stage"),
            json!({ "stage": "closed_lost" }),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);

    app.router = first_instance;
    let after = app.get("/api/dashboard/stats").await;
    assert_eq!(
        cache_status(&after),
        "crmsync; fwd=miss",
        "the first instance's cache was invalidated"
    );
    assert_eq!(open_new_match(&after), 1);
    assert_eq!(after.body["recent_activities"][0]["activity_type"], "stage_change");
}

// ---------------------------------------------------------------------------------------------------------------
// Failure

#[tokio::test]
async fn a_broken_database_is_a_503_that_shows_no_internals() {
    let app = ApiApp::seeded().await;
    app.execute("ALTER TABLE deals RENAME TO deals_elsewhere").await;
    for path in ["/api/deals", "/api/dashboard/stats"] {
        let answer = app.get(path).await;
        assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
        assert!(!answer.text.contains("deals"), "no table names leak: {}", answer.text);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Sync status and conflicts

const HUBSPOT_REFUSED: &str = "permanent: HubSpot refused the input (dealstage 999999 is not a stage)";

/// Queues a change for each `(entity_type, id)` and claims them as the outbound sync does; returns the claimed items
/// by entity id.
async fn claim_changes(app: &ApiApp, records: &[(&str, &str)], lease_holder: &str) -> Vec<(Uuid, Uuid)> {
    for (entity_type, id) in records {
        app.execute(&format!(
            "INSERT INTO sync_queue (entity_type, entity_id, operation) VALUES ('{entity_type}', '{id}', 'update')"
        ))
        .await;
    }
    let claimed = app
        .sync_store()
        .claim(100, std::time::Duration::from_secs(60), lease_holder)
        .await
        .unwrap();
    assert_eq!(claimed.len(), records.len());
    claimed.iter().map(|item| (item.entity_id, item.id)).collect()
}

/// The sync items of these records, out of `claimed`.
fn items_of(claimed: &[(Uuid, Uuid)], ids: &[&str]) -> Vec<Uuid> {
    claimed
        .iter()
        .filter(|(entity, _)| ids.contains(&entity.to_string().as_str()))
        .map(|(_, item)| *item)
        .collect()
}

#[tokio::test]
async fn a_record_whose_sync_item_died_is_failed_with_the_error_in_the_api_until_a_redrive() {
    let app = ApiApp::seeded().await;
    let records = [("deal", DEAL_A1), ("contact", ADA), ("company", ALPHA)];
    let claimed = claim_changes(&app, &records, "run-1").await;
    let store = app.sync_store();
    let dead = items_of(&claimed, &[DEAL_A1, ADA]);
    let written = store
        .fail(
            &dead,
            HUBSPOT_REFUSED,
            RetryDecision::Dead { attempts: 1 },
            false,
            "run-1",
        )
        .await
        .unwrap();
    assert_eq!(written.len(), 2);
    // The company's failure is retryable: it is retried, not failed.
    let retry = RetryDecision::RetryAfter {
        delay: std::time::Duration::from_secs(60),
        attempts: 1,
    };
    let retried = items_of(&claimed, &[ALPHA]);
    store
        .fail(&retried, "retryable: 502", retry, true, "run-1")
        .await
        .unwrap();

    let deal = app.get(&format!("/api/deals/{DEAL_A1}")).await;
    assert_eq!(
        (&deal.body["hubspot_sync_status"], &deal.body["hubspot_sync_error"]),
        (&json!("failed"), &json!(HUBSPOT_REFUSED)),
        "{}",
        deal.text
    );
    let listed = app.get(&format!("/api/deals?company_id={ALPHA}")).await;
    let statuses: Vec<(&str, &Value)> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|deal| {
            (
                deal["hubspot_sync_status"].as_str().unwrap(),
                &deal["hubspot_sync_error"],
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [("failed", &json!(HUBSPOT_REFUSED)), ("pending", &Value::Null)],
        "only the deal whose item died"
    );
    let contacts = app.get(&format!("/api/contacts?company_id={ALPHA}")).await;
    assert_eq!(contacts.body["items"][0]["hubspot_sync_status"], "failed");
    assert_eq!(contacts.body["items"][0]["hubspot_sync_error"], HUBSPOT_REFUSED);
    let company = app.get(&format!("/api/companies/{ALPHA}")).await;
    assert_eq!(
        (
            &company.body["company"]["hubspot_sync_status"],
            &company.body["company"]["hubspot_sync_error"]
        ),
        (&json!("pending"), &Value::Null),
        "a retried item leaves its record pending"
    );

    let stats = app.get("/api/dashboard/stats").await;
    let health = &stats.body["sync_health"];
    assert_eq!(health["failed_record_count"], 2, "{}", stats.text);
    let mut failed: Vec<(String, String, String, String, i64)> = health["failed_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| {
            assert!(record["failed_at"].is_string(), "{record}");
            (
                record["entity_type"].as_str().unwrap().to_owned(),
                record["entity_id"].as_str().unwrap().to_owned(),
                record["entity_name"].as_str().unwrap().to_owned(),
                record["error"].as_str().unwrap().to_owned(),
                record["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            (
                "contact".into(),
                ADA.into(),
                "Ada Lovelace".into(),
                HUBSPOT_REFUSED.into(),
                1
            ),
            (
                "deal".into(),
                DEAL_A1.into(),
                "Cloud migration - Alpha".into(),
                HUBSPOT_REFUSED.into(),
                1
            ),
        ]
    );

    // An operator's redrive: the records are pending again, in the same statement as their items.
    assert_eq!(store.redrive(10).await.unwrap().len(), 2);
    let deal = app.get(&format!("/api/deals/{DEAL_A1}")).await;
    assert_eq!(
        (&deal.body["hubspot_sync_status"], &deal.body["hubspot_sync_error"]),
        (&json!("pending"), &Value::Null)
    );
    let contact = app.get(&format!("/api/contacts?company_id={ALPHA}")).await;
    assert_eq!(contact.body["items"][0]["hubspot_sync_status"], "pending");
    // Another instance, with nothing cached, counts no failed record.
    let fresh = send(
        app.api_router(&api_config()),
        Request::get("/api/dashboard/stats")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(fresh.body["sync_health"]["failed_record_count"], 0, "{}", fresh.text);
    assert_eq!(fresh.body["sync_health"]["failed_records"], json!([]));
}

#[tokio::test]
async fn a_failed_activity_shows_its_error_and_a_record_deleted_in_hubspot_is_never_failed() {
    let app = ApiApp::seeded().await;
    let activity: Uuid = app.scalar("SELECT id FROM activities").await;
    app.execute(&format!(
        "UPDATE deals SET hubspot_sync_status = 'deleted' WHERE id = '{DEAL_B1}'"
    ))
    .await;
    let claimed = claim_changes(&app, &[("activity", &activity.to_string()), ("deal", DEAL_B1)], "run-1").await;
    let items: Vec<Uuid> = claimed.iter().map(|(_, item)| *item).collect();
    let store = app.sync_store();
    store
        .fail(
            &items,
            HUBSPOT_REFUSED,
            RetryDecision::Dead { attempts: 8 },
            false,
            "run-1",
        )
        .await
        .unwrap();
    let activities = app.get(&format!("/api/activities?company_id={ALPHA}")).await;
    assert_eq!(
        (
            &activities.body["items"][0]["hubspot_sync_status"],
            &activities.body["items"][0]["hubspot_sync_error"]
        ),
        (&json!("failed"), &json!(HUBSPOT_REFUSED))
    );
    let deal = app.get(&format!("/api/deals/{DEAL_B1}")).await;
    assert_eq!(
        (&deal.body["hubspot_sync_status"], &deal.body["hubspot_sync_error"]),
        (&json!("deleted"), &Value::Null),
        "deleted in HubSpot stays deleted"
    );
    assert_eq!(store.redrive(10).await.unwrap().len(), 2);
    let deal = app.get(&format!("/api/deals/{DEAL_B1}")).await;
    assert_eq!(
        deal.body["hubspot_sync_status"], "deleted",
        "a redrive does not revive it"
    );
}

/// A conflict to record: (entity_type, entity_id, property, local value, HubSpot value, winner, rule).
type ConflictRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    &'a str,
);

/// Records conflicts as the webhook applier does, oldest first.
async fn record_conflicts(app: &ApiApp, conflicts: &[ConflictRow<'_>]) {
    for (entity_type, id, property, local, hubspot, winner, rule) in conflicts {
        let client = app.pool().get().await.unwrap();
        client
            .execute(
                "INSERT INTO crmsync.sync_conflicts (entity_type, entity_id, hubspot_id, property, local_value,
                   hubspot_value, winner, rule, local_changed_at, hubspot_changed_at)
                 VALUES ($1, $2::text::uuid, 'hs-' || $2, $3, $4, $5, $6, $7,
                   '2026-11-20T09:00:00Z', '2026-11-20T10:30:00Z')",
                &[entity_type, id, property, local, hubspot, winner, rule],
            )
            .await
            .unwrap();
    }
}

/// The conflicts a page holds: (entity_id, property).
fn conflict_keys(answer: &Answer) -> Vec<(String, String)> {
    answer.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", answer.text))
        .iter()
        .map(|c| {
            (
                c["entity_id"].as_str().unwrap().to_owned(),
                c["property"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const GONE: &str = "00000000-0000-4000-8000-00000000dead";

#[tokio::test]
async fn sync_conflicts_are_listed_newest_first_with_both_values_times_the_policy_and_the_winner() {
    let app = ApiApp::seeded().await;
    record_conflicts(
        &app,
        &[
            (
                "deal",
                DEAL_A1,
                "dealname",
                Some("Cloud migration - Alpha"),
                Some("Cloud move"),
                "local",
                "local",
            ),
            (
                "company",
                ALPHA,
                "phone",
                Some("+1 703 555 0100"),
                Some("+1 202 555 0199"),
                "hubspot",
                "two_way",
            ),
            ("deal", DEAL_A1, "amount", Some("100"), None, "local", "two_way"),
            ("contact", GONE, "jobtitle", None, Some("CTO"), "hubspot", "hubspot"),
        ],
    )
    .await;
    let answer = app.get("/api/sync/conflicts").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        conflict_keys(&answer),
        [
            (GONE.to_owned(), "jobtitle".to_owned()),
            (DEAL_A1.to_owned(), "amount".to_owned()),
            (ALPHA.to_owned(), "phone".to_owned()),
            (DEAL_A1.to_owned(), "dealname".to_owned()),
        ]
    );
    assert_eq!(answer.body["next_cursor"], Value::Null);
    let mut oldest = answer.body["items"][3].clone();
    assert!(oldest["id"].is_i64() && oldest["recorded_at"].is_string(), "{oldest}");
    oldest.as_object_mut().unwrap().remove("recorded_at");
    oldest.as_object_mut().unwrap().remove("id");
    assert_eq!(
        oldest,
        json!({
            "entity_type": "deal", "entity_id": DEAL_A1, "entity_name": "Cloud migration - Alpha",
            "hubspot_id": format!("hs-{DEAL_A1}"), "property": "dealname",
            "local_value": "Cloud migration - Alpha", "hubspot_value": "Cloud move",
            "winner": "local", "policy": "local",
            "local_changed_at": "2026-11-20T09:00:00Z", "hubspot_changed_at": "2026-11-20T10:30:00Z",
        })
    );
    assert_eq!(
        answer.body["items"][1]["hubspot_value"],
        Value::Null,
        "an emptied value"
    );
    assert_eq!(
        answer.body["items"][0]["entity_name"],
        Value::Null,
        "the record is gone"
    );

    // Pages follow the cursor, newest first, each conflict once.
    let first = app.get("/api/sync/conflicts?limit=3").await;
    assert_eq!(conflict_keys(&first).len(), 3);
    let cursor = first.body["next_cursor"].as_i64().expect("another page follows");
    assert_eq!(Some(cursor), first.body["items"][2]["id"].as_i64());
    let second = app.get(&format!("/api/sync/conflicts?limit=3&cursor={cursor}")).await;
    assert_eq!(conflict_keys(&second), [(DEAL_A1.to_owned(), "dealname".to_owned())]);
    assert_eq!(second.body["next_cursor"], Value::Null);

    // Filters: by kind, by record (with or without its kind), both.
    let companies = app.get("/api/sync/conflicts?entity_type=company").await;
    assert_eq!(conflict_keys(&companies), [(ALPHA.to_owned(), "phone".to_owned())]);
    for path in [
        format!("/api/sync/conflicts?entity_id={DEAL_A1}"),
        format!("/api/sync/conflicts?entity_type=deal&entity_id={DEAL_A1}"),
    ] {
        let deal = app.get(&path).await;
        assert_eq!(
            conflict_keys(&deal),
            [
                (DEAL_A1.to_owned(), "amount".to_owned()),
                (DEAL_A1.to_owned(), "dealname".to_owned())
            ],
            "{path}"
        );
    }
    let mismatch = app
        .get(&format!("/api/sync/conflicts?entity_type=company&entity_id={DEAL_A1}"))
        .await;
    assert_eq!(mismatch.body["items"], json!([]));
}

#[tokio::test]
async fn the_conflicts_list_needs_the_token_and_bad_parameters_are_400s_that_name_them() {
    let app = ApiApp::seeded().await;
    let unauthenticated = app.get_as("/api/sync/conflicts", None).await;
    assert_error(&unauthenticated, StatusCode::UNAUTHORIZED, "unauthorized", None);
    for (query, field) in [
        ("entity_type=order", "entity_type"),
        ("entity_type=", "entity_type"),
        ("entity_id=42", "entity_id"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=many", "limit"),
        ("cursor=0", "cursor"),
        ("cursor=-5", "cursor"),
        ("cursor=next", "cursor"),
    ] {
        let answer = app.get(&format!("/api/sync/conflicts?{query}")).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_parameter", Some(field));
        assert!(
            answer.body["error"]["message"].as_str().unwrap().starts_with(field),
            "{query}: {}",
            answer.text
        );
    }
}
