//! `scripts/bench ingest`: 10,000 matches (2,000 contractors, 5,000 opportunities) into a fresh database through
//! the ingestion use case, beside the naive approach the guide's JavaScript takes (one autocommitted statement per
//! row) measured in the same run. The naive run is slow, so it takes every 10th match: a sample with the full set's
//! mix (a fifth of the matches bring a new company, half a new opportunity), not a prefix, whose matches would all
//! bring a new company and flatter the ratio. crmsync also runs on that same sample in its own fresh database, so
//! one ratio compares identical input. Prints a markdown table.
//!
//! `cargo test --all-targets` runs this binary without `--bench`: it then does a small smoke run (500 matches, a
//! naive sample of 50) so the code path stays tested without the full cost.

use std::time::Instant;

use crmsync_app::ingest::ingest_matches;
use crmsync_db::PgMatchStore;
use crmsync_db::test_db::TestDb;
use serde_json::{Value, json};

const FULL_MATCHES: usize = 10_000;
const CONTRACTORS: usize = 2_000;
const OPPORTUNITIES: usize = 5_000;
const EVENT_SIZE: usize = 1_000;
/// The naive baseline is slow; it ingests every this-many-th match (1,000 of the 10,000), reported per match.
const NAIVE_SAMPLE_EVERY: usize = 10;

fn generate(matches: usize) -> Vec<Value> {
    (0..matches)
        .map(|i| {
            let o = i % OPPORTUNITIES;
            // The second pass over the opportunities pairs each with a different contractor: all pairs unique.
            let c = if i < OPPORTUNITIES {
                o % CONTRACTORS
            } else {
                (o + CONTRACTORS / 2) % CONTRACTORS
            };
            json!({
                "opportunity": {
                    "notice_id": format!("BENCH-{o:05}"),
                    "title": format!("Opportunity {o}: modernization of legacy case management systems"),
                    "agency": "Department of Veterans Affairs", "naics_code": "541512",
                    "estimated_value": 50_000 + o * 10, "deadline": "2027-09-30",
                    "priority_flag": if o.is_multiple_of(5) { "FAST_TRACK" } else { "STANDARD" }
                },
                "contractor": {
                    "uei": format!("BENCH{c:07}"), "name": format!("Contractor {c} LLC"), "state": "VA",
                    "primary_naics": "541512", "sam_registered": true, "readiness_score": (c % 100) as f64
                },
                "match_score": 40.0 + (i % 600) as f64 / 10.0
            })
        })
        .collect()
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test` does not.
    let full = std::env::args().any(|arg| arg == "--bench");
    let matches_count = if full { FULL_MATCHES } else { 500 };
    let matches = generate(matches_count);
    let sample: Vec<Value> = matches.iter().step_by(NAIVE_SAMPLE_EVERY).cloned().collect();
    let naive_count = sample.len();

    let db = TestDb::new().await;
    let store = PgMatchStore::new(db.pool().clone());
    let started = Instant::now();
    let mut round_trips = 0;
    let mut deals = 0;
    for chunk in matches.chunks(EVENT_SIZE) {
        let report = ingest_matches(&store, &json!({ "matches": chunk }), "bench")
            .await
            .expect("ingest");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        round_trips += report.round_trips;
        deals += report.deals_created;
    }
    let batched = started.elapsed();
    assert_eq!(deals, matches_count as u64);

    // crmsync on the naive run's sample, in its own fresh database: the same input as the baseline.
    let sample_db = TestDb::new().await;
    let sample_store = PgMatchStore::new(sample_db.pool().clone());
    let started = Instant::now();
    let mut sample_round_trips = 0;
    for chunk in sample.chunks(EVENT_SIZE) {
        let report = ingest_matches(&sample_store, &json!({ "matches": chunk }), "bench")
            .await
            .expect("ingest sample");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        sample_round_trips += report.round_trips;
    }
    let batched_sample = started.elapsed();

    let naive_db = TestDb::new().await;
    let client = naive_db.pool().get().await.expect("client");
    let started = Instant::now();
    let mut naive_round_trips = 0;
    for item in &sample {
        naive_round_trips += naive_ingest(&client, item).await;
    }
    let naive = started.elapsed();

    let rate = matches_count as f64 / batched.as_secs_f64();
    let sample_rate = naive_count as f64 / batched_sample.as_secs_f64();
    let naive_rate = naive_count as f64 / naive.as_secs_f64();
    println!("| approach | matches | wall time | matches/s | round trips per match |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| crmsync (validated, {EVENT_SIZE} per event, multi-row statements) | {matches_count} | {:.2} s | {rate:.0} | {:.4} |",
        batched.as_secs_f64(),
        round_trips as f64 / matches_count as f64
    );
    println!(
        "| crmsync, on the naive run's sample (every {NAIVE_SAMPLE_EVERY}th match) | {naive_count} | {:.2} s | {sample_rate:.0} | {:.4} |",
        batched_sample.as_secs_f64(),
        sample_round_trips as f64 / naive_count as f64
    );
    println!(
        "| naive (one autocommitted statement per row), same sample | {naive_count} | {:.2} s | {naive_rate:.0} | {:.2} |",
        naive.as_secs_f64(),
        naive_round_trips as f64 / naive_count as f64
    );
    println!(
        "\nspeed-up: {:.1}x the naive baseline (crmsync on all {matches_count} matches), {:.1}x on the same {naive_count}-match sample",
        rate / naive_rate,
        sample_rate / naive_rate
    );
}

/// The guide's Steps A and B as its JavaScript does them: each row its own statement, each statement its own
/// transaction, each one round trip (unnamed and typed, like the batched path's).
async fn naive_ingest(client: &crmsync_db::Connection, item: &Value) -> u64 {
    let o = &item["opportunity"];
    let c = &item["contractor"];
    let score = rust_decimal::Decimal::try_from(item["match_score"].as_f64().unwrap_or_default()).unwrap_or_default();
    let value = rust_decimal::Decimal::from(o["estimated_value"].as_u64().unwrap_or_default());
    let readiness =
        rust_decimal::Decimal::try_from(c["readiness_score"].as_f64().unwrap_or_default()).unwrap_or_default();
    let qualification = crmsync_domain::rules::qualification_status(Some(readiness)).as_str();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();

    let opportunity_id: uuid::Uuid = client
        .query_one(
            "INSERT INTO opportunities (notice_id, title, agency, estimated_value, priority_flag) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (notice_id) DO UPDATE SET title = EXCLUDED.title RETURNING id",
            &[&text(&o["notice_id"]), &text(&o["title"]), &text(&o["agency"]), &value, &text(&o["priority_flag"])],
        )
        .await
        .expect("opportunity")
        .get(0);
    let contractor_id: uuid::Uuid = client
        .query_one(
            "INSERT INTO contractors (uei, name, readiness_score) VALUES ($1, $2, $3)
                 ON CONFLICT (uei) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            &[&text(&c["uei"]), &text(&c["name"]), &readiness],
        )
        .await
        .expect("contractor")
        .get(0);
    let match_id: uuid::Uuid = client
        .query_one(
            "INSERT INTO matches (opportunity_id, contractor_id, match_score) VALUES ($1, $2, $3)
                 ON CONFLICT (opportunity_id, contractor_id) DO UPDATE SET match_score = EXCLUDED.match_score RETURNING id",
            &[&opportunity_id, &contractor_id, &score],
        )
        .await
        .expect("match")
        .get(0);
    let mut round_trips = 4;
    let existing = client
        .query_opt("SELECT id FROM companies WHERE contractor_id = $1", &[&contractor_id])
        .await
        .expect("company lookup");
    let company_id: uuid::Uuid = match existing {
        Some(row) => row.get(0),
        None => {
            let id: uuid::Uuid = client
                .query_one(
                    "INSERT INTO companies (contractor_id, name, uei, readiness_score, qualification_status)
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[
                        &contractor_id,
                        &text(&c["name"]),
                        &text(&c["uei"]),
                        &readiness,
                        &qualification,
                    ],
                )
                .await
                .expect("company")
                .get(0);
            client
                .execute(
                    "INSERT INTO sync_queue (entity_type, entity_id, operation, payload) VALUES ('company', $1, 'create', '{}')",
                    &[&id],
                )
                .await
                .expect("company queue");
            round_trips += 2;
            id
        }
    };
    let deal_name = format!(
        "{} - {}",
        text(&o["title"]).chars().take(50).collect::<String>(),
        text(&c["name"])
    );
    let deal_id: uuid::Uuid = client
        .query_one(
            "INSERT INTO deals (opportunity_id, company_id, match_id, deal_name, deal_value, match_score, win_probability)
                 VALUES ($1, $2, $3, $4, $5, $6, round($6 * 0.8)) RETURNING id",
            &[&opportunity_id, &company_id, &match_id, &deal_name, &value, &score],
        )
        .await
        .expect("deal")
        .get(0);
    client
        .execute(
            "INSERT INTO sync_queue (entity_type, entity_id, operation, payload) VALUES ('deal', $1, 'create', '{}')",
            &[&deal_id],
        )
        .await
        .expect("deal queue");
    round_trips + 2
}
