//! Behind a transaction-mode pooler (PgBouncer 1.18, which scripts/test starts; Supabase's on port 6543): nothing
//! prepared outlives its statement, no session state leaks between clients, the time limits hold, and migrations
//! refuse to run.

use std::time::{Duration, Instant};

use crmsync_db::test_db::TestDb;
use crmsync_db::{DatabaseSettings, DbError, Pool, Pooler, Timeouts, migrate};

const SHORT: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    pool_wait: Duration::from_secs(5),
    statement: Duration::from_millis(800),
    lock: Duration::from_millis(300),
    idle_in_transaction: Duration::from_secs(5),
};

#[tokio::test]
async fn many_clients_run_typed_statements_through_the_pooler_without_prepared_statement_clashes() {
    let db = TestDb::new().await;
    // Several pools stand for several Lambdas: each numbers its statements from zero, which is what clashed.
    let pools: Vec<Pool> = (0..4).map(|_| db.pooled_pool(Timeouts::BACKGROUND)).collect();
    let mut tasks = Vec::new();
    for (n, pool) in pools.iter().enumerate() {
        for m in 0..25_i64 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let client = pool.get().await?;
                let key = format!("pooler-test-{n}-{m}");
                client
                    .execute(
                        "INSERT INTO crmsync.settings (key, value) VALUES ($1, $2)",
                        &[&key, &serde_json::json!({ "n": m })],
                    )
                    .await?;
                let row = client
                    .query_one("SELECT value->>'n' FROM crmsync.settings WHERE key = $1", &[&key])
                    .await?;
                Ok::<_, DbError>(row.get::<_, String>(0) == m.to_string())
            }));
        }
    }
    for task in tasks {
        assert!(task.await.expect("task").expect("statement through the pooler"));
    }
    let client = db.pool().get().await.unwrap();
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM crmsync.settings WHERE key LIKE 'pooler-test-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 100);
}

#[tokio::test]
async fn limits_are_set_per_transaction_and_never_leak_to_the_next_client() {
    let db = TestDb::new().await;
    let pool = db.pooled_pool(SHORT);
    let mut client = pool.get().await.unwrap();
    let transaction = client.transaction().await.unwrap();
    let inside: (String, String, String) = {
        let row = transaction
            .query_one(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),
                        current_setting('idle_in_transaction_session_timeout')",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(inside, ("800ms".to_owned(), "300ms".to_owned(), "5s".to_owned()));
    transaction.commit().await.unwrap();
    drop(client);
    // Outside a transaction the server's defaults apply: nothing stayed on the server connection.
    let others = db.pooled_pool(Timeouts::BACKGROUND);
    for _ in 0..5 {
        let client = others.get().await.unwrap();
        let outside: String = client
            .query_one("SELECT current_setting('statement_timeout')", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(outside, "0", "a SET LOCAL leaked out of its transaction");
    }
}

/// Holds a lock on the settings row `key` from a direct session until the returned client is dropped.
async fn hold_row_lock(db: &TestDb, key: &str) -> tokio_postgres::Client {
    let holder = migrate::connect_url(db.direct_url()).await.unwrap();
    holder
        .execute(
            "INSERT INTO crmsync.settings (key, value) VALUES ($1, '1'::jsonb)",
            &[&key],
        )
        .await
        .unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT * FROM crmsync.settings WHERE key = '{key}' FOR UPDATE"
        ))
        .await
        .unwrap();
    holder
}

#[tokio::test]
async fn a_row_lock_held_by_another_session_ends_in_a_lock_timeout_directly_and_through_the_pooler() {
    let db = TestDb::new().await;
    let _holder = hold_row_lock(&db, "locked").await;
    for (route, pool) in [("direct", db.direct_pool(SHORT)), ("pooler", db.pooled_pool(SHORT))] {
        let mut client = pool.get().await.unwrap();
        let transaction = client.transaction().await.unwrap();
        let started = Instant::now();
        let error = transaction
            .execute(
                "UPDATE crmsync.settings SET value = '2'::jsonb WHERE key = 'locked'",
                &[],
            )
            .await
            .expect_err("the row is locked");
        assert!(error.is_unavailable(), "{route}: {error:?}");
        assert_eq!(
            error.sqlstate().map(|s| s.code()),
            Some("55P03"),
            "{route}: lock_not_available"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{route}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_statement_outside_a_transaction_is_bounded_on_both_routes() {
    let db = TestDb::new().await;
    let _holder = hold_row_lock(&db, "locked").await;
    // Directly the server's own limits (startup options) end it; through the pooler, the client's deadline does,
    // and the connection it leaves in an unknown state is closed rather than reused.
    for (route, pool) in [("direct", db.direct_pool(SHORT)), ("pooler", db.pooled_pool(SHORT))] {
        let client = pool.get().await.unwrap();
        let started = Instant::now();
        let error = client
            .execute(
                "UPDATE crmsync.settings SET value = '3'::jsonb WHERE key = 'locked'",
                &[],
            )
            .await
            .expect_err("the row is locked");
        assert!(error.is_unavailable(), "{route}: {error:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{route}: {:?}",
            started.elapsed()
        );
        drop(client);
        let again = pool.get().await.unwrap();
        let one: i32 = again.query_one("SELECT 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1, "{route}: the pool still serves");
    }
}

#[tokio::test]
async fn migrate_refuses_a_transaction_pooler_and_names_the_setting_that_fixes_it() {
    let db = TestDb::new().await;
    let settings = DatabaseSettings::parse(&db.pooled_url(), migrate::MIGRATION_TIMEOUTS)
        .unwrap()
        .with_pooler(Pooler::Transaction);
    let error = migrate::connect(&settings).await.expect_err("refused");
    assert!(matches!(error, DbError::MigrationThroughPooler { .. }), "{error:?}");
    assert!(error.to_string().contains("DATABASE_MIGRATION_URL"), "{error}");
}
