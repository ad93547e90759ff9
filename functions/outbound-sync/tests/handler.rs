//! The outbound-sync handler called as the Lambda runtime would, against real PostgreSQL, the HubSpot simulator
//! and moto's SQS: the schedule, retries through SQS, the DLQ after max attempts, and the redrive back.

use std::ops::Deref;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use crmsync_app::config::RetentionConfig;
use crmsync_domain::sync::{EntityType, RetryMessage, RetryPolicy, RetryTarget};
use crmsync_hubspot_sim::FaultConfig;
use crmsync_queue::test_support::sqs_client;
use crmsync_queue::{ReceivedMessage, SqsRetryQueue};
use crmsync_sync::{OutboundSync, SyncSettings, purge_redriven};
use crmsync_testkit::{TestApp, fresh_queue};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};

/// The app with one match ingested and the handler's sync: no retries inside the HubSpot client, `max_attempts`
/// attempts 0.5–1 s apart, retry messages on `queue` when given.
struct Harness {
    app: TestApp,
    sync: OutboundSync<SqsRetryQueue>,
}

impl Deref for Harness {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

async fn harness(queue: Option<SqsRetryQueue>, max_attempts: i32) -> Harness {
    let app = TestApp::with_hubspot().await;
    let settings = SyncSettings {
        retry: RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        },
        ..SyncSettings::default()
    };
    let sync = app.outbound_sync(app.hubspot_without_retries(), queue, settings);
    app.ingest(
        &json!({ "opportunity": { "notice_id": "FN-1", "title": "Satellite ground station support" },
                        "contractor": { "uei": "FNUEI0000001", "name": "Orbit LLC" }, "match_score": 77 }),
    )
    .await;
    Harness { app, sync }
}

fn scheduled_event() -> LambdaEvent<Value> {
    let mut context = Context::default();
    context.deadline = (std::time::SystemTime::now() + Duration::from_secs(120))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let event = json!({ "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
                        "account": "123456789012", "time": "2026-11-25T10:00:00Z", "region": "us-east-1",
                        "resources": [], "detail": {} });
    LambdaEvent::new(event, context)
}

async fn test_queue() -> SqsRetryQueue {
    fresh_queue("crmsync-test").await
}

#[tokio::test]
async fn a_scheduled_event_drains_the_queue() {
    let h = harness(None, 8).await;
    let report = outbound_sync::handle(&h.sync, &RetentionConfig::default(), scheduled_event())
        .await
        .expect("handled");
    assert_eq!(report["companies_created"], 1);
    assert_eq!(report["deals_created"], 1);
    assert_eq!(h.queue_row("deal").await.status, "completed");
}

fn reconcile_event() -> LambdaEvent<Value> {
    let mut event = scheduled_event();
    // EventBridge Scheduler delivers the schedule's Input as it is (template.yaml's ReconcileSchedule).
    event.payload = json!({ "action": outbound_sync::RECONCILE_ACTION });
    event
}

#[tokio::test]
async fn the_reconcile_schedule_applies_a_hubspot_change_whose_webhook_was_lost() {
    let h = harness(None, 8).await;
    outbound_sync::handle(&h.sync, &RetentionConfig::default(), scheduled_event())
        .await
        .expect("drained");
    let deal = h.single_deal().await;
    let won = h.stage_id("closed_won").await;
    h.sim().set_drop_webhooks(true);
    h.sim_act(
        "move-deal-stage",
        json!({ "dealId": deal.hubspot_deal_id.clone().unwrap(), "stage": won }),
    )
    .await;

    let without_applier = outbound_sync::handle(&h.sync, &RetentionConfig::default(), reconcile_event())
        .await
        .unwrap_err();
    assert!(matches!(without_applier, outbound_sync::SyncFailure::NoApplier));

    let sync = h
        .outbound_sync(h.hubspot_without_retries(), None, SyncSettings::default())
        .with_inbox(h.applier(Some("54321".into())));
    let report = outbound_sync::handle(&sync, &RetentionConfig::default(), reconcile_event())
        .await
        .expect("reconciled");
    assert_eq!(report["started_by"], "schedule");
    assert!(report["property_changes"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(h.single_deal().await.stage, "closed_won");
    assert_eq!(
        h.count("crmsync.sync_runs WHERE trigger = 'reconcile' AND status = 'succeeded'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_refresh_owners_action_caches_hubspots_owners_and_reconciliation_keeps_them_current() {
    let h = harness(None, 8).await;
    let sync = h
        .outbound_sync(h.hubspot_without_retries(), None, SyncSettings::default())
        .with_inbox(h.applier(Some("54321".into())));
    let mut event = scheduled_event();
    event.payload = json!({ "action": outbound_sync::OWNERS_ACTION });
    let report = outbound_sync::handle(&sync, &RetentionConfig::default(), event)
        .await
        .expect("refreshed");
    assert_eq!(
        (report["owners"].as_u64(), report["active"].as_u64()),
        (Some(3), Some(2)),
        "{report}"
    );
    let names: Vec<String> = h
        .rows("SELECT first_name || ' ' || last_name FROM crmsync.hubspot_owners WHERE NOT archived ORDER BY id")
        .await
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(names, ["Avery Cole", "Jordan Reyes"]);

    // An owner HubSpot no longer lists is kept, archived, by the next reconciliation.
    reqwest::Client::new()
        .post(format!("{}/__sim/owners", h.sim().base_url()))
        .json(&json!([{"id": 41002, "email": "jordan.reyes@example.com", "firstName": "Jordan", "lastName": "Reyes"}]))
        .send()
        .await
        .expect("replace owners");
    let report = outbound_sync::handle(&sync, &RetentionConfig::default(), reconcile_event())
        .await
        .expect("reconciled");
    assert_eq!(report["owners"]["gone"], 1, "{report}");
    assert_eq!(h.count("crmsync.hubspot_owners WHERE archived").await, 2);
}

#[tokio::test]
async fn an_unknown_event_is_refused_as_non_retryable() {
    let h = harness(None, 8).await;
    let error = outbound_sync::handle(
        &h.sync,
        &RetentionConfig::default(),
        LambdaEvent::new(json!({ "hello": 1 }), Context::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(lambda_runtime::Diagnostic::from(error).error_type, "NonRetryable");
}

#[tokio::test]
async fn without_sqs_a_failed_item_still_comes_back_through_the_schedule() {
    // RETRY_QUEUE_URL unset: Postgres alone carries the retry.
    let h = harness(None, 8).await;
    h.sim().set_faults(FaultConfig {
        error_rate: 1.0,
        ..FaultConfig::default()
    });
    let report = outbound_sync::handle(&h.sync, &RetentionConfig::default(), scheduled_event())
        .await
        .unwrap();
    assert_eq!(
        (report["failed"].as_u64(), report["retry_messages"].as_u64()),
        (Some(1), Some(0))
    );
    h.sim().set_faults(FaultConfig::default());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let report = outbound_sync::handle(&h.sync, &RetentionConfig::default(), scheduled_event())
        .await
        .unwrap();
    assert_eq!(
        (report["companies_created"].as_u64(), report["deals_created"].as_u64()),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn retries_flow_through_sqs_into_the_dlq_once_the_retry_window_passed_and_redrive_back() {
    let queue = test_queue().await;
    let h = harness(Some(queue.clone()), 3).await;
    h.sim().set_faults(FaultConfig {
        error_rate: 1.0,
        ..FaultConfig::default()
    });

    // Attempt 1 on the schedule: the company fails, a delayed retry message is sent, the deal waits for it.
    let report = outbound_sync::handle(&h.sync, &RetentionConfig::default(), scheduled_event())
        .await
        .unwrap();
    assert_eq!(
        (
            report["failed"].as_u64(),
            report["retry_messages"].as_u64(),
            report["deferred"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(
        h.queue_row("deal").await.status,
        "pending",
        "the deal waits; it is not failed for its company"
    );

    // A second retryable failure: past max attempts would not kill it, but the item's retry window is over (its
    // first failure moved back a day, as if the outage had lasted that long).
    h.execute("UPDATE crmsync.sync_retry_state SET first_failed_at = now() - interval '24 hours 1 second'")
        .await;
    let failures_reported = deliver_until_dead_lettered(&h, &queue, 1).await;
    assert_eq!(
        h.queue_row("company").await.status,
        "dead",
        "attempt 2 failed after the window"
    );
    assert!(failures_reported >= 1, "the dead item's message was reported failed");
    assert_eq!(
        queue.dlq_depth().await.unwrap(),
        Some(1),
        "the redrive policy moved it to the DLQ"
    );
    assert_eq!(h.queue_row("company").await.attempts, 2);

    // HubSpot recovers; an operator redrives: the row is pending again, its DLQ message is gone, and it syncs.
    h.sim().set_faults(FaultConfig::default());
    let redriven = h.sync.store().redrive(10).await.unwrap();
    assert_eq!(redriven.len(), 1);
    assert_eq!(purge_redriven(h.sync.store(), &queue).await.unwrap(), 1);
    assert_eq!(queue.dlq_depth().await.unwrap(), Some(0));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = outbound_sync::handle(&h.sync, &RetentionConfig::default(), scheduled_event())
        .await
        .unwrap();
    assert_eq!(
        (report["companies_created"].as_u64(), report["deals_created"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
}

/// Hands `messages` to the handler as the Lambda's SQS event and deletes those it did not report failed. Returns
/// how many it reported failed.
async fn handle_and_acknowledge(h: &Harness, queue: &SqsRetryQueue, messages: &[ReceivedMessage]) -> usize {
    let event = SqsEvent {
        records: messages
            .iter()
            .map(|m| SqsMessage {
                message_id: Some(m.message_id.clone()),
                body: Some(m.body.clone()),
                ..SqsMessage::default()
            })
            .collect(),
    };
    let response = outbound_sync::handle_sqs(&h.sync, event, Duration::from_secs(60))
        .await
        .unwrap();
    for message in messages {
        if !response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == message.message_id)
        {
            queue.delete(&message.receipt_handle).await.unwrap();
        }
    }
    response.batch_item_failures.len()
}

/// Plays the Lambda's SQS event source: delivers what the queue holds to the handler and deletes what it did not
/// report failed, until the DLQ holds `dlq_depth` messages. Returns how many failures the handler reported.
async fn deliver_until_dead_lettered(h: &Harness, queue: &SqsRetryQueue, dlq_depth: i64) -> usize {
    let mut failures_reported = 0;
    for _ in 0..40 {
        let messages = queue.receive(Duration::from_secs(1), None).await.unwrap();
        if messages.is_empty() {
            if queue.dlq_depth().await.unwrap() == Some(dlq_depth) {
                break;
            }
            continue;
        }
        failures_reported += handle_and_acknowledge(h, queue, &messages).await;
    }
    failures_reported
}

#[tokio::test]
async fn an_item_dead_on_a_permanent_error_also_reaches_the_dlq_so_its_alarm_fires() {
    let queue = test_queue().await;
    let h = harness(Some(queue.clone()), 8).await;
    // HubSpot refuses the deal's stage id (a per-input validation error): dead at once, no retries.
    h.execute("UPDATE crmsync.settings SET value = jsonb_set(value, '{stage_ids,new_match}', '\"999999\"')")
        .await;
    let report = outbound_sync::handle(&h.sync, &RetentionConfig::default(), scheduled_event())
        .await
        .unwrap();
    assert_eq!(
        (report["dead"].as_u64(), report["companies_created"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    assert!(deliver_until_dead_lettered(&h, &queue, 1).await >= 1);
    assert_eq!(queue.dlq_depth().await.unwrap(), Some(1));
    assert_eq!(h.queue_row("deal").await.status, "dead");
}

/// The company's queue row as a retry message with `attempts`, after setting the row's state with `sql`.
async fn company_message(h: &Harness, sql: &str, attempts: i32) -> RetryMessage {
    h.execute(sql).await;
    let row = h.queue_row("company").await;
    RetryMessage {
        target: RetryTarget::SyncQueue {
            id: row.id,
            entity_type: EntityType::Company,
            entity_id: row.entity_id,
        },
        attempts,
    }
}

/// Receives what the queue holds (waiting up to `wait`), hands it to the handler, and deletes what it did not
/// report failed. Returns (messages received, failures reported).
async fn deliver_once(h: &Harness, queue: &SqsRetryQueue, wait: Duration) -> (Vec<String>, usize) {
    let messages = queue.receive(wait, None).await.unwrap();
    let failures = handle_and_acknowledge(h, queue, &messages).await;
    (messages.into_iter().map(|m| m.body).collect(), failures)
}

#[tokio::test]
async fn a_retry_message_for_a_row_not_due_yet_is_replaced_by_one_for_the_rest_of_the_wait() {
    let queue = test_queue().await;
    let h = harness(Some(queue.clone()), 8).await;
    // The backoff is longer than the message's delay was (SQS caps delays at 900 s): here 3 s left.
    let message = company_message(
        &h,
        "DELETE FROM sync_queue WHERE entity_type = 'deal';
         UPDATE sync_queue SET status = 'failed', attempts = 1, next_attempt_at = now() + interval '3 seconds';",
        1,
    )
    .await;
    queue.send(&[(message.clone(), Duration::ZERO)]).await.unwrap();
    let before = h.sim().total_requests();
    let (received, failures) = deliver_once(&h, &queue, Duration::from_secs(2)).await;
    assert_eq!((received.len(), failures), (1, 0), "acknowledged");
    assert_eq!(h.sim().total_requests(), before, "not retried before it is due");
    let company = h.queue_row("company").await;
    assert_eq!((company.status.as_str(), company.attempts), ("failed", 1));

    // A fresh message with the same attempts arrives when the row is due, and that one retries it.
    let mut fresh = Vec::new();
    for _ in 0..8 {
        let (received, _) = deliver_once(&h, &queue, Duration::from_secs(1)).await;
        if !received.is_empty() {
            fresh = received;
            break;
        }
    }
    let fresh: RetryMessage = serde_json::from_str(&fresh[0]).unwrap();
    assert_eq!(fresh, message);
    assert_eq!(h.queue_row("company").await.status, "completed");
}

#[tokio::test]
async fn a_stale_retry_message_is_acknowledged_without_another_attempt() {
    let queue = test_queue().await;
    let h = harness(Some(queue.clone()), 8).await;
    // The schedule already made attempt 2; a message from after attempt 1 arrives late.
    let message = company_message(
        &h,
        "UPDATE sync_queue SET status = 'failed', attempts = 2, next_attempt_at = now() WHERE entity_type = 'company'",
        1,
    )
    .await;
    queue.send(&[(message, Duration::ZERO)]).await.unwrap();
    let before = h.sim().total_requests();
    let (received, failures) = deliver_once(&h, &queue, Duration::from_secs(2)).await;
    assert_eq!((received.len(), failures), (1, 0));
    assert_eq!(h.sim().total_requests(), before, "no extra attempt");
    let company = h.queue_row("company").await;
    assert_eq!((company.status.as_str(), company.attempts), ("failed", 2));
    assert!(
        queue.receive(Duration::from_secs(1), None).await.unwrap().is_empty(),
        "no new chain"
    );
}

#[tokio::test]
async fn purge_removes_only_sync_messages_whose_rows_are_no_longer_dead() {
    let queue = test_queue().await;
    let h = harness(Some(queue.clone()), 8).await;
    let redriven = company_message(&h, "UPDATE sync_queue SET status = 'pending'", 1).await;
    h.execute("UPDATE sync_queue SET status = 'dead' WHERE entity_type = 'deal'")
        .await;
    let dead_row = h.queue_row("deal").await;
    let dead = json!({ "sync_queue_id": dead_row.id.to_string(), "entity_type": "deal",
                       "entity_id": dead_row.entity_id.to_string(), "attempts": 8 });
    let wire = serde_json::to_value(&redriven).unwrap();
    let inbox = json!({ "sync_queue_id": wire["sync_queue_id"], "entity_type": "webhook_inbox",
                        "entity_id": wire["entity_id"], "attempts": 1 });
    let client = sqs_client().await;
    for body in [
        serde_json::to_string(&redriven).unwrap(),
        dead.to_string(),
        inbox.to_string(),
        "not a retry message".to_owned(),
    ] {
        client
            .send_message()
            .queue_url(queue.dlq_url().unwrap())
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(purge_redriven(h.sync.store(), &queue).await.unwrap(), 1);
    assert_eq!(
        queue.dlq_depth().await.unwrap(),
        Some(3),
        "the others stay for an operator"
    );
}

#[tokio::test]
async fn the_daily_prune_event_deletes_completed_rows_past_retention_and_keeps_open_ones() {
    let h = harness(None, 8).await;
    outbound_sync::handle(&h.sync, &RetentionConfig::default(), scheduled_event())
        .await
        .expect("drained");
    // The drain completed both rows; one of them finished a month ago. A new change of the deal is pending.
    h.execute("UPDATE sync_queue SET completed_at = now() - interval '30 days' WHERE entity_type = 'company'")
        .await;
    h.execute("INSERT INTO sync_queue (entity_type, entity_id, operation) SELECT 'deal', id, 'update' FROM deals")
        .await;

    let mut event = scheduled_event();
    event.payload = json!({ "action": "prune" });
    let report = outbound_sync::handle(&h.sync, &RetentionConfig::default(), event)
        .await
        .expect("pruned");

    assert_eq!(report["deleted"]["sync_queue"], 1, "{report}");
    assert_eq!(report["complete"], true);
    assert_eq!(h.count("sync_queue WHERE entity_type = 'company'").await, 0);
    assert_eq!(
        h.count("sync_queue WHERE entity_type = 'deal'").await,
        2,
        "the recent completed row and the pending one stay"
    );
}
