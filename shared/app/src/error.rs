//! The application layer's one error type.

use crmsync_domain::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A required environment variable is missing or malformed.
    #[error("configuration: {variable} {reason}")]
    Config { variable: &'static str, reason: String },

    /// The event as a whole is unusable (not a list of matches, too many matches).
    #[error("invalid event: {0}")]
    InvalidEvent(#[source] DomainError),

    /// The database could not be used; the whole call may be retried safely.
    #[error("the database is unavailable")]
    Unavailable(#[source] DomainError),

    #[error(transparent)]
    Db(#[from] crmsync_db::DbError),

    /// The SQS retry queue failed.
    #[error("retry queue: {0}")]
    Queue(#[source] Box<crmsync_queue::QueueError>),

    /// HubSpot refused or could not be reached (after the client's own retries).
    #[error("HubSpot: {0}")]
    HubSpot(#[source] Box<crmsync_hubspot::HubSpotError>),
}

impl From<crmsync_hubspot::HubSpotError> for AppError {
    fn from(error: crmsync_hubspot::HubSpotError) -> Self {
        Self::HubSpot(Box::new(error))
    }
}

impl From<crmsync_queue::QueueError> for AppError {
    fn from(error: crmsync_queue::QueueError) -> Self {
        Self::Queue(Box::new(error))
    }
}

impl AppError {
    /// True when retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Db(_) | Self::Queue(_) => true,
            Self::HubSpot(error) => error.class().is_retryable(),
            _ => false,
        }
    }
}
