//! Fault injection over real HTTP: 5xx, 423, slow answers, and connections dropped after the
//! write was applied (no response bytes at all).

use std::time::Duration;

use crmsync_hubspot_sim::{FaultConfig, FaultKind, SimConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestSim;

fn upsert_body(key: &str) -> serde_json::Value {
    json!({"inputs": [{"idProperty": "crmsync_id", "id": key,
        "properties": {"dealname": key, "pipeline": "default", "dealstage": "qualifiedtobuy"}}]})
}

async fn deal_keys(sim: &TestSim) -> Vec<String> {
    let state = sim.admin_get("/__sim/state?type=deals").await;
    state.body["objects"]["deals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["properties"]["crmsync_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn an_error_rate_set_at_start_answers_5xx_but_never_faults_the_admin_api() {
    let sim = TestSim::with(SimConfig {
        faults: FaultConfig {
            error_rate: 1.0,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let answer = sim.get("/crm/v3/objects/deals").await;
        assert!([500, 502, 503].contains(&answer.status), "{}", answer.status);
        assert_eq!(answer.body["status"], "error");
        seen.insert(answer.status);
    }
    assert!(seen.len() > 1, "the 5xx status varies: {seen:?}");
    assert_eq!(sim.admin_get("/__sim/state").await.status, 200);
    assert_eq!(sim.admin_get("/__sim/requests").await.status, 200);
}

#[tokio::test]
async fn scripted_faults_from_the_admin_api_apply_to_the_next_requests_in_order() {
    let sim = TestSim::start().await;
    let set = sim.admin_post("/__sim/faults", json!({"next": ["423", "503"]})).await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let locked = sim.get("/crm/v3/objects/deals").await;
    assert_eq!(locked.status, 423);
    assert_eq!(locked.body["category"], "LOCKED");
    assert_eq!(sim.get("/crm/v3/objects/deals").await.status, 503);
    assert_eq!(sim.get("/crm/v3/objects/deals").await.status, 200);
    let bad = sim.admin_post("/__sim/faults", json!({"errorRate": 2})).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["message"].as_str().unwrap().contains("errorRate"));
}

#[tokio::test]
async fn the_same_seed_gives_the_same_fault_sequence() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let sim = TestSim::with(SimConfig {
            seed,
            faults: FaultConfig {
                error_rate: 0.3,
                lock_rate: 0.2,
                ..FaultConfig::default()
            },
            ..SimConfig::default()
        })
        .await;
        let mut out = Vec::new();
        for _ in 0..25 {
            out.push(sim.get("/crm/v3/objects/deals").await.status);
        }
        out
    }
    let first = statuses(42).await;
    assert_eq!(first, statuses(42).await);
    assert!(first.contains(&200) && first.contains(&423), "{first:?}");
    assert_ne!(first, statuses(43).await);
}

#[tokio::test]
async fn a_slow_answer_outlasts_the_client_timeout_but_the_write_still_happens() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    sim.sim.set_faults(FaultConfig {
        next: vec![FaultKind::Slow],
        slow_delay_ms: 1_500,
        ..FaultConfig::default()
    });
    let error = sim
        .http
        .post(sim.url("/crm/v3/objects/deals/batch/upsert"))
        .bearer_auth("sim-token")
        .timeout(Duration::from_millis(200))
        .json(&upsert_body("slow-1"))
        .send()
        .await
        .expect_err("the client gives up first");
    assert!(error.is_timeout(), "{error}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while deal_keys(&sim).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow write was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(deal_keys(&sim).await, ["slow-1"]);
}

#[tokio::test]
async fn a_dropped_connection_after_a_write_gives_no_answer_but_the_write_is_applied() {
    let sim = TestSim::start().await;
    sim.setup_b2g().await;
    sim.sim.set_faults(FaultConfig {
        next: vec![FaultKind::DropAfterWrite],
        ..FaultConfig::default()
    });
    let error = sim
        .http
        .post(sim.url("/crm/v3/objects/deals/batch/upsert"))
        .bearer_auth("sim-token")
        .json(&upsert_body("dropped-1"))
        .send()
        .await
        .expect_err("no response arrives");
    assert!(!error.is_timeout() && !error.is_status(), "{error}");
    assert_eq!(deal_keys(&sim).await, ["dropped-1"]);
    assert_eq!(
        sim.sim
            .request_count("POST /crm/v3/objects/{object_type}/batch/upsert", "dropped"),
        1
    );
    // A naive retry of the same upsert finds the record instead of duplicating it.
    let retry = sim
        .post("/crm/v3/objects/deals/batch/upsert", upsert_body("dropped-1"))
        .await;
    assert_eq!(retry.body["results"][0]["new"], false);
    assert_eq!(deal_keys(&sim).await, ["dropped-1"]);
}

#[tokio::test]
async fn a_dropped_connection_sends_not_a_single_response_byte() {
    let sim = TestSim::start().await;
    sim.sim.set_faults(FaultConfig {
        next: vec![FaultKind::DropAfterWrite],
        ..FaultConfig::default()
    });
    let body = r#"{"properties":{"name":"Raw"}}"#;
    let request = format!(
        "POST /crm/v3/objects/companies HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer sim-token\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        sim.sim.addr(),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(sim.sim.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    // EOF or a reset both end the read; either way nothing may have been sent.
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut received))
        .await
        .expect("the connection closes");
    assert!(received.is_empty(), "got {:?}", String::from_utf8_lossy(&received));
    let state = sim.admin_get("/__sim/state?type=companies").await;
    assert_eq!(state.body["objects"]["companies"][0]["properties"]["name"], "Raw");
}

#[tokio::test]
async fn a_drop_rate_applies_to_writes_and_leaves_reads_alone() {
    let sim = TestSim::with(SimConfig {
        faults: FaultConfig {
            drop_after_write_rate: 1.0,
            ..FaultConfig::default()
        },
        ..SimConfig::default()
    })
    .await;
    assert_eq!(sim.get("/crm/v3/objects/companies").await.status, 200);
    assert_eq!(
        sim.post("/crm/v3/objects/companies/search", json!({})).await.status,
        200
    );
    let write = sim
        .http
        .post(sim.url("/crm/v3/objects/companies"))
        .bearer_auth("sim-token")
        .json(&json!({"properties": {"name": "x"}}))
        .send()
        .await;
    assert!(write.is_err());
    assert_eq!(sim.sim.outcome_count("dropped"), 1);
}

#[tokio::test]
async fn scripted_477_504_524_and_403_answer_like_hubspot_and_its_edge() {
    let sim = TestSim::start().await;
    let set = sim
        .admin_post(
            "/__sim/faults",
            json!({"next": ["477", "504", "524", "403"], "migrationRetryAfterSecs": 3}),
        )
        .await;
    assert_eq!(set.status, 200, "{:?}", set.body);
    let migration = sim.get("/crm/objects/2026-03/deals").await;
    assert_eq!(migration.status, 477);
    assert_eq!(migration.header("retry-after"), Some("3"));
    assert_eq!(migration.body["category"], "MIGRATION_IN_PROGRESS");
    let gateway = sim.get("/crm/objects/2026-03/deals").await;
    assert_eq!((gateway.status, gateway.body["status"].as_str()), (504, Some("error")));
    let edge = sim.get("/crm/objects/2026-03/deals").await;
    assert_eq!(edge.status, 524);
    assert_eq!(edge.body, serde_json::Value::Null, "Cloudflare's HTML page, not JSON");
    let forbidden = sim.get("/crm/objects/2026-03/deals").await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.body["category"], "MISSING_SCOPES");
    assert!(forbidden.body["correlationId"].is_string());
    assert_eq!(sim.get("/crm/objects/2026-03/deals").await.status, 200);
}
