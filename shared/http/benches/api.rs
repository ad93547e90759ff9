//! `scripts/bench api`: the dashboard API against 100,000 deals. Measures GET /api/dashboard/stats uncached (the
//! cache is cleared before every request, so all five queries run) and cached, and GET /api/deals pages (first page,
//! pages deep in the list by cursor, a stage filter, a company filter, 100 per page). Requests go through the real
//! router in process (tower `oneshot`): routing, authentication, the queries over a pool of real PostgreSQL
//! connections and JSON encoding, without a socket. Prints a markdown table for BENCHMARKS.md.
//!
//! `cargo test --all-targets` runs this binary without `--bench`: it then does a small smoke run (2,000 deals, a
//! few requests of each kind) so the benchmark stays working without costing the test suite minutes.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use crmsync_db::test_db::TestDb;
use crmsync_http::api::{ApiConfig, ApiState, router};
use http_body_util::BodyExt;
use rand::seq::IndexedRandom;
use tower::ServiceExt;
use uuid::Uuid;

const TOKEN: &str = "bench-token-0123456789";
/// The full run's size, and the smoke run's.
const DEALS: [i64; 2] = [100_000, 2_000];
const COMPANIES: [i64; 2] = [2_000, 200];

/// 100,000 deals over 2,000 companies: three quarters open, spread over the six open stages; a quarter closed (won
/// or lost) over the last 24 months. Contacts, activities, queue rows and sync runs in proportion.
const FILL: &str = "
INSERT INTO companies (name, uei, readiness_score, qualification_status)
SELECT 'Company ' || n, 'BENCH' || lpad(n::text, 7, '0'), (n % 100), CASE WHEN n % 100 >= 80 THEN 'qualified' ELSE 'unqualified' END
FROM generate_series(1, $companies) n;

INSERT INTO deals (company_id, deal_name, deal_value, stage, priority, match_score, win_probability, closed_at)
SELECT c.id,
       'Opportunity ' || n || ' - Company ' || ((n % $companies) + 1),
       (10000 + (n * 7919) % 5000000)::numeric(15,2),
       s.stage,
       (ARRAY['low', 'medium', 'high'])[1 + n % 3],
       40 + (n % 60), round((40 + (n % 60)) * 0.8),
       CASE WHEN s.stage IN ('closed_won', 'closed_lost') THEN now() - ((n % 730) || ' days')::interval END
FROM generate_series(1, $deals) n
JOIN companies c ON c.uei = 'BENCH' || lpad(((n % $companies) + 1)::text, 7, '0')
CROSS JOIN LATERAL (SELECT CASE
    WHEN n % 4 = 0 THEN CASE WHEN n % 12 = 0 THEN 'closed_lost' ELSE 'closed_won' END
    ELSE (ARRAY['new_match', 'initial_outreach', 'contact_made', 'qualified', 'proposal_sent', 'negotiation'])[1 + n % 6]
  END AS stage) s;

INSERT INTO contacts (company_id, full_name, email)
SELECT c.id, 'Contact ' || n, 'contact' || n || '@bench.example'
FROM generate_series(1, 4000) n
JOIN companies c ON c.uei = 'BENCH' || lpad(((n % $companies) + 1)::text, 7, '0');

INSERT INTO activities (activity_type, subject, company_id, deal_id, created_at)
SELECT (ARRAY['note', 'call', 'email', 'meeting', 'task'])[1 + n % 5], 'Activity ' || n, d.company_id, d.id,
       now() - ((n % 10000) || ' minutes')::interval
FROM (SELECT id, company_id, row_number() OVER () AS n FROM deals LIMIT 50000) d;

INSERT INTO sync_queue (entity_type, entity_id, operation, status)
SELECT 'deal', gen_random_uuid(), 'update', (ARRAY['pending', 'completed', 'completed', 'failed', 'dead'])[1 + n % 5]
FROM generate_series(1, 20000) n;

INSERT INTO crmsync.sync_runs (trigger, status, started_at, finished_at, counts)
SELECT 'schedule', 'succeeded', now() - (n * interval '5 minutes'), now() - (n * interval '5 minutes') + interval '3 seconds',
       '{\"deals\": 10}'
FROM generate_series(1, 500) n;
";

struct Bench {
    app: Router,
    state: ApiState,
}

impl Bench {
    async fn get(&self, path: &str) -> Duration {
        let request = Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("request");
        let started = Instant::now();
        let response = self.app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{path}: {}", String::from_utf8_lossy(&body));
        elapsed
    }
}

struct Row {
    case: &'static str,
    samples: Vec<Duration>,
    goal: Option<Duration>,
}

fn percentile(sorted: &[Duration], pct: f64) -> Duration {
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test` does not.
    let full = std::env::args().any(|arg| arg == "--bench");
    let size = usize::from(!full);
    let (deals, companies_count) = (DEALS[size], COMPANIES[size]);
    // Requests per case in the full run are divided by this in the smoke run.
    let divisor = if full { 1 } else { 50 };

    let db = TestDb::new().await;
    let fill = FILL
        .replace("$companies", &companies_count.to_string())
        .replace("$deals", &deals.to_string());
    let started = Instant::now();
    {
        let client = db.pool().get().await.expect("client");
        client.batch_execute(&fill).await.expect("fill");
        client.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
        let count: i64 = client
            .query_one("SELECT count(*) FROM deals", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, deals);
    }
    eprintln!("filled {deals} deals in {:.1} s", started.elapsed().as_secs_f64());

    let state = ApiState::new(db.pool().clone(), &ApiConfig::with_token(TOKEN));
    let bench = Bench {
        app: router(state.clone()),
        state,
    };
    let client = db.pool().get().await.expect("client");
    let ids: Vec<Uuid> = client
        .query("SELECT id FROM deals", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let companies: Vec<Uuid> = client
        .query("SELECT id FROM companies", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    drop(client);
    let mut rng = rand::rng();

    // Warm-up: connections opened, statements prepared, caches of PostgreSQL filled.
    for _ in 0..5 {
        bench.state.stats_cache().invalidate();
        bench.get("/api/dashboard/stats").await;
        bench.get("/api/deals").await;
    }

    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for _ in 0..(100 / divisor).max(2) {
        bench.state.stats_cache().invalidate();
        samples.push(bench.get("/api/dashboard/stats").await);
    }
    rows.push(Row {
        case: "GET /api/dashboard/stats, uncached (all 5 queries)",
        samples,
        goal: Some(Duration::from_millis(150)),
    });

    bench.get("/api/dashboard/stats").await;
    let samples = sequentially(&bench, 2_000 / divisor, || "/api/dashboard/stats".to_owned()).await;
    rows.push(Row {
        case: "GET /api/dashboard/stats, cached",
        samples,
        goal: Some(Duration::from_millis(2)),
    });

    let samples = sequentially(&bench, 1_000 / divisor, || "/api/deals".to_owned()).await;
    rows.push(Row {
        case: "GET /api/deals (first page of 20)",
        samples,
        goal: Some(Duration::from_millis(10)),
    });
    let samples = sequentially(&bench, 1_000 / divisor, || {
        format!("/api/deals?cursor={}", ids.choose(&mut rng).expect("ids"))
    })
    .await;
    rows.push(Row {
        case: "GET /api/deals?cursor= (a page at a random depth)",
        samples,
        goal: Some(Duration::from_millis(10)),
    });
    let samples = sequentially(&bench, 1_000 / divisor, || {
        format!(
            "/api/deals?stage=negotiation&cursor={}",
            ids.choose(&mut rng).expect("ids")
        )
    })
    .await;
    rows.push(Row {
        case: "GET /api/deals?stage=negotiation&cursor= (filtered, random depth)",
        samples,
        goal: Some(Duration::from_millis(10)),
    });
    let samples = sequentially(&bench, 1_000 / divisor, || {
        format!(
            "/api/deals?company_id={}",
            companies.choose(&mut rng).expect("companies")
        )
    })
    .await;
    rows.push(Row {
        case: "GET /api/deals?company_id= (one company's deals)",
        samples,
        goal: Some(Duration::from_millis(10)),
    });
    let samples = sequentially(&bench, 500 / divisor, || {
        format!("/api/deals?limit=100&cursor={}", ids.choose(&mut rng).expect("ids"))
    })
    .await;
    rows.push(Row {
        case: "GET /api/deals?limit=100&cursor= (100 per page)",
        samples,
        goal: None,
    });

    println!("| request ({deals} deals) | requests | p50 ms | p99 ms | goal (p99) | met |");
    println!("|---|---:|---:|---:|---:|:---:|");
    for mut row in rows {
        row.samples.sort();
        let p50 = percentile(&row.samples, 50.0);
        let p99 = percentile(&row.samples, 99.0);
        let (goal, met) = match row.goal {
            Some(goal) => (
                format!("≤ {} ms", ms(goal).trim_end_matches('0').trim_end_matches('.')),
                if p99 <= goal { "yes" } else { "no" },
            ),
            None => ("—".to_owned(), "—"),
        };
        println!(
            "| {} | {} | {} | {} | {goal} | {met} |",
            row.case,
            row.samples.len(),
            ms(p50),
            ms(p99)
        );
    }
}

/// Sends `count` requests one after another (no concurrency: latency, not throughput), the path drawn per request.
async fn sequentially(bench: &Bench, count: usize, mut path: impl FnMut() -> String) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        samples.push(bench.get(&path()).await);
    }
    samples
}
