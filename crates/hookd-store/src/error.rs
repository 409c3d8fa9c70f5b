//! The one error type of the storage layer. The server maps it to HTTP in one place.

/// What went wrong in a store call.
///
/// `NotFound`, `Conflict` and `Rejected` are answers about the caller's data;
/// `Unavailable` and `Internal` are the backend's own trouble and are logged with their
/// whole cause chain by the layer that turns them into an opaque 500/503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object (named by kind: "application", "endpoint", ...) does not exist for
    /// this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was broken (uid or name taken).
    #[error("{0}")]
    Conflict(String),
    /// A [`Mutation`](crate::Mutation) refused the change: `field` names the input at
    /// fault.
    #[error("{field}: {message}")]
    Rejected { field: String, message: String },
    /// A condition the caller set does not hold (a document's version is not the one
    /// `If-Match` named).
    #[error("{0}")]
    Precondition(String),
    /// The database could not be reached or is shutting down.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Stored data that does not decode: a damaged row, or a sealed value no key
    /// opens. `place` names the column and the row (its key) where known; `cause`
    /// says why and may quote the stored value, so it is logged, never answered.
    #[error("stored data does not decode: {place}: {cause}")]
    Damaged { place: String, cause: String },
    #[error("storage error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }

    pub fn damaged(place: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        Self::Damaged {
            place: place.into(),
            cause: cause.to_string(),
        }
    }

    pub fn rejected(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Rejected {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A copy for handing one failure to several waiters (a failed group commit).
    pub fn duplicate(&self) -> Self {
        match self {
            Self::NotFound(k) => Self::NotFound(k),
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::Rejected { field, message } => Self::rejected(field.clone(), message.clone()),
            Self::Precondition(m) => Self::Precondition(m.clone()),
            Self::Unavailable(m) => Self::Unavailable(m.clone()),
            Self::Damaged { place, cause } => Self::damaged(place.clone(), cause),
            Self::Internal(e) => Self::Unavailable(e.to_string()),
        }
    }
}
