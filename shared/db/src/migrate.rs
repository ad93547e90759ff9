//! The ordered-SQL migration runner. Migrations are the plain SQL files in `migrations/` (each runnable with
//! `psql -f`), compiled into the binary so a Lambda needs no files. Each is applied once, in its own transaction,
//! and recorded with its checksum in `crmsync.schema_migrations`. A session advisory lock makes concurrent starts
//! safe: the second instance waits, then finds nothing to do.
//!
//! Before the migrations, the guide's existing Step 1 tables are adopted ([`crate::adopt`]) in one transaction
//! that also creates the bookkeeping table: if anything stands in the way, migrate stops before changing anything
//! and its error ([`DbError::AdoptionBlocked`]) carries the report. [`plan`] says what a run would do, changing
//! nothing.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, GenericClient};

use crate::adopt::{self, AdoptionPlan, AdoptionProblems};
use crate::{DatabaseSettings, DbError, Pooler, Timeouts};

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
    /// Checksums of earlier texts of this file that a database may have recorded and that are still accepted,
    /// each with a comment saying why that is safe. Empty for almost every migration: an applied one is never
    /// edited, a change is a new file.
    pub previous_checksums: &'static [&'static str],
}

/// Every migration, in order. A test checks this list against the `migrations/` folder.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "core_schema",
        sql: include_str!("../../../migrations/0001_core_schema.sql"),
        // The first text created the six tables unconditionally (and failed on the guide's database, where they
        // exist). The current one creates each only where it is missing, and then exactly as the first did, with
        // 0002's indexes beside it: a database that applied the first text has the same schema as a new one
        // (tests/adopt.rs checks this), so nothing is left to apply.
        previous_checksums: &["b60388de4105738badc9c53dbe3a2bfcb35a5d8671ba744aaeff76aaa017b1a8"],
    },
    Migration {
        version: 2,
        name: "core_indexes",
        sql: include_str!("../../../migrations/0002_core_indexes.sql"),
        // The first text created the upstream tables' indexes, which now come with their tables in 0001: a
        // database that applied it has them already.
        previous_checksums: &["c1c7a533f60a3cdeaf95712f03eac8cb12a69b1879faf43a96fa48cd9d1f11e5"],
    },
    Migration {
        version: 3,
        name: "crm_schema",
        sql: include_str!("../../../migrations/0003_crm_schema.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 4,
        name: "outbound_sync",
        sql: include_str!("../../../migrations/0004_outbound_sync.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 5,
        name: "webhooks",
        sql: include_str!("../../../migrations/0005_webhooks.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 6,
        name: "constraints",
        sql: include_str!("../../../migrations/0006_constraints.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 7,
        name: "api_cache",
        sql: include_str!("../../../migrations/0007_api_cache.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 8,
        name: "ingest_records",
        sql: include_str!("../../../migrations/0008_ingest_records.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 9,
        name: "field_policies",
        sql: include_str!("../../../migrations/0009_field_policies.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 10,
        name: "reconcile",
        sql: include_str!("../../../migrations/0010_reconcile.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 11,
        name: "retention",
        sql: include_str!("../../../migrations/0011_retention.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 12,
        name: "retry_window",
        sql: include_str!("../../../migrations/0012_retry_window.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 13,
        name: "engagements_owners",
        sql: include_str!("../../../migrations/0013_engagements_owners.sql"),
        previous_checksums: &[],
    },
    Migration {
        version: 14,
        name: "drain_kicks",
        sql: include_str!("../../../migrations/0014_drain_kicks.sql"),
        previous_checksums: &[],
    },
];

/// Any fixed 64-bit key unique to this runner ("crmsync" in ASCII).
const ADVISORY_LOCK_KEY: i64 = 0x63_72_6d_73_79_6e_63;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// The adoption statements this run executed, in order.
    pub adopted: Vec<String>,
    /// Versions applied by this run, in order.
    pub applied: Vec<i32>,
    /// Versions that were already there.
    pub already_applied: Vec<i32>,
}

/// What a run would do: [`plan`]'s answer.
#[derive(Debug, Clone)]
pub struct MigrationPlan {
    pub adoption: AdoptionPlan,
    /// The migrations a run would apply, in order.
    pub pending: Vec<&'static Migration>,
    pub already_applied: Vec<i32>,
}

impl Migration {
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// True when `checksum` is this file's, now or in an accepted earlier text.
    pub fn accepts(&self, checksum: &str) -> bool {
        checksum == self.checksum() || self.previous_checksums.contains(&checksum)
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

/// Says what [`migrate`] would do: the adoption statements, the pending migrations, and any problems that would
/// stop it. Reads only; runs on any connection. Fails like migrate on a changed or unknown applied migration.
pub async fn plan(client: &impl GenericClient) -> Result<MigrationPlan, DbError> {
    let already_applied = applied_versions(client).await?;
    let pending: Vec<&'static Migration> = MIGRATIONS
        .iter()
        .filter(|m| !already_applied.contains(&m.version))
        .collect();
    let mut adoption = adopt::inspect(client).await?;
    if already_applied.contains(&1) {
        for table in &adoption.missing {
            adoption.warnings.push(format!(
                "public.{table} does not exist, and 0001_core_schema.sql, which creates it, is already applied; \
                 running that file again with psql creates it (it skips the tables that exist)"
            ));
        }
    }
    Ok(MigrationPlan {
        adoption,
        pending,
        already_applied,
    })
}

/// The versions recorded in `crmsync.schema_migrations` (none before the first run), each checked against the
/// migration this build has for it.
async fn applied_versions(client: &impl GenericClient) -> Result<Vec<i32>, DbError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('crmsync.schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT version, checksum FROM crmsync.schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    let mut versions = Vec::with_capacity(rows.len());
    for row in &rows {
        let (version, checksum): (i32, String) = (row.get(0), row.get(1));
        let migration = MIGRATIONS
            .iter()
            .find(|m| m.version == version)
            .ok_or(DbError::UnknownMigration { version })?;
        if !migration.accepts(&checksum) {
            return Err(DbError::MigrationChanged {
                version,
                name: migration.name.to_owned(),
                applied: checksum,
                current: migration.checksum(),
            });
        }
        versions.push(version);
    }
    Ok(versions)
}

async fn apply_pending(client: &mut Client) -> Result<MigrationReport, DbError> {
    // Adoption and the bookkeeping table in one transaction, planned inside it: either all of it or, when
    // something stands in the way, nothing (dropping the transaction rolls it back).
    let transaction = client.transaction().await?;
    let plan = plan(&transaction).await?;
    if !plan.adoption.problems.is_empty() {
        return Err(DbError::AdoptionBlocked(AdoptionProblems(plan.adoption.problems)));
    }
    for warning in &plan.adoption.warnings {
        tracing::warn!(%warning, "adopting the existing tables");
    }
    adopt::apply(&transaction, &plan.adoption).await?;
    transaction
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
    transaction.commit().await?;

    let mut report = MigrationReport {
        adopted: plan.adoption.steps.iter().map(|step| step.sql.clone()).collect(),
        applied: Vec::new(),
        already_applied: plan.already_applied,
    };
    for migration in plan.pending {
        let transaction = client.transaction().await?;
        transaction.batch_execute(migration.sql).await?;
        transaction
            .execute(
                "INSERT INTO crmsync.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                &[&migration.version, &migration.name, &migration.checksum()],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(version = migration.version, name = migration.name, "applied migration");
        report.applied.push(migration.version);
    }
    Ok(report)
}

impl fmt::Display for MigrationPlan {
    /// The plan as `crmsync migrate --plan` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let adoption = &self.adoption;
        let list = |names: &[&str]| {
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        writeln!(f, "Existing tables, adopted as they are: {}", list(&adoption.existing))?;
        if self.pending.iter().any(|m| m.version == 1) {
            writeln!(
                f,
                "Missing tables, 0001_core_schema.sql creates them: {}",
                list(&adoption.missing)
            )?;
        }
        writeln!(f, "\nAdoption statements (one transaction, before the migrations):")?;
        if adoption.steps.is_empty() {
            writeln!(f, "  none")?;
        }
        for step in &adoption.steps {
            writeln!(f, "  -- public.{}: {}", step.table, step.reason)?;
            writeln!(f, "  {}", step.sql)?;
        }
        if !adoption.notes.is_empty() {
            writeln!(f, "\nFound and used as they are:")?;
            for note in &adoption.notes {
                writeln!(f, "  {note}")?;
            }
        }
        writeln!(f, "\nPending migrations, in order:")?;
        if self.pending.is_empty() {
            writeln!(f, "  none")?;
        }
        for migration in &self.pending {
            writeln!(f, "  {}", migration.file_name())?;
        }
        if !adoption.warnings.is_empty() {
            writeln!(f, "\nWarnings (migrate goes ahead):")?;
            for warning in &adoption.warnings {
                writeln!(f, "  {warning}")?;
            }
        }
        if adoption.problems.is_empty() {
            writeln!(f, "\nProblems: none")
        } else {
            writeln!(f, "\nProblems (migrate stops before changing anything):")?;
            write!(f, "{}", AdoptionProblems(adoption.problems.clone()))
        }
    }
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
