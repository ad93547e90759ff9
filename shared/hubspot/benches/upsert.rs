//! Benchmark: 10,000 deal upserts through the client against the simulator at 100 requests per 10 s.
//! Prints requests used, 429s received and wall time beside the floor: ceil(10,000 / 100) = 100 requests,
//! which at 100 requests per 10 s take 10 s. Run with `scripts/bench hubspot`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use crmsync_hubspot::{
    HubSpotClient, HubSpotConfig, ObjectType, RateLimitConfig, UpsertInput, ensure_b2g_setup, values,
};
use crmsync_hubspot_sim::{HubSpotSim, SimConfig};
use rust_decimal::Decimal;
use secrecy::SecretString;

const DEALS: usize = 10_000;
const LIMIT: u32 = 100;
const WINDOW: Duration = Duration::from_secs(10);
const UPSERT: &str = "POST /crm/objects/{version}/{object_type}/batch/upsert";

#[tokio::main]
async fn main() {
    let sim_config = SimConfig {
        requests_per_window: LIMIT,
        rate_window: WINDOW,
        ..SimConfig::default()
    };
    let sim = HubSpotSim::start(sim_config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts");
    let mut config = HubSpotConfig::new(sim.base_url(), SecretString::from(sim.access_token().to_owned()));
    config.rate_limit = RateLimitConfig::new(LIMIT, WINDOW);
    let client = HubSpotClient::new(config).expect("valid config");

    // Not measured: properties and pipeline. The same client keeps pacing, so the window these requests used
    // is accounted for.
    let report = ensure_b2g_setup(&client).await.expect("setup");
    let close = NaiveDate::from_ymd_opt(2026, 9, 30).unwrap();
    let inputs: Vec<UpsertInput> = (0..DEALS)
        .map(|i| {
            let key = format!("3f0c2a8e-0000-4000-8000-{i:012}");
            let amount = Decimal::new(12_500_000 + i as i64 * 25, 2);
            let properties: BTreeMap<String, String> = [
                ("dealname", format!("Opportunity {i}")),
                ("pipeline", report.pipeline_id.clone()),
                ("dealstage", report.stage_ids["new_match"].clone()),
                ("amount", values::decimal(amount)),
                ("closedate", values::date(close)),
                ("b2g_match_score", values::decimal(Decimal::new(875, 1))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            UpsertInput { id: key, properties }
        })
        .collect();

    let before = client.stats();
    let sim_429_before = sim.outcome_count("429");
    let started = Instant::now();
    let outcome = client
        .batch_upsert(ObjectType::Deals, LOCAL_ID_PROPERTY, &inputs)
        .await
        .expect("upsert");
    let wall = started.elapsed();
    let after = client.stats();

    assert_eq!(outcome.succeeded.len(), DEALS, "failed: {:?}", outcome.failed.first());
    let requests = after.requests_sent - before.requests_sent;
    let rejected = after.responses_429 - before.responses_429;
    let sim_upserts = sim.request_count(UPSERT, "200");
    let sim_429 = sim.outcome_count("429") - sim_429_before;
    let floor_requests = DEALS.div_ceil(100) as u64;
    let floor_time = WINDOW.as_secs_f64() * floor_requests as f64 / f64::from(LIMIT);

    println!(
        "### HubSpot client: {DEALS} deal upserts, simulator at {LIMIT} requests per {} s",
        WINDOW.as_secs()
    );
    println!();
    println!("| metric | measured | floor | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| requests (client) | {requests} | {floor_requests} | {:.2}x |",
        requests as f64 / floor_requests as f64
    );
    println!("| upsert calls answered 200 (simulator) | {sim_upserts} | {floor_requests} | |");
    println!("| 429s (client / simulator) | {rejected} / {sim_429} | 0 | |");
    println!("| retries | {} | 0 | |", after.retries - before.retries);
    println!(
        "| wall time | {:.2} s | {floor_time:.2} s | {:.2}x |",
        wall.as_secs_f64(),
        wall.as_secs_f64() / floor_time
    );
    println!();
    println!(
        "Floor: ceil({DEALS}/100) = {floor_requests} batch calls; at the sustained limit ({LIMIT} per {} s) they take \
         {floor_time:.1} s. The client's limiter never bursts (GCRA burst 1, period (window + 5 % latency \
         allowance) / (limit - 1)), so no rolling window can exceed the limit whatever came before.",
        WINDOW.as_secs()
    );
    sim.stop().await;
}
