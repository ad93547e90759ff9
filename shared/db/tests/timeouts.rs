//! A database that accepts connections and never answers costs a caller its connect timeout, not forever; a pool
//! that is full costs its wait timeout. Both errors name the host and nothing else of the URL.

use std::time::{Duration, Instant};

use crmsync_db::test_db::TestDb;
use crmsync_db::{DatabaseSettings, DbError, Timeouts};
use tokio::net::TcpListener;

/// Accepts TCP connections and holds them open without a byte in reply.
struct SilentServer {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { port, task }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const QUICK: Timeouts = Timeouts {
    connect: Duration::from_millis(700),
    pool_wait: Duration::from_millis(400),
    statement: Duration::from_secs(2),
    lock: Duration::from_secs(1),
    idle_in_transaction: Duration::from_secs(5),
};

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_is_reported_unreachable_within_the_connect_timeout() {
    let silent = SilentServer::start().await;
    let url = format!("postgres://crmsync:secret-password@127.0.0.1:{}/postgres", silent.port);
    let settings = DatabaseSettings::parse(&url, QUICK).unwrap();

    let started = Instant::now();
    let error = settings.pool().unwrap().get().await.err().expect("no connection");
    let waited = started.elapsed();
    assert!(matches!(error, DbError::Unreachable { .. }), "{error:?}");
    assert!(error.is_unavailable());
    let message = error.to_string();
    assert!(message.contains(&format!("127.0.0.1:{}", silent.port)), "{message}");
    assert!(
        !message.contains("secret-password") && !message.contains("crmsync@"),
        "{message}"
    );
    assert!(waited < Duration::from_secs(3), "pool.get took {waited:?}");

    let started = Instant::now();
    let error = settings.connect_one().await.expect_err("no connection");
    assert!(matches!(error, DbError::Unreachable { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "connect_one took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_full_pool_answers_after_its_wait_timeout() {
    let db = TestDb::new().await;
    let settings = DatabaseSettings::parse(db.direct_url(), QUICK)
        .unwrap()
        .with_pool_size(1);
    let pool = settings.pool().unwrap();
    let _only = pool.get().await.unwrap();
    let started = Instant::now();
    let error = pool.get().await.err().expect("the only connection is taken");
    assert!(matches!(error, DbError::PoolExhausted { size: 1, .. }), "{error:?}");
    assert!(error.is_unavailable());
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_long_statement_ends_at_the_statement_timeout() {
    let db = TestDb::new().await;
    let pool = db.direct_pool(Timeouts {
        statement: Duration::from_millis(300),
        ..QUICK
    });
    let client = pool.get().await.unwrap();
    let started = Instant::now();
    let error = client.execute("SELECT pg_sleep(5)", &[]).await.expect_err("cancelled");
    assert_eq!(error.sqlstate().map(|s| s.code()), Some("57014"), "{error:?}");
    assert!(error.is_unavailable());
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}
