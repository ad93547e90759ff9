//! `scripts/bench freshness`: how long a new match (and a dashboard write) takes to exist in HubSpot, with the
//! 5-minute schedule left on. 200 single-match ingestions over a minute (one every 300 ms) and 20 stage moves through
//! the API (each of a deal ingested 1.5 s before), sent at the same moments to real `crmsync serve` processes, each
//! with its own fresh database and HubSpot simulator (100 requests per 10 s, HubSpot Free/Starter):
//!
//! - **fast path**: the defaults (`SYNC_FAST_PATH=on`, `SYNC_KICK_DEBOUNCE_MS=2000`);
//! - **fast path, 10 s, 25 s and 30 s windows**: `SYNC_KICK_DEBOUNCE_MS=10000`, `25000` and `30000`, the
//!   trade-off between latency and requests (a full batch of 100 due drains at once whatever the window);
//! - **baseline**: `SYNC_FAST_PATH=off`, the schedule alone (its first drain runs at start, just before the minute
//!   of writes, so the writes wait for the next one, 240–300 s later: the worst phase of the schedule).
//!
//! Latency: from the write's HTTP answer to the record (or the new `dealstage`) in the simulator, which a poller per
//! instance reads every 250 ms from before the first write.
//! HubSpot requests: the simulator's count during the writes and until everything arrived, against one drain of the
//! same rows (the same 200 matches and 20 moves, written first and then drained once, in a database of its own),
//! each also by endpoint.
//!
//! `cargo test --all-targets` runs this binary without `--bench`: 10 ingestions and 1 move against the fast path
//! only, checked to arrive within 30 s.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmsync_hubspot_sim::SimConfig;
use crmsync_testkit::TestApp;
use serde_json::{Value, json};

const TOKEN: &str = "freshness-bench-token-0123456789";
const SPACING: Duration = Duration::from_millis(300);
const POLL: Duration = Duration::from_millis(250);

struct Variant {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// How long after the last write the bench waits for everything to arrive.
    patience: Duration,
}

/// When each deal first showed in the simulator, and when it first showed the moved-to stage, by `crmsync_id`.
#[derive(Default)]
struct Seen {
    deals: HashMap<String, Instant>,
    moved: HashMap<String, Instant>,
}

/// Polls the simulator every [`POLL`] from the start of the writes, recording first sightings, until `stop`.
fn spawn_poller(
    sim_base_url: String,
    moved_stage: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        while !stop.load(Ordering::Relaxed) {
            let url = format!("{sim_base_url}/__sim/state?type=deals");
            if let Ok(response) = http.get(url).send().await
                && let Ok(state) = response.json::<Value>().await
            {
                let now = Instant::now();
                let mut seen = seen.lock().expect("seen");
                for deal in state["objects"]["deals"].as_array().into_iter().flatten() {
                    let Some(local) = deal["properties"]["crmsync_id"].as_str() else {
                        continue;
                    };
                    seen.deals.entry(local.to_owned()).or_insert(now);
                    if deal["properties"]["dealstage"].as_str() == Some(moved_stage.as_str()) {
                        seen.moved.entry(local.to_owned()).or_insert(now);
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

/// One `crmsync serve` with its database and simulator.
struct Instance {
    variant: &'static Variant,
    app: TestApp,
    child: Child,
    base_url: String,
    http: reqwest::Client,
    /// Local deal id per ingestion, and when its ingestion answered.
    ingested: Vec<(String, Instant)>,
    /// (local deal id, when the move answered).
    moved: Vec<(String, Instant)>,
    /// The simulator's requests by endpoint when the writes began.
    requests_before: BTreeMap<String, u64>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    poller: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(variant: &'static Variant) -> Instance {
    let app = TestApp::builder()
        .sim(SimConfig {
            requests_per_window: 100,
            ..SimConfig::default()
        })
        .start()
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let sim = app.sim();
    let mut command = Command::new(env!("CARGO_BIN_EXE_crmsync"));
    command
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", app.db.url())
        .env("HUBSPOT_BASE_URL", sim.base_url())
        .env("HUBSPOT_ACCESS_TOKEN", sim.access_token())
        .env("HUBSPOT_REQUESTS_PER_10S", "100")
        .env("API_TOKEN", TOKEN)
        .env("SYNC_INTERVAL_SECONDS", "300")
        .env("RECONCILE_INTERVAL_SECONDS", "0")
        .env_remove("RETRY_QUEUE_URL")
        .env_remove("SYNC_FAST_PATH")
        .env_remove("SYNC_KICK_DEBOUNCE_MS")
        .env("RUST_LOG", "warn")
        .envs(variant.env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command.spawn().expect("start crmsync serve");
    let instance = Instance {
        variant,
        app,
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        ingested: Vec::new(),
        moved: Vec::new(),
        requests_before: BTreeMap::new(),
        seen: Arc::default(),
        stop: Arc::default(),
        poller: None,
    };
    // Ready: healthz answers and the schedule's drain at start has finished.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let healthy = instance
            .http
            .get(format!("{}/healthz", instance.base_url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy
            && instance
                .app
                .count("crmsync.sync_runs WHERE trigger = 'serve' AND status <> 'running'")
                .await
                == 1
        {
            return instance;
        }
        assert!(Instant::now() < deadline, "{}: serve did not start", variant.name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn event(i: usize) -> Value {
    json!({ "matches": [{
        "opportunity": { "notice_id": format!("FRESH-{i:04}"), "title": format!("Hot opportunity {i}"),
                         "estimated_value": 50_000 + i, "deadline": "2027-06-30" },
        "contractor": { "uei": format!("FRESHUEI{i:04}"), "name": format!("Fresh Co {i}"), "readiness_score": 80 },
        "match_score": 80 + (i % 20) }] })
}

impl Instance {
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
        assert!(status.is_success(), "{}: {path}: {status} {body}", self.variant.name);
        body
    }

    async fn ingest(&mut self, i: usize) {
        let report = self.post("/ingest/matches", &event(i)).await;
        let answered = Instant::now();
        assert_eq!(report["deals_created"], 1, "{report}");
        let deal: String = self
            .app
            .scalar(&format!(
                "SELECT d.id::text FROM deals d JOIN opportunities o ON o.id = d.opportunity_id \
                 WHERE o.notice_id = 'FRESH-{i:04}'"
            ))
            .await;
        self.ingested.push((deal, answered));
    }

    async fn move_stage(&mut self, of_ingestion: usize) {
        let deal = self.ingested[of_ingestion].0.clone();
        self.post(&format!("/api/deals/{deal}/stage"), &json!({ "stage": "contact_made" }))
            .await;
        self.moved.push((deal, Instant::now()));
    }

    /// Starts polling the simulator, before the first write.
    async fn watch(&mut self) {
        let stage_id = self.app.stage_id("contact_made").await;
        self.requests_before = self.app.sim().requests_by_endpoint();
        self.poller = Some(spawn_poller(
            self.app.sim().base_url(),
            stage_id,
            Arc::clone(&self.seen),
            Arc::clone(&self.stop),
        ));
    }

    /// Waits until every ingested deal exists and every move shows, or `patience` after `last_write`. Returns the
    /// latencies (ingestions, moves) in seconds, `None` for what never arrived, and the requests spent.
    async fn collect(&self, last_write: Instant) -> (Vec<Option<f64>>, Vec<Option<f64>>, Spent) {
        loop {
            let done = {
                let seen = self.seen.lock().expect("seen");
                self.ingested.iter().all(|(id, _)| seen.deals.contains_key(id))
                    && self.moved.iter().all(|(id, _)| seen.moved.contains_key(id))
            };
            if done || Instant::now() > last_write + self.variant.patience {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        self.stop.store(true, Ordering::Relaxed);
        let requests = Spent::between(&self.requests_before, &self.app.sim().requests_by_endpoint());
        let seen = self.seen.lock().expect("seen");
        let (deal_seen, move_seen) = (&seen.deals, &seen.moved);
        let latency = |seen: Option<&Instant>, answered: Instant| {
            seen.map(|seen| seen.saturating_duration_since(answered).as_secs_f64())
        };
        let ingestions = self
            .ingested
            .iter()
            .map(|(id, answered)| latency(deal_seen.get(id), *answered))
            .collect();
        let moves = self
            .moved
            .iter()
            .map(|(id, answered)| latency(move_seen.get(id), *answered))
            .collect();
        (ingestions, moves, requests)
    }
}

/// The HubSpot requests between two snapshots of the simulator's counts by endpoint.
struct Spent {
    total: u64,
    /// `"POST …/batch/create ×2, POST …/batch/upsert ×2"`.
    by_endpoint: String,
}

impl Spent {
    fn between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Self {
        let spent: Vec<(&String, u64)> = after
            .iter()
            .map(|(endpoint, count)| (endpoint, count - before.get(endpoint).copied().unwrap_or(0)))
            .filter(|(_, spent)| *spent > 0)
            .collect();
        Self {
            total: spent.iter().map(|(_, spent)| spent).sum(),
            by_endpoint: spent
                .iter()
                .map(|(endpoint, spent)| {
                    let short = endpoint.replace("/crm/objects/{version}/{object_type}", "…");
                    format!("{short} ×{spent}")
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The value at quantile `q` (nearest rank) of the arrived latencies.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Row {
    name: String,
    writes: usize,
    arrived: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

fn row(name: String, latencies: &[Option<f64>]) -> Row {
    let mut arrived: Vec<f64> = latencies.iter().flatten().copied().collect();
    arrived.sort_by(f64::total_cmp);
    Row {
        name,
        writes: latencies.len(),
        arrived: arrived.len(),
        p50: quantile(&arrived, 0.50),
        p99: quantile(&arrived, 0.99),
        max: arrived.last().copied().unwrap_or(f64::NAN),
    }
}

/// The requests one drain of the same rows uses: the same writes in a fresh database, then one drain.
async fn one_drain_requests(ingestions: usize, moves: &[usize]) -> Spent {
    let app = TestApp::with_hubspot().await;
    for i in 0..ingestions {
        app.ingest(&event(i)).await;
    }
    let router = app.api_router(&crmsync_http::api::ApiConfig::with_token(TOKEN));
    for &i in moves {
        let deal: String = app
            .scalar(&format!(
                "SELECT d.id::text FROM deals d JOIN opportunities o ON o.id = d.opportunity_id \
                 WHERE o.notice_id = 'FRESH-{i:04}'"
            ))
            .await;
        let request = axum::http::Request::post(format!("/api/deals/{deal}/stage"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(json!({ "stage": "contact_made" }).to_string()))
            .expect("request");
        let answer = crmsync_testkit::send(router.clone(), request).await;
        assert!(answer.status.is_success(), "{}", answer.text);
    }
    let sync =
        app.outbound_sync::<crmsync_queue::SqsRetryQueue>(app.hubspot(), None, crmsync_sync::SyncSettings::default());
    let before = app.sim().requests_by_endpoint();
    let report = sync.drain("cli", Duration::from_secs(600)).await.expect("drain");
    assert_eq!(report.deals_created as usize, ingestions, "{report:?}");
    Spent::between(&before, &app.sim().requests_by_endpoint())
}

static FAST: Variant = Variant {
    name: "fast path (2 s window, the default)",
    env: &[],
    patience: Duration::from_secs(120),
};
static FAST_10S: Variant = Variant {
    name: "fast path, 10 s window",
    env: &[("SYNC_KICK_DEBOUNCE_MS", "10000")],
    patience: Duration::from_secs(120),
};
static FAST_25S: Variant = Variant {
    name: "fast path, 25 s window",
    env: &[("SYNC_KICK_DEBOUNCE_MS", "25000")],
    patience: Duration::from_secs(120),
};
static FAST_30S: Variant = Variant {
    name: "fast path, 30 s window",
    env: &[("SYNC_KICK_DEBOUNCE_MS", "30000")],
    patience: Duration::from_secs(120),
};
static BASELINE: Variant = Variant {
    name: "baseline: the 5-minute schedule alone",
    env: &[("SYNC_FAST_PATH", "off")],
    patience: Duration::from_secs(330),
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test` does not.
    let full = std::env::args().any(|arg| arg == "--bench");
    let (ingestions, variants): (usize, Vec<&'static Variant>) = if full {
        (200, vec![&FAST, &FAST_10S, &FAST_25S, &FAST_30S, &BASELINE])
    } else {
        (10, vec![&FAST])
    };
    // A move every 10th ingestion, of the deal ingested 5 before (1.5 s earlier).
    let moves: Vec<usize> = (0..ingestions).filter(|i| i % 10 == 5).map(|i| i - 5).collect();

    let mut instances = Vec::new();
    for variant in &variants {
        instances.push(start(variant).await);
    }
    for instance in &mut instances {
        instance.watch().await;
    }
    let mut pace = tokio::time::interval(SPACING);
    for i in 0..ingestions {
        pace.tick().await;
        futures::future::join_all(instances.iter_mut().map(|instance| async move {
            instance.ingest(i).await;
            if i % 10 == 5 {
                instance.move_stage(i - 5).await;
            }
        }))
        .await;
    }
    let last_write = Instant::now();
    let results = futures::future::join_all(instances.iter().map(|instance| instance.collect(last_write))).await;

    let mut rows = Vec::new();
    let mut requests = Vec::new();
    for (instance, (ingested, moved, spent)) in instances.iter().zip(&results) {
        let drains = instance
            .app
            .count("crmsync.sync_runs WHERE trigger IN ('kick', 'serve')")
            .await
            - 1;
        rows.push(row(
            format!("{}: ingestion → deal in HubSpot", instance.variant.name),
            ingested,
        ));
        rows.push(row(
            format!("{}: API stage move → dealstage in HubSpot", instance.variant.name),
            moved,
        ));
        requests.push((instance.variant.name, spent, drains));
    }
    if !full {
        for row in &rows {
            assert_eq!(row.arrived, row.writes, "{}: not everything arrived", row.name);
            assert!(row.max <= 30.0, "{}: {:.1} s", row.name, row.max);
        }
        println!(
            "smoke run: {} ingestions and {} moves arrived within 30 s",
            ingestions,
            moves.len()
        );
        return;
    }
    let one_drain = one_drain_requests(ingestions, &moves).await;
    let baseline_p99: HashMap<bool, f64> = rows
        .iter()
        .filter(|r| r.name.starts_with(BASELINE.name))
        .map(|r| (r.name.contains("ingestion"), r.p99))
        .collect();

    println!("| writes | count | arrived | p50 s | p99 s | max s | p99 ÷ baseline p99 | goal (p99) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        let ratio = r.p99 / baseline_p99[&r.name.contains("ingestion")];
        let goal = if r.name.starts_with(BASELINE.name) {
            "—".to_owned()
        } else {
            format!(
                "≤ 30 s: {}",
                if r.p99 <= 30.0 && r.arrived == r.writes {
                    "met"
                } else {
                    "not met"
                }
            )
        };
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {ratio:.3}× | {goal} |",
            r.name, r.writes, r.arrived, r.p50, r.p99, r.max
        );
    }
    println!();
    println!(
        "| run | HubSpot requests | drains after the start | requests per drain | ÷ one drain of the same rows ({}) | goal | requests by endpoint |",
        one_drain.total
    );
    println!("|---|---:|---:|---:|---:|---|---|");
    for (name, spent, drains) in requests {
        let ratio = spent.total as f64 / one_drain.total as f64;
        println!(
            "| {name} | {} | {drains} | {:.1} | {ratio:.2}× | ≤ 1.2×: {} | {} |",
            spent.total,
            spent.total as f64 / drains.max(1) as f64,
            if ratio <= 1.2 { "met" } else { "not met" },
            spent.by_endpoint
        );
    }
    println!(
        "| one drain of the same rows (reference) | {0} | 1 | {0}.0 | 1.00× | — | {1} |",
        one_drain.total, one_drain.by_endpoint
    );
}
