//! The db crate's one error type.

use crmsync_domain::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database settings: {0}")]
    Config(String),

    /// No connection could be made: the host did not answer, refused, or refused the log-in or the TLS handshake.
    #[error("cannot reach PostgreSQL at {host}: {reason}")]
    Unreachable { host: String, reason: String },

    #[error("no database connection came free within {waited:?} (pool of {size})")]
    PoolExhausted { waited: std::time::Duration, size: usize },

    /// A statement got no answer within its deadline (the server's own `statement_timeout` plus a margin).
    #[error("PostgreSQL at {host} did not answer within {waited:?}")]
    Timeout { host: String, waited: std::time::Duration },

    #[error("expected {expected} row, the statement returned {found}")]
    RowCount { expected: &'static str, found: usize },

    #[error("database error")]
    Postgres(#[from] tokio_postgres::Error),

    #[error(
        "migration {version} ({name}) was changed after it was applied (checksum {applied} in the database, {current} \
         on disk); add a new migration instead"
    )]
    MigrationChanged {
        version: i32,
        name: String,
        applied: String,
        current: String,
    },

    #[error(
        "migrations cannot run through the transaction pooler at {host} (DDL and a session lock need one server \
         connection): set DATABASE_MIGRATION_URL to a direct connection (Supabase: port 5432 of db.<project>.supabase.co \
         or the session pooler), or DATABASE_POOLER=session if this URL is not a transaction pooler"
    )]
    MigrationThroughPooler { host: String },

    #[error("the database has migration {version}, which this build does not know; deploy a newer build")]
    UnknownMigration { version: i32 },

    /// The guide's existing tables cannot be adopted as they are; nothing was changed.
    #[error(
        "migrate changed nothing: the existing tables need these fixes first (run the SQL after reviewing it, or \
         fix the data another way, then migrate again):\n{0}"
    )]
    AdoptionBlocked(crate::adopt::AdoptionProblems),
}

impl DbError {
    /// The server's error report, when the server refused a statement.
    pub fn as_db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        match self {
            Self::Postgres(error) => error.as_db_error(),
            _ => None,
        }
    }

    /// The SQLSTATE of a server-side error, if any.
    pub fn sqlstate(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            Self::Postgres(error) => error.code(),
            _ => None,
        }
    }

    /// True when the database refused the data itself (constraint, data exception): retrying the same data fails
    /// again. Class 22 is data exceptions, class 23 integrity constraint violations.
    pub fn is_data_error(&self) -> bool {
        self.sqlstate()
            .is_some_and(|code| code.code().starts_with("22") || code.code().starts_with("23"))
    }

    /// True when the database could not serve the request now (unreachable, out of connections, too slow, a lock
    /// held too long, shutting down): the caller answers 503 or retries later. Such errors name no data problem.
    pub fn is_unavailable(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            Self::Unreachable { .. } | Self::PoolExhausted { .. } | Self::Timeout { .. } => true,
            Self::Postgres(error) if error.is_closed() => true,
            Self::Postgres(error) => error.code().is_some_and(|code| {
                *code == SqlState::QUERY_CANCELED
                    || *code == SqlState::LOCK_NOT_AVAILABLE
                    || *code == SqlState::TOO_MANY_CONNECTIONS
                    || *code == SqlState::ADMIN_SHUTDOWN
                    || *code == SqlState::CANNOT_CONNECT_NOW
                    || code.code().starts_with("08")
            }),
            _ => false,
        }
    }

    /// True for errors a retry of the whole transaction resolves: deadlocks and serialization failures.
    pub fn is_transaction_conflict(&self) -> bool {
        use tokio_postgres::error::SqlState;
        self.sqlstate().is_some_and(|code| {
            *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        })
    }
}

impl From<DbError> for DomainError {
    fn from(error: DbError) -> Self {
        if error.is_data_error() {
            let detail = match &error {
                DbError::Postgres(pg) => pg.as_db_error().map_or_else(
                    || pg.to_string(),
                    |db| match db.constraint() {
                        Some(constraint) => format!("{} (constraint {constraint})", db.message()),
                        None => db.message().to_owned(),
                    },
                ),
                other => other.to_string(),
            };
            DomainError::Rejected(detail)
        } else {
            DomainError::Unavailable(Box::new(error))
        }
    }
}
