//! hookd's domain without IO: identifiers, validated values (parse, don't validate),
//! endpoint secrets, API tokens, retry schedules and network lists.
//!
//! Everything here is a plain type or function so it can be unit- and property-tested
//! without a database or a network.

pub mod api_token;
pub mod data;
pub mod endpoint_headers;
pub mod endpoint_url;
pub mod filter;
pub mod headers;
pub mod id;
pub mod ingest;
pub mod matching;
pub mod metadata;
pub mod name;
pub mod network;
pub mod network_policy;
pub mod retry;
pub mod sealed;
pub mod secret;
pub mod signature;
pub mod throttle;

use std::fmt;

/// Why a value was refused. The message is meant for the API caller: it says what is
/// wrong without echoing secrets back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidValue {
    pub message: String,
}

impl InvalidValue {
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }
}
