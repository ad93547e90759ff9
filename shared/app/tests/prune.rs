//! Retention against a real PostgreSQL: `prune` deletes only rows older than their table's retention, in batches,
//! leaves open rows alone, and leaves the webhook inbox able to recognise HubSpot's re-deliveries.

use std::time::Duration;

use crmsync_app::config::RetentionConfig;
use crmsync_app::prune::prune;
use crmsync_db::inbox::{NewInboxEvent, PgInboxStore};
use crmsync_db::test_db::TestDb;
use serde_json::{Value, json};
use uuid::Uuid;

/// Batches of 2 rows, so that a table with 3 rows to delete takes two statements.
fn retention() -> RetentionConfig {
    RetentionConfig {
        batch_size: 2,
        ..RetentionConfig::default()
    }
}

async fn execute(db: &TestDb, sql: &str) {
    let client = db.pool().get().await.expect("client");
    crmsync_db::Db::batch_execute(&client, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}\n{e:?}"));
}

async fn count(db: &TestDb, from: &str) -> i64 {
    let client = db.pool().get().await.expect("client");
    crmsync_db::Db::query_one(&client, &format!("SELECT count(*) FROM {from}"), &[])
        .await
        .unwrap_or_else(|e| panic!("{from}\n{e:?}"))
        .get(0)
}

fn payload(event_id: i64) -> Value {
    json!({ "eventId": event_id, "subscriptionId": 7, "portalId": 42, "occurredAt": 1_700_000_000_000_i64 + event_id,
            "subscriptionType": "deal.propertyChange", "objectId": 1000 + event_id, "propertyName": "dealstage",
            "propertyValue": "closedwon", "changeSource": "CRM_UI", "attemptNumber": 0 })
}

/// Stores HubSpot's event `event_id` as a delivery would; returns the row's id, or None when it was a duplicate.
async fn deliver(inbox: &PgInboxStore, event_id: i64) -> Option<Uuid> {
    let payload = payload(event_id);
    let event = NewInboxEvent {
        portal_id: 42,
        subscription_id: 7,
        event_id,
        occurred_at: 1_700_000_000_000 + event_id,
        event_type: "deal.propertyChange",
        object_type: Some("deals"),
        object_id: None,
        payload: &payload,
    };
    inbox.insert_batch(&[event]).await.expect("stored").into_iter().next()
}

/// Sets an inbox row's status and how many days ago it was received.
async fn settle(db: &TestDb, id: Uuid, status: &str, days_ago: i32) {
    execute(
        db,
        &format!(
            "UPDATE crmsync.webhook_inbox SET status = '{status}', received_at = now() - interval '{days_ago} days'
             WHERE id = '{id}'"
        ),
    )
    .await;
}

#[tokio::test]
async fn prune_deletes_only_rows_past_their_retention_in_batches_and_leaves_open_rows() {
    let db = TestDb::new().await;
    let inbox = PgInboxStore::new(db.pool().clone());
    let old_applied = deliver(&inbox, 1).await.unwrap();
    let young_applied = deliver(&inbox, 2).await.unwrap();
    let old_pending = deliver(&inbox, 3).await.unwrap();
    let dead_20_days = deliver(&inbox, 4).await.unwrap();
    let dead_40_days = deliver(&inbox, 5).await.unwrap();
    settle(&db, old_applied, "applied", 15).await;
    settle(&db, young_applied, "skipped", 3).await;
    settle(&db, old_pending, "pending", 60).await;
    settle(&db, dead_20_days, "dead", 20).await;
    settle(&db, dead_40_days, "dead", 40).await;
    execute(
        &db,
        &format!(
            "INSERT INTO sync_queue (entity_type, entity_id, operation, status, completed_at, created_at)
             SELECT 'deal', gen_random_uuid(), 'update', 'completed', now() - interval '20 days', now() - interval '20 days'
             FROM generate_series(1, 3);
             INSERT INTO sync_queue (entity_type, entity_id, operation, status, completed_at)
             VALUES ('deal', gen_random_uuid(), 'update', 'completed', now() - interval '2 days');
             INSERT INTO sync_queue (entity_type, entity_id, operation, status, created_at) VALUES
               ('deal', gen_random_uuid(), 'create', 'pending', now() - interval '60 days'),
               ('deal', gen_random_uuid(), 'create', 'dead', now() - interval '60 days'),
               ('company', gen_random_uuid(), 'create', 'failed', now() - interval '60 days');
             INSERT INTO crmsync.echo_ledger (object_type, hubspot_id, entity_id, property, value_hash, written_at) VALUES
               ('deals', '1', gen_random_uuid(), 'amount', 'h1', now() - interval '8 days'),
               ('deals', '1', gen_random_uuid(), 'amount', 'h2', now() - interval '1 day');
             INSERT INTO crmsync.sync_runs (trigger, status, started_at) VALUES
               ('schedule', 'succeeded', now() - interval '40 days'),
               ('schedule', 'running', now() - interval '40 days'),
               ('schedule', 'partial', now() - interval '5 days');
             INSERT INTO crmsync.sync_conflicts
               (entity_type, entity_id, hubspot_id, property, winner, rule, hubspot_changed_at, inbox_id, created_at)
             VALUES
               ('deal', gen_random_uuid(), '1', 'amount', 'local', 'local', now(), NULL, now() - interval '100 days'),
               ('deal', gen_random_uuid(), '1', 'amount', 'local', 'local', now(), '{old_applied}', now() - interval '10 days');"
        ),
    )
    .await;

    let report = prune(db.pool(), &retention(), Duration::from_secs(60))
        .await
        .expect("pruned");

    let deleted = |table: &str| report.deleted.get(table).copied();
    assert_eq!(deleted("echo_ledger"), Some(1));
    assert_eq!(
        deleted("webhook_inbox"),
        Some(1),
        "only the applied event older than 14 days"
    );
    assert_eq!(
        deleted("webhook_inbox_dead"),
        Some(1),
        "only the dead event older than 30 days"
    );
    assert_eq!(deleted("sync_queue"), Some(3), "the completed rows older than 14 days");
    assert_eq!(deleted("sync_runs"), Some(1), "the finished run older than 30 days");
    assert_eq!(deleted("sync_conflicts"), Some(1), "the conflict older than 90 days");
    // Per table, batches of 2 until one comes back short: 1 + 1 + 1 + 2 (3 rows) + 1 + 1.
    assert_eq!(report.batches, 7);
    assert!(report.complete);

    let left: Vec<Uuid> = {
        let client = db.pool().get().await.unwrap();
        crmsync_db::Db::query(&client, "SELECT id FROM crmsync.webhook_inbox ORDER BY event_id", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    assert_eq!(left, vec![young_applied, old_pending, dead_20_days]);
    assert_eq!(count(&db, "sync_queue WHERE status = 'completed'").await, 1);
    assert_eq!(
        count(&db, "sync_queue WHERE status <> 'completed'").await,
        3,
        "open and dead rows stay"
    );
    assert_eq!(count(&db, "crmsync.sync_runs WHERE status = 'running'").await, 1);
    assert_eq!(count(&db, "crmsync.sync_runs").await, 2);
    // The young conflict that recorded the pruned event stays, without its link.
    assert_eq!(count(&db, "crmsync.sync_conflicts WHERE inbox_id IS NULL").await, 1);
    assert_eq!(count(&db, "crmsync.sync_conflicts").await, 1);

    // A second prune finds nothing more.
    let again = prune(db.pool(), &retention(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(again.deleted.values().sum::<u64>(), 0);
}

#[tokio::test]
async fn after_prune_a_redelivered_event_younger_than_seven_days_is_still_a_duplicate() {
    let db = TestDb::new().await;
    let inbox = PgInboxStore::new(db.pool().clone());
    let first = deliver(&inbox, 10).await.expect("the first delivery is stored");
    // Applied six days ago: inside the shortest inbox retention allowed.
    settle(&db, first, "applied", 6).await;
    let shortest = RetentionConfig {
        inbox_days: crmsync_app::config::MIN_INBOX_DAYS,
        inbox_dead_days: crmsync_app::config::MIN_INBOX_DAYS,
        ..retention()
    };

    let report = prune(db.pool(), &shortest, Duration::from_secs(60)).await.unwrap();
    assert_eq!(report.deleted.get("webhook_inbox"), Some(&0));

    assert_eq!(
        deliver(&inbox, 10).await,
        None,
        "HubSpot's re-delivery is recognised and not stored again"
    );
    assert_eq!(count(&db, "crmsync.webhook_inbox").await, 1);

    // Past the retention the event is forgotten, which is why the retention may not go below 7 days.
    settle(&db, first, "applied", 8).await;
    let report = prune(db.pool(), &shortest, Duration::from_secs(60)).await.unwrap();
    assert_eq!(report.deleted.get("webhook_inbox"), Some(&1));
}

#[tokio::test]
async fn a_spent_budget_starts_no_batch_and_says_the_prune_is_incomplete() {
    let db = TestDb::new().await;
    execute(
        &db,
        "INSERT INTO crmsync.echo_ledger (object_type, hubspot_id, entity_id, property, value_hash, written_at)
         VALUES ('deals', '1', gen_random_uuid(), 'amount', 'h1', now() - interval '30 days')",
    )
    .await;
    let report = prune(db.pool(), &retention(), Duration::ZERO).await.unwrap();
    assert!(!report.complete);
    assert_eq!(report.batches, 0);
    assert_eq!(count(&db, "crmsync.echo_ledger").await, 1);
}
