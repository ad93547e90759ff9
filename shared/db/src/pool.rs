//! The connection pool, built once at start-up and lent to handlers.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::DbError;

/// A deadpool over `database_url` with at most `max_size` connections. Connections are made lazily, so this
/// succeeds without a reachable server; the first query reports that.
pub fn connect_pool(database_url: &str, max_size: usize) -> Result<Pool, DbError> {
    let config = tokio_postgres::Config::from_str(database_url).map_err(|e| DbError::Config(e.to_string()))?;
    pool_from_config(config, max_size)
}

/// A deadpool over an already parsed configuration.
pub fn pool_from_config(config: tokio_postgres::Config, max_size: usize) -> Result<Pool, DbError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

/// Opens one dedicated connection (for migrations and advisory locks), driving it on a background task.
pub async fn connect_one(database_url: &str) -> Result<tokio_postgres::Client, DbError> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "database connection closed with an error");
        }
    });
    Ok(client)
}
