//! The ordered-SQL migration runner. Migrations are the plain SQL files in `migrations/` (each runnable with
//! `psql -f`), compiled into the binary so a Lambda needs no files. Each is applied once, in its own transaction,
//! and recorded with its checksum in `crmsync.schema_migrations`. A session advisory lock makes concurrent starts
//! safe: the second instance waits, then finds nothing to do.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::{DatabaseSettings, DbError, Pooler, Timeouts};

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. A test checks this list against the `migrations/` folder.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core_schema",
        sql: include_str!("../../../migrations/0001_core_schema.sql"),
    },
    Migration {
        version: 2,
        name: "core_indexes",
        sql: include_str!("../../../migrations/0002_core_indexes.sql"),
    },
    Migration {
        version: 3,
        name: "crm_schema",
        sql: include_str!("../../../migrations/0003_crm_schema.sql"),
    },
    Migration {
        version: 4,
        name: "outbound_sync",
        sql: include_str!("../../../migrations/0004_outbound_sync.sql"),
    },
    Migration {
        version: 5,
        name: "webhooks",
        sql: include_str!("../../../migrations/0005_webhooks.sql"),
    },
    Migration {
        version: 6,
        name: "constraints",
        sql: include_str!("../../../migrations/0006_constraints.sql"),
    },
    Migration {
        version: 7,
        name: "api_cache",
        sql: include_str!("../../../migrations/0007_api_cache.sql"),
    },
];

/// Any fixed 64-bit key unique to this runner ("crmsync" in ASCII).
const ADVISORY_LOCK_KEY: i64 = 0x63_72_6d_73_79_6e_63;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run, in order.
    pub applied: Vec<i32>,
    /// Versions that were already there.
    pub already_applied: Vec<i32>,
}

impl Migration {
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// The file name, e.g. `0001_core_schema.sql`.
    pub fn file_name(&self) -> String {
        format!("{:04}_{}.sql", self.version, self.name)
    }
}

/// A dedicated connection for [`migrate`]. Migrations hold a session lock and run DDL, so they need a direct (or
/// session-mode) connection: behind a transaction pooler this refuses, naming the setting that fixes it.
pub async fn connect(settings: &DatabaseSettings) -> Result<Client, DbError> {
    if settings.pooler == Pooler::Transaction {
        return Err(DbError::MigrationThroughPooler { host: settings.host() });
    }
    settings.connect_one().await
}

/// [`connect`] for a URL, with the migration limits and the pooler told by its port.
pub async fn connect_url(url: &str) -> Result<Client, DbError> {
    connect(&DatabaseSettings::parse(url, MIGRATION_TIMEOUTS)?).await
}

/// The limits a migration runs under: DDL on a large table may take minutes, but a migration never queues for
/// long behind the app's transactions, since every statement after it would queue behind the migration.
pub const MIGRATION_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(10),
    pool_wait: Duration::from_secs(10),
    statement: Duration::from_secs(15 * 60),
    lock: Duration::from_secs(30),
    idle_in_transaction: Duration::from_secs(5 * 60),
};

/// Applies the pending migrations. Needs a dedicated connection (not a pooled one) because it holds a session
/// advisory lock for the duration.
pub async fn migrate(client: &mut Client) -> Result<MigrationReport, DbError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&ADVISORY_LOCK_KEY])
        .await?;
    let result = apply_pending(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY])
        .await;
    let report = result?;
    unlocked?;
    Ok(report)
}

async fn apply_pending(client: &mut Client) -> Result<MigrationReport, DbError> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS crmsync;
             CREATE TABLE IF NOT EXISTS crmsync.schema_migrations (
               version     integer PRIMARY KEY,
               name        text NOT NULL,
               checksum    text NOT NULL,
               applied_at  timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await?;
    let applied: Vec<(i32, String)> = client
        .query(
            "SELECT version, checksum FROM crmsync.schema_migrations ORDER BY version",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    if let Some((version, _)) = applied
        .iter()
        .find(|(v, _)| !MIGRATIONS.iter().any(|m| m.version == *v))
    {
        return Err(DbError::UnknownMigration { version: *version });
    }

    let mut report = MigrationReport::default();
    for migration in MIGRATIONS {
        let current = migration.checksum();
        if let Some((_, checksum)) = applied.iter().find(|(v, _)| *v == migration.version) {
            if *checksum != current {
                return Err(DbError::MigrationChanged {
                    version: migration.version,
                    name: migration.name.to_owned(),
                    applied: checksum.clone(),
                    current,
                });
            }
            report.already_applied.push(migration.version);
            continue;
        }
        let transaction = client.transaction().await?;
        transaction.batch_execute(migration.sql).await?;
        transaction
            .execute(
                "INSERT INTO crmsync.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                &[&migration.version, &migration.name, &current],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(version = migration.version, name = migration.name, "applied migration");
        report.applied.push(migration.version);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_list_matches_the_migrations_folder_in_order() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
        let mut on_disk: Vec<String> = std::fs::read_dir(folder)
            .expect("migrations folder")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        on_disk.sort();
        let compiled: Vec<String> = MIGRATIONS.iter().map(Migration::file_name).collect();
        assert_eq!(compiled, on_disk);
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(
            versions,
            (1..=MIGRATIONS.len() as i32).collect::<Vec<_>>(),
            "versions are 1, 2, 3, ..."
        );
    }
}
