//! Secrets at rest. Every secret a backend keeps — endpoint signing secrets (current
//! and rotated-out), endpoint headers (they carry receivers' credentials), sources'
//! verification configs and options, flows' secrets — is stored sealed
//! (`hookd_core::sealed`, XChaCha20-Poly1305) under the server's key, bound to the row
//! and the column it belongs to, so a copied database file, backup or dump holds no
//! secret in clear and a sealed value moved to another row does not open there.
//!
//! A [`Keyring`] seals under its current key and opens under the current key or any
//! previous one, which is how `hookd secrets rotate-key` re-seals a database while
//! nodes keep running. A backend keeps one sealed *key check* value
//! ([`Keyring::check_value`]); opening a database whose check no key of the ring opens
//! is refused, so a wrong key stops start-up instead of failing every delivery.
//!
//! Text columns keep the sealed text itself; JSON columns keep it as a JSON string
//! (`"hks1.…"`), so PostgreSQL's `jsonb` columns hold it unchanged. A value still in
//! clear (a database from before sealing) is sealed when the store opens.

use std::fmt;

use hookd_core::sealed::{OpenError, SealingKey};
use serde_json::Value;

use crate::{StoreError, StoreResult};

/// The text the key check seals (its content does not matter; that it opens does).
const CHECK_PLAIN: &[u8] = b"hookd key check";
const CHECK_CONTEXT: &str = "key-check";

/// The server's keys: the current one seals, every one opens.
#[derive(Clone)]
pub struct Keyring {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring(<current>, {} previous)", self.previous.len())
    }
}

/// Under which key of a [`Keyring`] a value opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedUnder {
    Current,
    Previous,
}

impl Keyring {
    pub fn new(current: SealingKey, previous: Vec<SealingKey>) -> Self {
        Self { current, previous }
    }

    /// A ring of one random key (tests, throwaway databases).
    pub fn generate() -> Self {
        Self::new(SealingKey::generate(), Vec::new())
    }

    /// Seals `plain` under the current key, bound to `place`.
    pub fn seal(&self, plain: &str, place: &str) -> String {
        self.current.seal(plain.as_bytes(), place)
    }

    /// Opens a sealed value of `place` under any key of the ring.
    pub fn open(&self, sealed: &str, place: &str) -> Result<String, OpenError> {
        self.open_under(sealed, place).map(|(plain, _)| plain)
    }

    /// [`open`](Self::open), also telling whether the current key opened it.
    pub fn open_under(&self, sealed: &str, place: &str) -> Result<(String, SealedUnder), OpenError> {
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| OpenError);
        if let Ok(plain) = self.current.open(sealed, place) {
            return Ok((text(plain)?, SealedUnder::Current));
        }
        for key in &self.previous {
            if let Ok(plain) = key.open(sealed, place) {
                return Ok((text(plain)?, SealedUnder::Previous));
            }
        }
        Err(OpenError)
    }

    /// A JSON value sealed for a JSON column: a JSON string holding the sealed text.
    pub fn seal_json(&self, value: &Value, place: &str) -> Value {
        Value::String(self.seal(&value.to_string(), place))
    }

    /// Opens what [`seal_json`](Self::seal_json) made.
    pub fn open_json(&self, stored: &Value, place: &str) -> Result<Value, OpenError> {
        let sealed = stored.as_str().ok_or(OpenError)?;
        serde_json::from_str(&self.open(sealed, place)?).map_err(|_| OpenError)
    }

    /// The stored text of a text column, re-sealed under the current key when it is
    /// in clear or under a previous key; `None` when it needs nothing.
    pub fn reseal_text(&self, stored: &str, place: &str) -> Result<Option<String>, OpenError> {
        if !SealingKey::is_sealed(stored) {
            return Ok(Some(self.seal(stored, place)));
        }
        Ok(match self.open_under(stored, place)? {
            (_, SealedUnder::Current) => None,
            (plain, SealedUnder::Previous) => Some(self.seal(&plain, place)),
        })
    }

    /// [`reseal_text`](Self::reseal_text) for a JSON column's value.
    pub fn reseal_json(&self, stored: &Value, place: &str) -> Result<Option<Value>, OpenError> {
        match stored.as_str().filter(|s| SealingKey::is_sealed(s)) {
            None => Ok(Some(self.seal_json(stored, place))),
            Some(sealed) => Ok(match self.open_under(sealed, place)? {
                (_, SealedUnder::Current) => None,
                (plain, SealedUnder::Previous) => Some(Value::String(self.seal(&plain, place))),
            }),
        }
    }

    /// A new key check value, sealed under the current key.
    pub fn check_value(&self) -> String {
        self.current.seal(CHECK_PLAIN, CHECK_CONTEXT)
    }

    /// Whether the stored key check opens under a key of the ring, and which.
    pub fn verify_check(&self, stored: &str) -> StoreResult<SealedUnder> {
        let (plain, under) = self.open_under(stored, CHECK_CONTEXT).map_err(|_| wrong_key())?;
        if plain.as_bytes() != CHECK_PLAIN {
            return Err(wrong_key());
        }
        Ok(under)
    }
}

/// The error that refuses a key that does not open a database's secrets.
pub fn wrong_key() -> StoreError {
    StoreError::Precondition(
        "the secret key does not open this database's secrets: they were sealed under another key. \
         Give hookd the key they were sealed with (secret_key, or the key file beside an embedded \
         database; see docs/security.md#secrets-at-rest), or list the old key in secret_key_previous \
         and run `hookd secrets rotate-key`"
            .into(),
    )
}

/// A sealed value that does not open, as a decoding error of the row it is in.
pub fn unopened(place: &str) -> StoreError {
    StoreError::damaged(
        format!("the sealed value of {place}"),
        "it does not open under any key",
    )
}

/// Which sealed value a column holds; with the row's key it names the place the
/// value is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    EndpointSecret,
    EndpointPreviousSecrets,
    EndpointHeaders,
    SourceConfig,
    SourceOptions,
    /// A source's URL token (`token_sealed`; `token` holds its digest,
    /// [`hookd_core::ingest::token_digest`]).
    SourceToken,
    /// A flow secret (sealed by the service since flows began), keyed `{org}/{name}`.
    FlowSecret,
}

impl Sealed {
    const ALL: [Self; 7] = [
        Self::EndpointSecret,
        Self::EndpointPreviousSecrets,
        Self::EndpointHeaders,
        Self::SourceConfig,
        Self::SourceOptions,
        Self::SourceToken,
        Self::FlowSecret,
    ];

    /// The name SQL passes to SQLite's `hookd_open(value, name, key)`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EndpointSecret => "endpoint-secret",
            Self::EndpointPreviousSecrets => "endpoint-previous-secrets",
            Self::EndpointHeaders => "endpoint-headers",
            Self::SourceConfig => "source-config",
            Self::SourceOptions => "source-options",
            Self::SourceToken => "source-token",
            Self::FlowSecret => "flow-secret",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The place a value of this kind in the row keyed `key` is bound to.
    pub fn place(self, key: &str) -> String {
        match self {
            Self::EndpointSecret => format!("endpoint/{key}/secret"),
            Self::EndpointPreviousSecrets => format!("endpoint/{key}/previous-secrets"),
            Self::EndpointHeaders => format!("endpoint/{key}/headers"),
            Self::SourceConfig => format!("source/{key}/config"),
            Self::SourceOptions => format!("source/{key}/options"),
            Self::SourceToken => format!("source/{key}/token"),
            Self::FlowSecret => format!("flow-secret/{key}"),
        }
    }

    /// Whether PostgreSQL keeps it in a `jsonb` column (as a JSON string).
    pub fn is_json(self) -> bool {
        !matches!(self, Self::EndpointSecret | Self::SourceToken | Self::FlowSecret)
    }
}

/// A table with sealed columns: its row key (an SQL expression both backends
/// evaluate the same way) and the columns.
#[derive(Debug)]
pub struct SealedTable {
    pub table: &'static str,
    pub key: &'static str,
    pub columns: &'static [(&'static str, Sealed)],
}

/// Every sealed column of every table, in the order `rotate-key` walks them.
pub const SEALED_TABLES: &[SealedTable] = &[
    SealedTable {
        table: "endpoint",
        key: "id",
        columns: &[
            ("secret", Sealed::EndpointSecret),
            ("previous_secrets", Sealed::EndpointPreviousSecrets),
            ("headers", Sealed::EndpointHeaders),
        ],
    },
    SealedTable {
        table: "source",
        key: "id",
        columns: &[
            ("config", Sealed::SourceConfig),
            ("options", Sealed::SourceOptions),
            ("token_sealed", Sealed::SourceToken),
        ],
    },
    SealedTable {
        table: "flow_secret",
        key: "org_id || '/' || name",
        columns: &[("sealed", Sealed::FlowSecret)],
    },
];

/// Where `hookd secrets rotate-key` has got to: the table it is in (an index into the
/// backend's list of sealed tables) and the last row key it re-sealed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealCursor {
    pub table: usize,
    pub after: String,
}

/// What one batch of [`SecretStore::reseal_secrets`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealBatch {
    /// Rows looked at.
    pub rows: usize,
    /// Values re-sealed under the current key.
    pub resealed: usize,
    /// Where the next batch starts; `None` when every table is done.
    pub next: Option<ResealCursor>,
}

/// The key a backend seals with, and re-sealing under a new one.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// The keys this store seals and opens with.
    fn keyring(&self) -> &Keyring;

    /// Re-seals, under the current key, the secrets of up to `limit` rows from
    /// `cursor` on, each batch in its own transaction (nodes keep serving meanwhile).
    async fn reseal_secrets(&self, cursor: &ResealCursor, limit: usize) -> StoreResult<ResealBatch>;

    /// Seals the key check under the current key: from then on the previous keys are
    /// no longer needed to open this database. Call it once every batch is done.
    async fn seal_key_check(&self) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_ring_opens_under_old_keys_and_reseals_under_the_new_one() {
        let old = Keyring::generate();
        let sealed = old.seal("whsec_abc", "endpoint/o/e/secret");
        let ring = Keyring::new(SealingKey::generate(), vec![old.current.clone()]);
        assert_eq!(
            ring.open_under(&sealed, "endpoint/o/e/secret").unwrap(),
            ("whsec_abc".to_owned(), SealedUnder::Previous)
        );
        let resealed = ring.reseal_text(&sealed, "endpoint/o/e/secret").unwrap().unwrap();
        assert_eq!(
            ring.open_under(&resealed, "endpoint/o/e/secret").unwrap().1,
            SealedUnder::Current
        );
        assert_eq!(ring.reseal_text(&resealed, "endpoint/o/e/secret").unwrap(), None);
        // A clear value is sealed; another row's value does not open here.
        let clear = ring.reseal_text("whsec_clear", "p").unwrap().unwrap();
        assert_eq!(ring.open(&clear, "p").unwrap(), "whsec_clear");
        assert!(ring.open(&clear, "q").is_err());
        // JSON columns: a JSON string holding the sealed text.
        let json = serde_json::json!({"Authorization": "Bearer x"});
        let stored = ring.seal_json(&json, "h");
        assert!(!stored.to_string().contains("Bearer"));
        assert_eq!(ring.open_json(&stored, "h").unwrap(), json);
        assert_eq!(ring.reseal_json(&stored, "h").unwrap(), None);
        assert!(ring.reseal_json(&json, "h").unwrap().is_some());
    }

    #[test]
    fn the_key_check_refuses_a_foreign_key() {
        let ring = Keyring::generate();
        let check = ring.check_value();
        assert_eq!(ring.verify_check(&check).unwrap(), SealedUnder::Current);
        let rotated = Keyring::new(SealingKey::generate(), vec![ring.current.clone()]);
        assert_eq!(rotated.verify_check(&check).unwrap(), SealedUnder::Previous);
        let err = Keyring::generate().verify_check(&check).unwrap_err();
        assert!(err.to_string().contains("another key"), "{err}");
        assert!(ring.verify_check("hks1.AAAA").is_err());
    }
}
