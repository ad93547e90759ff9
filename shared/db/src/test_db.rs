//! `TestDb`: a fresh, migrated database per test, cloned from a template database that is migrated once per
//! migration set (its name carries a hash of the migrations, so a changed migration gets a new template), or a
//! fresh empty one ([`TestDb::empty`]) for tests of `migrate` itself.
//!
//! The server comes from `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`). A test's
//! database is dropped when its `TestDb` is dropped, unless the test panicked: then it is kept, and its name
//! printed, for debugging.
//!
//! `CRMSYNC_TEST_PGBOUNCER_URL` names a PgBouncer in transaction mode in front of the same server (scripts/test
//! starts one): [`TestDb::pooled_url`] and [`TestDb::pooled_pool`] reach the test's database through it. With
//! `CRMSYNC_TEST_THROUGH_POOLER=1` as well, [`TestDb::url`] and [`TestDb::pool`] go through it too, as production
//! goes through Supabase's pooler, so a whole suite runs behind the pooler. Creating and dropping databases, and
//! [`TestDb::direct_url`], always go straight to the server.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::migrate::{MIGRATIONS, migrate};
use crate::{DatabaseSettings, DbError, Pool, Pooler, Timeouts};

/// The guide's Step 1 tables as an upstream workflow may have made them (not crmsync's reconstruction): other
/// constraint names, other but compatible types, extra columns, no `updated_at`, no unique key on the match pair,
/// and rows. See tests/fixtures/upstream_schema.sql.
pub const UPSTREAM_SCHEMA_FIXTURE: &str = include_str!("../tests/fixtures/upstream_schema.sql");

const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const TEMPLATE_LOCK_KEY: i64 = 0x63_72_6d_74_65_73_74; // "crmtest"

#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    direct_url: String,
    server_url: String,
    pool: Pool,
}

impl TestDb {
    /// Creates a fresh database with every migration applied.
    pub async fn new() -> Self {
        Self::try_new()
            .await
            .expect("could not create a test database (is PostgreSQL running? see DATABASE_URL)")
    }

    /// Creates a fresh database with no migration applied (not even `crmsync.schema_migrations`): for tests of
    /// `migrate` itself, such as adopting the guide's existing tables.
    pub async fn empty() -> Self {
        Self::try_create(false)
            .await
            .expect("could not create a test database (is PostgreSQL running? see DATABASE_URL)")
    }

    async fn try_new() -> Result<Self, DbError> {
        Self::try_create(true).await
    }

    async fn try_create(migrated: bool) -> Result<Self, DbError> {
        let server_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
        let name = format!("crmsync_test_{}", Uuid::new_v4().simple());
        let create = if migrated {
            let template = ensure_template(&server_url).await?;
            format!("CREATE DATABASE {name} TEMPLATE {template}")
        } else {
            format!("CREATE DATABASE {name}")
        };
        let admin = connect_one(&server_url).await?;
        admin.batch_execute(&create).await?;
        let direct_url = with_database(&server_url, &name);
        let through_pooler = std::env::var("CRMSYNC_TEST_THROUGH_POOLER").is_ok_and(|v| v == "1");
        let url = if through_pooler {
            with_database(&pgbouncer_url(), &name)
        } else {
            direct_url.clone()
        };
        let pool = test_pool(&url, through_pooler)?;
        Ok(Self {
            name,
            url,
            direct_url,
            server_url,
            pool,
        })
    }

    /// A pool over this test's database.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The connection URL of this test's database, for child processes: through the pooler when the tests run
    /// behind one (see the module docs).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This test's database, straight to the server (migrations, session work).
    pub fn direct_url(&self) -> &str {
        &self.direct_url
    }

    /// This test's database through PgBouncer in transaction mode (`CRMSYNC_TEST_PGBOUNCER_URL`).
    pub fn pooled_url(&self) -> String {
        with_database(&pgbouncer_url(), &self.name)
    }

    /// A pool through PgBouncer in transaction mode, with `timeouts`.
    pub fn pooled_pool(&self, timeouts: Timeouts) -> Pool {
        DatabaseSettings::parse(&self.pooled_url(), timeouts)
            .and_then(|settings| settings.with_pooler(Pooler::Transaction).pool())
            .expect("pool through PgBouncer")
    }

    /// A pool straight to the server, with `timeouts`.
    pub fn direct_pool(&self, timeouts: Timeouts) -> Pool {
        DatabaseSettings::parse(&self.direct_url, timeouts)
            .and_then(|settings| settings.with_pooler(Pooler::None).pool())
            .expect("direct pool")
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.pool.close();
        if std::thread::panicking() {
            eprintln!("test database kept for debugging: {}", self.url);
            return;
        }
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // Drop cannot be async: drop the database from a short-lived thread with its own runtime.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    if let Ok(admin) = connect_one(&server_url).await {
                        let _ = admin
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            }
        });
        let _ = dropper.join();
    }
}

/// Creates and migrates the template for the current migration set, once across concurrent test processes.
async fn ensure_template(server_url: &str) -> Result<String, DbError> {
    let mut hasher = Sha256::new();
    for migration in MIGRATIONS {
        hasher.update(migration.checksum());
    }
    let template = format!("crmsync_template_{}", &hex::encode(hasher.finalize())[..16]);
    let admin = connect_one(server_url).await?;
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK_KEY])
        .await?;
    let result = async {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
            .await?
            .is_some();
        if !exists {
            let building = format!("{template}_building");
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .await?;
            admin.batch_execute(&format!("CREATE DATABASE {building}")).await?;
            {
                let mut client = connect_one(&with_database(server_url, &building)).await?;
                migrate(&mut client).await?;
            }
            // Renaming only after a complete migration means a crash mid-way never leaves a half-built template.
            admin
                .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))
                .await?;
        }
        Ok::<_, DbError>(())
    }
    .await;
    admin
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK_KEY])
        .await?;
    result?;
    Ok(template)
}

/// Where PgBouncer listens; tests that need it fail with how to start it.
fn pgbouncer_url() -> String {
    std::env::var("CRMSYNC_TEST_PGBOUNCER_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .expect(
            "CRMSYNC_TEST_PGBOUNCER_URL is not set: run scripts/test, or start PgBouncer in transaction mode with \
             `source scripts/lib.sh && ensure_postgres && ensure_pgbouncer` and export the URL it prints",
        )
}

fn test_pool(url: &str, through_pooler: bool) -> Result<Pool, DbError> {
    let pooler = if through_pooler {
        Pooler::Transaction
    } else {
        Pooler::None
    };
    DatabaseSettings::parse(url, Timeouts::BACKGROUND)?
        .with_pooler(pooler)
        .with_pool_size(8)
        .pool()
}

/// One plain connection, for creating and dropping databases.
async fn connect_one(url: &str) -> Result<tokio_postgres::Client, DbError> {
    DatabaseSettings::parse(url, Timeouts::CLI)?.connect_one().await
}

/// `server_url` with its database replaced by `database`.
fn with_database(server_url: &str, database: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_urls_get_their_database_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
