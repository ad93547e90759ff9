//! `scripts/bench sync`: 10,000 new deals across 2,000 new companies synced by a real `crmsync sync` process to
//! the HubSpot simulator at 100 requests per 10 s (HubSpot Free/Starter). Reports requests used against the floor
//! (ceil(2,000/100) + ceil(10,000/100) + ceil(10,000/2,000) = 125), wall time against the time that floor takes at
//! the limit, 429s, and the process's peak RSS; beside them the guide's Step C and a naive per-record client,
//! computed at the same limit. Prints markdown.
//!
//! `cargo test --all-targets` runs this binary without `--bench`: it then syncs 300 deals across 60 companies
//! and skips the wait for an empty window, so the code path stays tested without the full cost.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crmsync_db::test_db::TestDb;
use crmsync_hubspot_sim::{HubSpotSim, SimConfig};
use serde_json::{Value, json};

const FULL: (usize, usize) = (10_000, 2_000);
const SMOKE: (usize, usize) = (300, 60);
const LIMIT_PER_10S: f64 = 100.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test` does not.
    let full = std::env::args().any(|arg| arg == "--bench");
    let (deals, companies) = if full { FULL } else { SMOKE };
    let db = TestDb::new().await;
    let sim = HubSpotSim::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator");
    let crmsync = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_crmsync"));
        command
            .args(args)
            .env("DATABASE_URL", db.url())
            .env("HUBSPOT_BASE_URL", sim.base_url())
            .env("HUBSPOT_ACCESS_TOKEN", sim.access_token())
            .env("HUBSPOT_REQUESTS_PER_10S", "100")
            .env_remove("RETRY_QUEUE_URL")
            .env("RUST_LOG", "warn");
        command
    };

    let matches: Vec<Value> = (0..deals)
        .map(|i| json!({
            "opportunity": { "notice_id": format!("BS-{i:05}"), "title": format!("Opportunity {i}: data platform"),
                             "estimated_value": 10_000 + i, "deadline": "2027-06-30" },
            "contractor": { "uei": format!("BENCHS{:06}", i % companies), "name": format!("Company {}", i % companies),
                            "readiness_score": 80 },
            "match_score": 55 + (i % 40)
        }))
        .collect();
    let mut ingest = crmsync(&["ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("ingest");
    std::io::Write::write_all(
        &mut ingest.stdin.take().unwrap(),
        json!({ "matches": matches }).to_string().as_bytes(),
    )
    .unwrap();
    assert!(ingest.wait().unwrap().success());
    assert!(
        crmsync(&["hubspot-setup"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    // Let setup's requests leave the simulator's rolling window, so the run starts with a full budget.
    if full {
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
    let before = sim.total_requests();

    let started = Instant::now();
    let mut child = crmsync(&["sync"]).stdout(Stdio::piped()).spawn().expect("sync");
    let pid = child.id();
    let mut peak_kb = 0_u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
        {
            peak_kb = peak_kb.max(kb.parse().unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed();
    let output = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).expect("sync report");
    assert_eq!(report["deals_created"], deals, "{report}");
    assert_eq!(report["companies_created"], companies, "{report}");

    let requests = sim.total_requests() - before;
    let throttled = sim.outcome_count("429");
    let floor = companies.div_ceil(100) + deals.div_ceil(100) + deals.div_ceil(2_000);
    let floor_seconds = floor as f64 / LIMIT_PER_10S * 10.0;
    let naive_requests = companies + 2 * deals; // create each company, create each deal, associate each deal
    let guide_runs = (companies + deals).div_ceil(10); // Step C: 10 queue rows per 5-minute run, one call each

    println!("| measure | crmsync | floor / goal | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| HubSpot requests | {requests} | {floor} | {:.3}× (goal ≤ 1.05×) |",
        requests as f64 / floor as f64
    );
    println!(
        "| wall time | {:.1} s | {floor_seconds:.1} s at 100/10 s | {:.2}× (goal ≤ 1.3×) |",
        wall.as_secs_f64(),
        wall.as_secs_f64() / floor_seconds
    );
    println!("| 429 answers | {throttled} | 0 | |");
    println!(
        "| peak RSS of `crmsync sync` | {:.1} MB | ≤ 128 MB | |",
        peak_kb as f64 / 1024.0
    );
    println!();
    println!("| approach | requests | time at 100 requests / 10 s |");
    println!("|---|---:|---:|");
    println!("| crmsync (measured) | {requests} | {:.1} s |", wall.as_secs_f64());
    println!(
        "| naive per-record client (computed) | {naive_requests} | {:.0} s ({:.1} min) |",
        naive_requests as f64 / 10.0,
        naive_requests as f64 / 600.0
    );
    println!(
        "| the guide's Step C, 10 rows per 5-minute run (computed) | {} | {guide_runs} runs = {:.1} h |",
        companies + deals,
        guide_runs as f64 * 5.0 / 60.0
    );
}
