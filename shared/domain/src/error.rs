//! The domain's one error type.

/// A boxed source error from an adapter, kept for the cause chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Input that breaks a rule. `field` is a dotted path such as `opportunity.estimated_value`.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },

    /// The store refused the data itself (a constraint the validation did not foresee). Retrying the same data
    /// fails the same way.
    #[error("rejected by the database: {0}")]
    Rejected(String),

    /// The store could not be reached or failed for a reason unrelated to the data; retrying may succeed.
    #[error("the database is unavailable")]
    Unavailable(#[source] BoxError),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field an `Invalid` error names.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}
