//! Credentials of the form `<prefix>_<id-body>_<secret>`: API tokens (`hk_...`), data
//! API keys (`hkd_...`) and web UI sessions and their sign-in links (`hks_...`).
//!
//! The id half finds the stored record; the secret half is stored only as its SHA-256
//! and compared in constant time. The secret has 256 bits of entropy, so a fast hash is
//! the right tool here (a password hash would only slow every request down).

use std::fmt;
use std::str::FromStr;

use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::id::{ApiKeyId, TokenId, UiSessionId};

const SECRET_BYTES: usize = 32;

/// The id types a credential can carry.
pub trait CredentialId: FromStr + Clone + fmt::Debug {
    /// What the shown credential starts with.
    const SHOWN_PREFIX: &'static str;
    /// The id's own prefix (replaced by [`Self::SHOWN_PREFIX`] in the shown form).
    const ID_PREFIX: &'static str;
    fn generate() -> Self;
    fn as_str(&self) -> &str;
}

impl CredentialId for TokenId {
    const SHOWN_PREFIX: &'static str = "hk_";
    const ID_PREFIX: &'static str = TokenId::PREFIX;
    fn generate() -> Self {
        TokenId::generate()
    }
    fn as_str(&self) -> &str {
        TokenId::as_str(self)
    }
}

impl CredentialId for ApiKeyId {
    const SHOWN_PREFIX: &'static str = "hkd_";
    const ID_PREFIX: &'static str = ApiKeyId::PREFIX;
    fn generate() -> Self {
        ApiKeyId::generate()
    }
    fn as_str(&self) -> &str {
        ApiKeyId::as_str(self)
    }
}

impl CredentialId for UiSessionId {
    const SHOWN_PREFIX: &'static str = "hks_";
    const ID_PREFIX: &'static str = UiSessionId::PREFIX;
    fn generate() -> Self {
        UiSessionId::generate()
    }
    fn as_str(&self) -> &str {
        UiSessionId::as_str(self)
    }
}

/// A credential as handed to its owner, once. Never logged.
pub struct Credential<I> {
    pub id: I,
    secret: String,
}

/// An API token of the management API.
pub type ApiToken = Credential<TokenId>;
/// An API key of the data API (its modes).
pub type ApiKey = Credential<ApiKeyId>;
/// A web UI session (a cookie's value, a consumer portal token) or a one-time sign-in
/// link's secret.
pub type UiCredential = Credential<UiSessionId>;

/// The part of a credential that is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

impl<I: CredentialId> Credential<I> {
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let secret = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            id: I::generate(),
            secret,
        }
    }

    /// Splits a presented credential into its id and secret. `None` for anything that
    /// is not shaped like one of this kind.
    pub fn parse(presented: &str) -> Option<Self> {
        let rest = presented.strip_prefix(I::SHOWN_PREFIX)?;
        let (id_body, secret) = rest.split_once('_')?;
        let id: I = format!("{}{id_body}", I::ID_PREFIX).parse().ok()?;
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

    /// Constant-time check of this credential's secret against a stored hash.
    pub fn matches(&self, stored: &TokenHash) -> bool {
        self.hash().0.ct_eq(&stored.0).into()
    }

    /// The full credential string, to show to its owner once.
    pub fn reveal(&self) -> String {
        let id_body = &self.id.as_str()[I::ID_PREFIX.len()..];
        format!("{}{id_body}_{}", I::SHOWN_PREFIX, self.secret)
    }
}

impl<I: fmt::Debug> fmt::Debug for Credential<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
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

    #[test]
    fn data_keys_and_tokens_do_not_pass_for_each_other() {
        let key = ApiKey::generate();
        let shown = key.reveal();
        assert!(shown.starts_with("hkd_"));
        let parsed = ApiKey::parse(&shown).unwrap();
        assert_eq!(parsed.id, key.id);
        assert!(parsed.matches(&key.hash()));
        assert!(ApiToken::parse(&shown).is_none());
        assert!(ApiKey::parse(&ApiToken::generate().reveal()).is_none());
        let session = UiCredential::generate().reveal();
        assert!(session.starts_with("hks_"));
        assert!(ApiToken::parse(&session).is_none() && ApiKey::parse(&session).is_none());
        assert!(UiCredential::parse(&shown).is_none());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            let _ = ApiToken::parse(&s);
            let _ = ApiKey::parse(&s);
            let _ = UiCredential::parse(&s);
        }
    }
}
