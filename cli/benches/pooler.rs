//! `scripts/bench pooler`: ingestion and the outbound sync straight to PostgreSQL and through PgBouncer 1.18 in
//! transaction mode (Supabase's transaction pooler's behaviour), side by side in one run. Each route gets a fresh
//! database per round, rounds alternate (direct, pooler, direct, pooler, ...) so drift hits both, and the best round
//! of each is kept. Both routes use `sslmode=disable`, so the ratio is the pooler's hop, not TLS.
//!
//! - ingestion: 10,000 matches (2,000 contractors) in events of 1,000, through the ingestion use case in-process;
//! - sync: a real `crmsync sync` process drains those 10,000 deals and 2,000 companies to the HubSpot simulator at
//!   1,000 requests per 10 s, so the database's share of the time shows.
//!
//! `cargo test --all-targets` runs this binary without `--bench`: one small round per route (500 matches).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crmsync_app::ingest::ingest_matches;
use crmsync_db::test_db::TestDb;
use crmsync_db::{DatabaseSettings, PgMatchStore, Pooler, Timeouts};
use crmsync_hubspot_sim::{HubSpotSim, SimConfig};
use serde_json::{Value, json};

const FULL: (usize, usize, usize) = (10_000, 2_000, 3);
const SMOKE: (usize, usize, usize) = (500, 100, 1);
const EVENT_SIZE: usize = 1_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route {
    Direct,
    Pooler,
}

fn matches(deals: usize, companies: usize) -> Vec<Value> {
    (0..deals)
        .map(|i| {
            json!({
                "opportunity": { "notice_id": format!("PB-{i:05}"), "title": format!("Opportunity {i}: data platform"),
                                 "estimated_value": 10_000 + i, "deadline": "2027-06-30" },
                "contractor": { "uei": format!("POOLER{:06}", i % companies), "name": format!("Company {}", i % companies),
                                "readiness_score": 80 },
                "match_score": 55 + (i % 40)
            })
        })
        .collect()
}

fn plaintext(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=disable")
}

/// Ingests `matches` through `route`; returns the wall time and the URL the sync should use.
async fn ingest(db: &TestDb, route: Route, matches: &[Value]) -> (Duration, String) {
    let (url, pooler) = match route {
        Route::Direct => (plaintext(db.direct_url()), Pooler::None),
        Route::Pooler => (plaintext(&db.pooled_url()), Pooler::Transaction),
    };
    let pool = DatabaseSettings::parse(&url, Timeouts::BACKGROUND)
        .expect("settings")
        .with_pooler(pooler)
        .with_pool_size(4)
        .pool()
        .expect("pool");
    let store = PgMatchStore::new(pool);
    let started = Instant::now();
    for chunk in matches.chunks(EVENT_SIZE) {
        let report = ingest_matches(&store, &json!({ "matches": chunk }), "bench")
            .await
            .expect("ingest");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    }
    (started.elapsed(), url)
}

/// Runs `crmsync hubspot-setup` then times `crmsync sync` against a fresh simulator.
async fn sync(url: &str, route: Route) -> Duration {
    let sim = HubSpotSim::start(
        SimConfig {
            requests_per_window: 100_000,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("simulator");
    let crmsync = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crmsync"));
        command
            .args(args)
            .env("DATABASE_URL", url)
            .env(
                "DATABASE_POOLER",
                if route == Route::Pooler { "transaction" } else { "none" },
            )
            .env("HUBSPOT_BASE_URL", sim.base_url())
            .env("HUBSPOT_ACCESS_TOKEN", sim.access_token())
            .env("HUBSPOT_REQUESTS_PER_10S", "1000")
            .env_remove("RETRY_QUEUE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        command
    };
    assert!(crmsync(&["hubspot-setup"]).status().unwrap().success());
    let started = Instant::now();
    assert!(crmsync(&["sync"]).status().unwrap().success());
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (deals, companies, rounds) = if full { FULL } else { SMOKE };
    let matches = matches(deals, companies);
    let mut best: [(Duration, Duration); 2] = [(Duration::MAX, Duration::MAX); 2];
    for _ in 0..rounds {
        for (slot, route) in [Route::Direct, Route::Pooler].into_iter().enumerate() {
            let db = TestDb::new().await;
            let (ingested, url) = ingest(&db, route, &matches).await;
            let synced = sync(&url, route).await;
            let client = db.pool().get().await.expect("client");
            let done: i64 = client
                .query_one("SELECT count(*) FROM deals WHERE hubspot_sync_status = 'synced'", &[])
                .await
                .expect("count")
                .get(0);
            assert_eq!(done as usize, deals, "{route:?}: every deal synced");
            best[slot].0 = best[slot].0.min(ingested);
            best[slot].1 = best[slot].1.min(synced);
        }
    }
    let [(direct_ingest, direct_sync), (pooled_ingest, pooled_sync)] = best;
    let rate = |d: Duration| deals as f64 / d.as_secs_f64();
    println!(
        "| {deals} matches / deals, best of {rounds} | direct | through PgBouncer (transaction mode) | pooler ÷ direct |"
    );
    println!("|---|---|---|---|");
    println!(
        "| ingestion (in-process, events of {EVENT_SIZE}) | {:.2} s ({:.0}/s) | {:.2} s ({:.0}/s) | {:.2} |",
        direct_ingest.as_secs_f64(),
        rate(direct_ingest),
        pooled_ingest.as_secs_f64(),
        rate(pooled_ingest),
        pooled_ingest.as_secs_f64() / direct_ingest.as_secs_f64()
    );
    println!(
        "| `crmsync sync` (simulator, 1,000 req/10 s) | {:.2} s ({:.0}/s) | {:.2} s ({:.0}/s) | {:.2} |",
        direct_sync.as_secs_f64(),
        rate(direct_sync),
        pooled_sync.as_secs_f64(),
        rate(pooled_sync),
        pooled_sync.as_secs_f64() / direct_sync.as_secs_f64()
    );
}
