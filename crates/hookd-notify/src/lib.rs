//! Notifications to people, for flows' steps: [`email`] over SMTP and [`sms`] through
//! Twilio's Messages API.
//!
//! A send is one try: the caller (a flow's durable run) decides when to try again,
//! from [`SendError::is_transient`], and gives every try of one step the same id.

pub mod email;
pub mod sms;

/// A setting cannot be used (it is never echoed whole: it may hold a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

/// Why a notification was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// An address, a number or a header could not be used: sending again changes nothing.
    #[error("{0}")]
    Invalid(String),
    /// The provider refused for good (an SMTP 5xx, an HTTP 4xx).
    #[error("{0}")]
    Refused(String),
    /// Worth another try later: an SMTP 4xx, an HTTP 429 or 5xx, a timeout, a
    /// connection that failed.
    #[error("{0}")]
    Transient(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}
