//! The fast path in `crmsync serve`: with the 5-minute schedule (SYNC_INTERVAL_SECONDS=300), an ingested match and an
//! API write reach HubSpot (the simulator) within 30 s, through an in-process kick of serve's drainer; a burst of
//! ingestions makes a handful of drains. A real `crmsync serve` process, a fresh database and the simulator; no SQS
//! (the in-process path needs none). Drains a kick started are recorded in crmsync.sync_runs as trigger `kick`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crmsync_testkit::TestApp;
use serde_json::{Value, json};

const TOKEN: &str = "fast-path-test-token-0123456789";

/// `crmsync serve` on a free port, killed on drop; its stderr goes to a file shown when a test fails.
struct Serve {
    child: Child,
    base_url: String,
    log: std::path::PathBuf,
    http: reqwest::Client,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    async fn start(app: &TestApp) -> Self {
        Self::start_with(app, &[]).await
    }

    async fn start_with(app: &TestApp, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = std::env::temp_dir().join(format!("crmsync-fast-path-{}-{port}.log", std::process::id()));
        let sim = app.sim();
        let child = Command::new(env!("CARGO_BIN_EXE_crmsync"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", app.db.url())
            .env("HUBSPOT_BASE_URL", sim.base_url())
            .env("HUBSPOT_ACCESS_TOKEN", sim.access_token())
            .env("HUBSPOT_REQUESTS_PER_10S", "1000")
            .env("API_TOKEN", TOKEN)
            .env("SYNC_INTERVAL_SECONDS", "300")
            .env("RECONCILE_INTERVAL_SECONDS", "0")
            .env_remove("RETRY_QUEUE_URL")
            .env_remove("SYNC_FAST_PATH")
            .env_remove("SYNC_KICK_DEBOUNCE_MS")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start crmsync serve");
        let serve = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::new(),
        };
        serve.wait_until_ready(app).await;
        serve
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for /healthz and for the schedule's first drain (at start) to finish, so the next scheduled drain is
    /// 300 s away and anything synced sooner came through the fast path.
    async fn wait_until_ready(&self, app: &TestApp) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let healthy = self
                .http
                .get(format!("{}/healthz", self.base_url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let first_drain_done = app
                .count("crmsync.sync_runs WHERE trigger = 'serve' AND status <> 'running'")
                .await
                == 1;
            if healthy && first_drain_done {
                return;
            }
            assert!(Instant::now() < deadline, "serve did not start:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}\n{}", self.logs());
        body
    }

    async fn ingest(&self, i: usize) {
        let event = json!({ "matches": [{
            "opportunity": { "notice_id": format!("FAST-{i:04}"), "title": format!("Hot opportunity {i}") },
            "contractor": { "uei": format!("FASTUEI{i:05}"), "name": format!("Fast Co {i}") },
            "match_score": 90 }] });
        let report = self.post("/ingest/matches", &event).await;
        assert_eq!(report["deals_created"], 1, "{report}");
    }
}

/// Waits until the simulator holds a record of `object_type` for every id in `local_ids`; returns how long it took.
async fn until_in_hubspot(app: &TestApp, serve: &Serve, object_type: &str, local_ids: &[String], within: Duration) {
    let started = Instant::now();
    loop {
        let in_hubspot: Vec<String> = app.sim_crmsync_ids(object_type).await.into_iter().flatten().collect();
        if local_ids.iter().all(|id| in_hubspot.contains(id)) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{} of {} {object_type} in HubSpot after {within:?}:\n{}",
            local_ids.iter().filter(|id| in_hubspot.contains(id)).count(),
            local_ids.len(),
            serve.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn ids(app: &TestApp, sql: &str) -> Vec<String> {
    app.rows(sql).await.iter().map(|row| row.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_five_minute_schedule_an_ingested_match_and_an_api_write_reach_hubspot_within_30_seconds() {
    let app = TestApp::with_hubspot().await;
    let serve = Serve::start(&app).await;

    serve.ingest(1).await;
    let deal = ids(&app, "SELECT id::text FROM deals").await;
    until_in_hubspot(&app, &serve, "deals", &deal, Duration::from_secs(30)).await;

    // A salesperson's new contact on the dashboard goes the same way.
    let company_id: String = app.scalar("SELECT id::text FROM companies").await;
    let contact = serve
        .post(
            "/api/contacts",
            &json!({ "company_id": company_id, "full_name": "Dana Fast", "email": "dana@fast.example" }),
        )
        .await;
    let contact_id = contact["id"].as_str().expect("contact id").to_owned();
    until_in_hubspot(&app, &serve, "contacts", &[contact_id], Duration::from_secs(30)).await;

    assert!(
        app.count("crmsync.sync_runs WHERE trigger = 'kick'").await >= 2,
        "one drain per write at least"
    );
    assert_eq!(
        app.count("crmsync.sync_runs WHERE trigger = 'serve'").await,
        1,
        "only the schedule's drain at start: the fast path synced both"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_ingestions_in_two_seconds_cause_at_most_five_drains() {
    let app = TestApp::with_hubspot().await;
    let serve = Serve::start(&app).await;

    let started = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    for i in 0..100 {
        pace.tick().await;
        serve.ingest(i).await;
    }
    let sending = started.elapsed();
    let deals = ids(&app, "SELECT id::text FROM deals").await;
    assert_eq!(deals.len(), 100);
    until_in_hubspot(&app, &serve, "deals", &deals, Duration::from_secs(60)).await;

    // The last drain may still be recording its run; wait for every kick drain to finish before counting.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app
        .count("crmsync.sync_runs WHERE trigger = 'kick' AND status = 'running'")
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "a drain never finished:\n{}", serve.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drains = app.count("crmsync.sync_runs WHERE trigger = 'kick'").await;
    assert!(
        (1..=5).contains(&drains),
        "{drains} drains for 100 ingestions sent in {sending:?}:\n{}",
        serve.logs()
    );
    assert_eq!(app.count("crmsync.sync_runs WHERE trigger = 'serve'").await, 1);
    assert_eq!(app.count("sync_queue WHERE status <> 'completed'").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_drains_at_once_without_waiting_for_the_window() {
    let app = TestApp::with_hubspot().await;
    // A ten-minute window: only a full batch (100 deals due) makes a drain come sooner.
    let serve = Serve::start_with(&app, &[("SYNC_KICK_DEBOUNCE_MS", "600000")]).await;

    for i in 0..99 {
        serve.ingest(i).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.count("crmsync.sync_runs WHERE trigger = 'kick'").await,
        0,
        "99 deals due wait for the window:\n{}",
        serve.logs()
    );
    serve.ingest(99).await;
    let deals = ids(&app, "SELECT id::text FROM deals").await;
    assert_eq!(deals.len(), 100);
    until_in_hubspot(&app, &serve, "deals", &deals, Duration::from_secs(30)).await;
    assert_eq!(app.count("crmsync.sync_runs WHERE trigger = 'kick'").await, 1);

    // The next write waits for the window again.
    serve.ingest(100).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.count("sync_queue WHERE status = 'pending'").await,
        2,
        "its company and deal wait"
    );
    assert_eq!(app.count("crmsync.sync_runs WHERE trigger = 'kick'").await, 1);
}
