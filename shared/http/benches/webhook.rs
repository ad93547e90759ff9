//! `scripts/bench webhook`: signed batches of 100 HubSpot events POSTed over real HTTP (reqwest → axum::serve on
//! 127.0.0.1) to the webhook router `crmsync serve` mounts, mostly with 10 requests in flight (HubSpot's per-account
//! concurrency limit). Each batch is verified (v3 HMAC), parsed and stored in the inbox before the 200.
//!
//! Three runs, each over a fresh database with 10,000 deals linked to HubSpot ids:
//! - serve's mode, 10 in flight: the answer costs verify + parse + one INSERT; a background task applies the
//!   events. Reported: per-batch latency p50/p99, events/s accepted, and events/s applied (until the inbox has
//!   nothing open).
//! - the Lambda's mode (apply before answering), 1 in flight: what one Lambda instance sees.
//! - the Lambda's mode, 10 in flight into one process: passes queue behind each other.
//!
//! Events: property changes of deal fields under the `hubspot`, `two_way` and `local` policies, stage changes (which log
//! an activity), and 10% echoes of our own writes. Prints a markdown table for BENCHMARKS.md.
//!
//! `cargo test --all-targets` runs this binary without `--bench`: it then does a small smoke run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crmsync_app::WebhookConfig;
use crmsync_db::PgSyncStore;
use crmsync_db::test_db::TestDb;
use crmsync_domain::sync::PipelineMap;
use crmsync_http::webhook::{ApplyMode, WebhookState, router};
use crmsync_hubspot::signature::sign_v3;
use crmsync_hubspot::{HubSpotClient, HubSpotConfig};
use crmsync_inbound::Applier;
use serde_json::{Value, json};

const SECRET: &str = "bench-client-secret-0123456789";
const APP_ID: &str = "54321";
const EVENTS_PER_BATCH: usize = 100;
const IN_FLIGHT: usize = 10;
/// Deals, and batches per run: full and smoke.
const DEALS: [i64; 2] = [10_000, 500];
const BATCHES: [usize; 2] = [500, 20];

const STAGES: [&str; 8] = [
    "new_match",
    "initial_outreach",
    "contact_made",
    "qualified",
    "proposal_sent",
    "negotiation",
    "closed_won",
    "closed_lost",
];

fn percentile(sorted: &[Duration], pct: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn fill(db: &TestDb, deals: i64) {
    let client = db.pool().get().await.expect("client");
    client
        .batch_execute(&format!(
            "INSERT INTO companies (name, uei, hubspot_company_id, hubspot_sync_status)
             SELECT 'Company ' || n, 'WHBENCH' || lpad(n::text, 5, '0'), (500000 + n)::text, 'synced'
             FROM generate_series(1, 200) n;
             INSERT INTO deals (company_id, deal_name, deal_value, hubspot_deal_id, hubspot_sync_status)
             SELECT c.id, 'Deal ' || n, 1000 + n, (1000000 + n)::text, 'synced'
             FROM generate_series(1, {deals}) n
             JOIN companies c ON c.hubspot_company_id = (500000 + 1 + n % 200)::text;"
        ))
        .await
        .expect("fill");
    let pipeline = PipelineMap {
        pipeline_id: "b2g".into(),
        stage_ids: STAGES
            .iter()
            .enumerate()
            .map(|(i, s)| ((*s).to_owned(), format!("{}", 9000 + i)))
            .collect(),
    };
    PgSyncStore::new(db.pool().clone())
        .save_pipeline_map(&pipeline)
        .await
        .expect("pipeline");
}

/// Batch `batch` of a run: 100 events on pseudo-random deals, occurredAt increasing.
fn batch_body(run: u64, batch: usize, deals: i64) -> Vec<u8> {
    let base = chrono::Utc::now().timestamp_millis();
    let events: Vec<Value> = (0..EVENTS_PER_BATCH)
        .map(|i| {
            let n = (batch * EVENTS_PER_BATCH + i) as i64;
            let deal = 1_000_001 + (n * 7919) % deals;
            let (name, value) = match n % 10 {
                0 | 1 => ("description", format!("note {n}")),
                2 | 3 => ("hubspot_owner_id", format!("{}", 100 + n % 50)),
                4 | 5 => ("dealstage", format!("{}", 9001 + n % 5)),
                6 => ("hs_priority", ["low", "medium", "high"][(n % 3) as usize].to_owned()),
                7 => ("amount", format!("{}", 5 + n)),
                8 => ("hs_lastmodifieddate", base.to_string()),
                _ => ("description", format!("echo {n}")),
            };
            let (source, source_id) = if n % 10 == 9 {
                ("INTEGRATION", APP_ID.to_owned())
            } else {
                ("CRM_UI", "userId:1".to_owned())
            };
            json!({
                "eventId": run * 10_000_000 + n as u64, "subscriptionId": 1_000_003, "portalId": 62515,
                "appId": 54321, "occurredAt": base + i as i64, "subscriptionType": "deal.propertyChange",
                "attemptNumber": 0, "objectId": deal, "propertyName": name, "propertyValue": value,
                "changeSource": source, "sourceId": source_id,
            })
        })
        .collect();
    serde_json::to_vec(&events).expect("json")
}

struct RunResult {
    mode: &'static str,
    in_flight: usize,
    latencies: Vec<Duration>,
    accept_elapsed: Duration,
    apply_elapsed: Duration,
    events: usize,
}

async fn run(
    mode: ApplyMode,
    label: &'static str,
    in_flight: usize,
    run_id: u64,
    deals: i64,
    batches: usize,
) -> RunResult {
    let db = TestDb::new().await;
    fill(&db, deals).await;
    let config = WebhookConfig::from_lookup(|name| match name {
        "HUBSPOT_CLIENT_SECRET" => Some(SECRET.to_owned()),
        "HUBSPOT_APP_ID" => Some(APP_ID.to_owned()),
        _ => None,
    })
    .expect("config");
    // No event here needs HubSpot (no creations): the client only has to exist.
    let hubspot =
        HubSpotClient::new(HubSpotConfig::new("http://127.0.0.1:9", "unused".to_owned().into())).expect("client");
    let applier = Applier::new(db.pool().clone(), hubspot, config.app_id.clone());
    let state = WebhookState::new(&config, applier, mode);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/webhooks/hubspot", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(in_flight)
        .build()
        .expect("http");

    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..batches).map(|b| batch_body(run_id, b, deals)).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (http, url, bodies, next) = (http.clone(), url.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(body) = bodies.get(index) else { break };
                    // Signed just before sending, as HubSpot does; the signature is part of the measured work on
                    // the server side only.
                    let timestamp = chrono::Utc::now().timestamp_millis();
                    let signature = sign_v3(SECRET, "POST", &url, body, timestamp);
                    let sent = Instant::now();
                    let response = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-hubspot-signature-v3", signature)
                        .header("x-hubspot-request-timestamp", timestamp.to_string())
                        .body(body.clone())
                        .send()
                        .await
                        .expect("post");
                    latencies.push(sent.elapsed());
                    assert_eq!(response.status(), 200, "batch {index}");
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let accept_elapsed = started.elapsed();
    // Until the inbox has nothing open: every event applied or skipped.
    let client = db.pool().get().await.expect("client");
    loop {
        let open: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM crmsync.webhook_inbox WHERE status IN ('pending', 'retry'))",
                &[],
            )
            .await
            .expect("open events")
            .get(0);
        if !open {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let apply_elapsed = started.elapsed();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM crmsync.webhook_inbox", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored as usize, batches * EVENTS_PER_BATCH, "every event stored once");
    server.abort();
    latencies.sort();
    RunResult {
        mode: label,
        in_flight,
        latencies,
        accept_elapsed,
        apply_elapsed,
        events: batches * EVENTS_PER_BATCH,
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test` does not.
    let full = std::env::args().any(|arg| arg == "--bench");
    let size = usize::from(!full);
    let (deals, batches) = (DEALS[size], BATCHES[size]);
    let results = [
        run(
            ApplyMode::Background,
            "serve: apply in background",
            IN_FLIGHT,
            1,
            deals,
            batches,
        )
        .await,
        // One request at a time: what one Lambda instance sees (Lambda gives each instance one request).
        run(
            ApplyMode::Inline,
            "Lambda: apply before answering",
            1,
            2,
            deals,
            batches,
        )
        .await,
        // Ten at once into one process that applies before answering: passes queue behind each other.
        run(
            ApplyMode::Inline,
            "one process, apply before answering",
            IN_FLIGHT,
            3,
            deals,
            batches,
        )
        .await,
    ];
    println!(
        "| mode ({batches} batches × {EVENTS_PER_BATCH} events, {deals} deals) | in flight | p50 ms/batch | p99 ms/batch | accepted events/s | applied events/s | p99 ≤ 50 ms | ≥ 5,000 events/s accepted |"
    );
    println!("|---|---:|---:|---:|---:|---:|:---:|:---:|");
    for result in &results {
        let p50 = percentile(&result.latencies, 50.0);
        let p99 = percentile(&result.latencies, 99.0);
        let accepted = result.events as f64 / result.accept_elapsed.as_secs_f64();
        let applied = result.events as f64 / result.apply_elapsed.as_secs_f64();
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {} | {} |",
            result.mode,
            result.in_flight,
            p50.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
            accepted,
            applied,
            if p99 <= Duration::from_millis(50) {
                "met"
            } else {
                "not met"
            },
            if accepted >= 5_000.0 { "met" } else { "not met" },
        );
    }
}
