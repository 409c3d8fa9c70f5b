//! Secrets at rest: a value sealed with XChaCha20-Poly1305 under the server's key
//! (`secret_key`), bound to where it is kept, so a sealed value copied to another row
//! (another organisation's secret, another field) does not open there.
//!
//! Sealed text is `hks1.` + base64url (no padding) of a random 24-byte nonce followed
//! by the ciphertext and its tag. The version prefix lets a later format, or a key
//! rotation, tell old values from new.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::InvalidValue;

const PREFIX: &str = "hks1.";
const NONCE_BYTES: usize = 24;
const KEY_BYTES: usize = 32;

/// The key that seals secrets (32 bytes). Never shown by `Debug`.
#[derive(Clone)]
pub struct SealingKey(chacha20poly1305::Key);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

/// A sealed value did not open: the wrong key, another place's value, or damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a sealed secret did not open (the wrong secret_key, a value moved from elsewhere, or damaged)")]
pub struct OpenError;

impl SealingKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self(rand::random::<[u8; KEY_BYTES]>().into())
    }

    /// A key written as base64 (standard or URL-safe, padded or not) of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, InvalidValue> {
        let text = text.trim();
        let bytes = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &URL_SAFE_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
        ]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| InvalidValue::new("secret_key is not base64"))?;
        let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|b: Vec<u8>| {
            InvalidValue::new(format!("secret_key must be 32 bytes, not {}", b.len()))
        })?;
        Ok(Self(bytes.into()))
    }

    /// The key as base64, to write to a key file.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// Seals `plain`, bound to `context` (e.g. `"flow-secret/{org}/{name}"`).
    pub fn seal(&self, plain: &[u8], context: &str) -> String {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = XChaCha20Poly1305::new(&self.0)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            // Only inputs beyond 256 GiB fail.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`seal`](Self::seal) made with the same key and context.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, OpenError> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() > NONCE_BYTES)
            .ok_or(OpenError)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        XChaCha20Poly1305::new(&self.0)
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError)
    }

    /// Whether `text` is in the sealed format (so a migration can tell what is left).
    pub fn is_sealed(text: &str) -> bool {
        text.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = SealingKey::generate();
        let sealed = key.seal(b"twilio-token-123", "flow-secret/org_1/twilio");
        assert!(SealingKey::is_sealed(&sealed));
        assert!(!sealed.contains("twilio-token"));
        assert_eq!(
            key.open(&sealed, "flow-secret/org_1/twilio").unwrap(),
            b"twilio-token-123"
        );
        // Random nonces: the same value seals differently each time.
        assert_ne!(sealed, key.seal(b"twilio-token-123", "flow-secret/org_1/twilio"));
        // Another place, another key, a changed byte, a truncation: refused.
        assert_eq!(key.open(&sealed, "flow-secret/org_2/twilio"), Err(OpenError));
        assert_eq!(
            SealingKey::generate().open(&sealed, "flow-secret/org_1/twilio"),
            Err(OpenError)
        );
        let mut damaged = sealed.clone().into_bytes();
        let last = damaged.len() - 3;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            key.open(std::str::from_utf8(&damaged).unwrap(), "flow-secret/org_1/twilio"),
            Err(OpenError)
        );
        assert_eq!(
            key.open(&sealed[..20], "flow-secret/org_1/twilio"),
            Err(OpenError)
        );
        assert_eq!(key.open("plain text", "flow-secret/org_1/twilio"), Err(OpenError));
        assert_eq!(key.open("", ""), Err(OpenError));
        // An empty secret seals and opens too.
        assert_eq!(key.open(&key.seal(b"", "c"), "c").unwrap(), b"");
    }

    #[test]
    fn keys_are_read_from_base64_and_never_shown() {
        let key = SealingKey::generate();
        let text = key.to_base64();
        let again = SealingKey::from_base64(&text).unwrap();
        assert_eq!(again.open(&key.seal(b"x", "c"), "c").unwrap(), b"x");
        let url_safe = URL_SAFE_NO_PAD.encode(key.0);
        assert!(SealingKey::from_base64(&url_safe).is_ok());
        assert!(SealingKey::from_base64("not base64!").is_err());
        let short = SealingKey::from_base64("AAAA").unwrap_err();
        assert!(short.message.contains("32 bytes"), "{short:?}");
        assert_eq!(format!("{key:?}"), "SealingKey(<redacted>)");
    }
}
