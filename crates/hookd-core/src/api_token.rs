//! API tokens: `hk_<token-id-body>_<secret>`.
//!
//! The id half finds the stored record; the secret half is stored only as its SHA-256
//! and compared in constant time. The secret has 256 bits of entropy, so a fast hash is
//! the right tool here (a password hash would only slow every request down).

use std::fmt;

use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::id::TokenId;

const PREFIX: &str = "hk_";
const SECRET_BYTES: usize = 32;

/// A token as handed to its owner, once. Never logged.
pub struct ApiToken {
    pub id: TokenId,
    secret: String,
}

/// The part of a token that is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl ApiToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let secret = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            id: TokenId::generate(),
            secret,
        }
    }

    /// Splits a presented bearer token into its id and secret. `None` for anything that
    /// is not shaped like a hookd token.
    pub fn parse(presented: &str) -> Option<Self> {
        let rest = presented.strip_prefix(PREFIX)?;
        let (id_body, secret) = rest.split_once('_')?;
        let id: TokenId = format!("{}{id_body}", TokenId::PREFIX).parse().ok()?;
        if secret.len() != SECRET_BYTES * 2 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Self {
            id,
            secret: secret.to_owned(),
        })
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.secret.as_bytes()).into())
    }

    /// Constant-time check of this token's secret against a stored hash.
    pub fn matches(&self, stored: &TokenHash) -> bool {
        self.hash().0.ct_eq(&stored.0).into()
    }

    /// The full token string, to show to its owner once.
    pub fn reveal(&self) -> String {
        let id_body = &self.id.as_str()[TokenId::PREFIX.len()..];
        format!("{PREFIX}{id_body}_{}", self.secret)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_match() {
        let token = ApiToken::generate();
        let shown = token.reveal();
        assert!(!shown.contains('.'), "a dot would make SDKs guess a region");
        let parsed = ApiToken::parse(&shown).unwrap();
        assert_eq!(parsed.id, token.id);
        assert!(parsed.matches(&token.hash()));
        assert!(!ApiToken::generate().matches(&token.hash()));
        assert!(!format!("{token:?}").contains(&token.secret));
    }

    #[test]
    fn tampered_tokens_do_not_match() {
        let token = ApiToken::generate();
        let mut shown = token.reveal();
        let last = shown.pop().unwrap();
        shown.push(if last == '0' { '1' } else { '0' });
        let parsed = ApiToken::parse(&shown).unwrap();
        assert!(!parsed.matches(&token.hash()));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            let _ = ApiToken::parse(&s);
        }
    }
}
