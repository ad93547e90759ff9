//! The db crate's one error type.

use crmsync_domain::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL connection string: {0}")]
    Config(String),

    #[error("could not get a database connection")]
    Pool(#[from] deadpool_postgres::PoolError),

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
