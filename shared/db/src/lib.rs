//! PostgreSQL adapters for crmsync: the connection pool, the ordered-SQL migration runner (with the adoption of
//! the guide's existing tables), the repositories that implement the domain's ports, and (feature `test-util`)
//! `TestDb`, a fresh database per test.
//!
//! Repository functions take `&impl GenericClient` so they join the caller's transaction.

pub mod adopt;
pub mod crm;
pub mod error;
pub mod hubspot_records;
pub mod inbox;
pub mod ingest;
pub mod migrate;
pub mod outbox;
pub mod pool;
pub mod sync;
#[cfg(feature = "test-util")]
pub mod test_db;

pub use deadpool_postgres::{GenericClient, Pool};
pub use error::DbError;
pub use ingest::PgMatchStore;
pub use pool::connect_pool;
pub use sync::PgSyncStore;
