//! `TestApp`: a fresh database, optionally the HubSpot simulator with the pipeline set up, and constructors for the
//! parts tests drive: the outbound sync, the webhook applier and state, the API and ingest routers, the ingest store.

use std::time::Duration;

use axum::Router;
use crmsync_app::WebhookConfig;
use crmsync_app::hubspot_setup::hubspot_setup;
use crmsync_app::ingest::ingest_matches;
use crmsync_db::test_db::TestDb;
use crmsync_db::{PgMatchStore, PgSyncStore, Pool};
use crmsync_domain::ingest::IngestReport;
use crmsync_domain::sync::{PipelineMap, RetryPolicy};
use crmsync_http::api::ApiConfig;
use crmsync_http::ingest::IngestState;
use crmsync_http::webhook::{ApplyMode, WebhookState};
use crmsync_hubspot::{HubSpotClient, HubSpotConfig};
use crmsync_hubspot_sim::{HubSpotSim, RunningSim, SimConfig};
use crmsync_inbound::Applier;
use crmsync_sync::{OutboundSync, SyncSettings};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::sim::{client_for, unused_hubspot};

/// The bearer token [`TestApp::api`] calls the API with.
pub const TEST_API_TOKEN: &str = "testkit-api-token-0123456789";

/// The app on a fresh database, with the HubSpot simulator when the test needs one.
pub struct TestApp {
    pub db: TestDb,
    sim: Option<RunningSim>,
    /// The client the pipeline was set up with; [`TestApp::hubspot`] lends clones of it (one shared limiter).
    hubspot: Option<HubSpotClient>,
}

/// How [`TestApp::builder`] starts the simulator and the client the app talks to it with.
pub struct TestAppBuilder {
    sim: Option<SimConfig>,
    requests: u32,
    window: Duration,
    pipeline_setup: bool,
}

impl TestAppBuilder {
    /// Starts the simulator with `config` and sets the pipeline up in it.
    pub fn sim(mut self, config: SimConfig) -> Self {
        self.sim = Some(config);
        self
    }

    /// Leaves the pipeline to the test (e.g. one that runs `crmsync hubspot-setup` itself).
    pub fn without_pipeline_setup(mut self) -> Self {
        self.pipeline_setup = false;
        self
    }

    /// The client-side rate limit of [`TestApp::hubspot`]: `requests` per `window` (default 1,000 per 10 s).
    pub fn client_limit(mut self, requests: u32, window: Duration) -> Self {
        self.requests = requests;
        self.window = window;
        self
    }

    pub async fn start(self) -> TestApp {
        let db = TestDb::new().await;
        let Some(config) = self.sim else {
            return TestApp {
                db,
                sim: None,
                hubspot: None,
            };
        };
        let sim = HubSpotSim::start(config, "127.0.0.1:0".parse().expect("address"))
            .await
            .expect("simulator");
        let client = client_for(&sim, self.requests, self.window);
        if self.pipeline_setup {
            hubspot_setup(&PgSyncStore::new(db.pool().clone()), &client)
                .await
                .expect("hubspot setup");
        }
        TestApp {
            db,
            sim: Some(sim),
            hubspot: Some(client),
        }
    }
}

/// The simulator's default configuration with 1,000 requests per window, so tests are not paced by it.
fn roomy_sim() -> SimConfig {
    SimConfig {
        requests_per_window: 1_000,
        ..SimConfig::default()
    }
}

impl TestApp {
    /// A fresh, migrated database only.
    pub async fn new() -> Self {
        Self::builder().start().await
    }

    /// A fresh database and the simulator (1,000 requests per window) with the pipeline set up in it.
    pub async fn with_hubspot() -> Self {
        Self::builder().sim(roomy_sim()).start().await
    }

    /// A fresh database and the simulator (1,000 requests per window), without the pipeline set up.
    pub async fn with_bare_hubspot() -> Self {
        Self::builder().sim(roomy_sim()).without_pipeline_setup().start().await
    }

    /// A fresh database and, with [`TestAppBuilder::sim`], the simulator.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            sim: None,
            requests: 1_000,
            window: Duration::from_secs(10),
            pipeline_setup: true,
        }
    }

    pub fn pool(&self) -> &Pool {
        self.db.pool()
    }

    /// The running simulator; panics when the app was started without one.
    pub fn sim(&self) -> &RunningSim {
        self.sim
            .as_ref()
            .expect("this TestApp has no simulator: start it with TestApp::with_hubspot")
    }

    /// The client for the simulator that set the pipeline up: the builder's limit (default 1,000 requests per
    /// 10 s), 5 s timeouts, retries after 10–100 ms. Clones share its rate limiter.
    pub fn hubspot(&self) -> HubSpotClient {
        self.hubspot
            .clone()
            .expect("this TestApp has no simulator: start it with TestApp::with_hubspot")
    }

    /// A client for the simulator with HubSpot's default configuration and no retries inside the client, so the
    /// sync queue's own retry path does the work.
    pub fn hubspot_without_retries(&self) -> HubSpotClient {
        let sim = self.sim();
        let mut config = HubSpotConfig::new(sim.base_url(), sim.access_token().to_owned().into());
        config.max_retries = 0;
        HubSpotClient::new(config).expect("client")
    }

    pub fn sync_store(&self) -> PgSyncStore {
        PgSyncStore::new(self.pool().clone())
    }

    pub fn match_store(&self) -> PgMatchStore {
        PgMatchStore::new(self.pool().clone())
    }

    /// The outbound sync over this database.
    pub fn outbound_sync<Q: crmsync_domain::ports::RetryQueue>(
        &self,
        client: HubSpotClient,
        queue: Option<Q>,
        settings: SyncSettings,
    ) -> OutboundSync<Q> {
        OutboundSync::new(self.sync_store(), client, queue, settings)
    }

    /// The webhook applier over this database: talking to the simulator when there is one, else to a client that
    /// must never be called.
    pub fn applier(&self, app_id: Option<String>) -> Applier {
        let client = match &self.sim {
            Some(_) => self.hubspot(),
            None => unused_hubspot(),
        };
        Applier::new(self.pool().clone(), client, app_id)
    }

    /// The webhook endpoint's state, applying inline with `applier`.
    pub fn webhook_state(&self, config: &WebhookConfig, applier: Applier) -> WebhookState {
        WebhookState::new(config, applier, ApplyMode::Inline)
    }

    /// One API instance (its own statistics cache) over this database.
    pub fn api_router(&self, config: &ApiConfig) -> Router {
        crmsync_http::api::router(crmsync_http::api::ApiState::new(self.pool().clone(), config))
    }

    /// Calls the API (a fresh instance over this database, bearer [`TEST_API_TOKEN`]): `method` on `path`, with a JSON
    /// body when given.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> crate::http::Answer {
        let config = ApiConfig {
            api_token: Some(SecretString::from(TEST_API_TOKEN)),
            jwt_secret: None,
            jwt_rules: crmsync_app::config::JwtRules::for_issuer("https://unused.supabase.co/auth/v1"),
            cors_origins: Vec::new(),
        };
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TEST_API_TOKEN}"));
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                axum::body::Body::from(body.to_string())
            }
            None => axum::body::Body::empty(),
        };
        crate::http::send(self.api_router(&config), request.body(body).expect("request")).await
    }

    /// The ingest endpoint (and healthz) over this database, behind `token`.
    pub fn ingest_router(&self, token: &str) -> Router {
        crmsync_http::ingest::router(IngestState::new(self.pool().clone(), SecretString::from(token)))
    }

    /// Ingests `event` as the CLI does (source `test`) and returns the report.
    pub async fn ingest(&self, event: &Value) -> IngestReport {
        ingest_matches(&self.match_store(), event, "test")
            .await
            .expect("ingest")
    }

    /// Ingests `deals` generated matches spread over `companies` contractors (notice `M-00000`, UEI
    /// `TESTUEI00000`, ...), in batches of 1,000; asserts none is rejected.
    pub async fn ingest_generated(&self, deals: usize, companies: usize) {
        let matches: Vec<Value> = (0..deals)
            .map(|i| {
                json!({
                    "opportunity": { "notice_id": format!("M-{i:05}"), "title": format!("Opportunity {i}"),
                                     "estimated_value": 1000 + i, "deadline": "2027-05-01" },
                    "contractor": { "uei": format!("TESTUEI{:05}", i % companies),
                                    "name": format!("Company {}", i % companies), "readiness_score": 85 },
                    "match_score": 50 + (i % 50)
                })
            })
            .collect();
        for chunk in matches.chunks(1_000) {
            let report = self.ingest(&json!({ "matches": chunk })).await;
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        }
    }

    /// The pipeline and stage ids hubspot-setup stored.
    pub async fn pipeline_map(&self) -> PipelineMap {
        self.sync_store()
            .pipeline_map()
            .await
            .expect("read the pipeline map")
            .expect("pipeline map")
    }

    /// HubSpot's id of our pipeline's `stage` (e.g. `closed_won`), as hubspot-setup stored it.
    pub async fn stage_id(&self, stage: &str) -> String {
        self.pipeline_map().await.stage_ids[stage].clone()
    }

    /// Runs `sql` (one or more statements); panics with the statement on an error.
    pub async fn execute(&self, sql: &str) {
        let client = self.pool().get().await.expect("client");
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}\n{e:?}"));
    }

    /// The rows `sql` returns; panics with the statement on an error.
    pub async fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        let client = self.pool().get().await.expect("client");
        client.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}\n{e:?}"))
    }

    /// The first column of the one row `sql` returns.
    pub async fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let client = self.pool().get().await.expect("client");
        client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}\n{e:?}"))
            .get(0)
    }

    /// `SELECT count(*) FROM <from>`, where `from` is a table with an optional filter:
    /// `app.count("sync_queue WHERE status = 'dead'")`.
    pub async fn count(&self, from: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM {from}")).await
    }
}

/// The sync's settings with retries a test can wait out: batches of 500, a 300 s lease, up to 8 attempts
/// 20–200 ms apart, retryable failures retried for the default day, worker `test`.
pub fn quick_retries() -> SyncSettings {
    SyncSettings {
        batch_size: 500,
        lease: Duration::from_secs(300),
        retry: RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            ..RetryPolicy::default()
        },
        worker: "test".into(),
        ..SyncSettings::default()
    }
}

/// The webhook inbox's retry policy with waits of a few milliseconds and `max_attempts` attempts.
pub fn inbox_retries(max_attempts: i32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        ..RetryPolicy::default()
    }
}

/// The webhook configuration read from `vars` (name, value) instead of the environment.
pub fn webhook_config(vars: &[(&str, &str)]) -> WebhookConfig {
    WebhookConfig::from_lookup(|name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .expect("webhook config")
}
