//! `sslmode=require` means TLS with a verified certificate, never a silent plaintext fallback.

use crmsync_db::migrate;
use crmsync_db::test_db::TestDb;

#[tokio::test]
async fn a_require_url_never_falls_back_to_plaintext_and_refuses_an_unverifiable_certificate() {
    let db = TestDb::new().await;
    let plain = migrate::connect(db.url()).await.expect("plaintext connection");
    let ssl: String = plain.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let separator = if db.url().contains('?') { '&' } else { '?' };
    let required = format!("{}{separator}sslmode=require", db.url());
    // The local server either has no TLS, or Debian's self-signed "snakeoil" certificate, which no public root
    // vouches for: either way a verified TLS connection is impossible, so the connection must fail.
    let error = migrate::connect(&required)
        .await
        .expect_err("require must not connect without verified TLS");
    let text = format!("{error:?}").to_lowercase();
    assert!(
        text.contains("tls") || text.contains("certificate") || text.contains("ssl"),
        "ssl={ssl}: {text}"
    );
    let pool = crmsync_db::connect_pool(&required, 1).expect("pool");
    assert!(pool.get().await.is_err(), "pooled connections refuse too");
}
