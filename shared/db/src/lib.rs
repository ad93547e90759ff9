//! PostgreSQL adapters for crmsync: the connection pool, the ordered-SQL migration runner (with the adoption of
//! the guide's existing tables), the repositories that implement the domain's ports, and (feature `test-util`)
//! `TestDb`, a fresh database per test.
//!
//! Repository functions take `&impl Db` so they join the caller's transaction. Every statement goes unnamed with
//! typed parameters, so all of it works behind Supabase's transaction pooler (see [`pool`]).

pub mod adopt;
pub mod circuit;
pub mod crm;
pub mod engagements;
pub mod error;
pub mod hubspot_records;
pub mod import;
pub mod inbox;
pub mod ingest;
pub mod kick;
pub mod migrate;
pub mod outbox;
pub mod owners;
pub mod params;
pub mod pool;
pub mod property_changes;
pub mod reconcile;
pub mod retention;
pub mod sync;
pub mod sync_issues;
#[cfg(feature = "test-util")]
pub mod test_db;
pub mod tls;

pub use error::DbError;
pub use ingest::PgMatchStore;
pub use params::SqlParam;
pub use pool::{Connection, DatabaseSettings, Db, Pool, Pooler, Timeouts, Transaction, error_chain};
pub use tls::SslMode;

/// A pool over `database_url` with the background timeouts, for tools and tests; services build theirs from
/// [`DatabaseSettings`].
pub fn connect_pool(database_url: &str, max_size: usize) -> Result<Pool, DbError> {
    DatabaseSettings::parse(database_url, Timeouts::BACKGROUND)?
        .with_pool_size(max_size)
        .pool()
}
pub use sync::PgSyncStore;
