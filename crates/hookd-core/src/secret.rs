//! Endpoint signing secrets: `whsec_` followed by the base64 of 24 to 64 random bytes.
//!
//! The key material never appears in `Debug` output, so it cannot leak into logs.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;

use crate::InvalidValue;

pub const PREFIX: &str = "whsec_";
/// Bytes of key material in a generated secret (Svix uses 24).
pub const GENERATED_LEN: usize = 24;
const MIN_LEN: usize = 24;
const MAX_LEN: usize = 64;

#[derive(Clone, PartialEq, Eq)]
pub struct EndpointSecret(Vec<u8>);

impl EndpointSecret {
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_LEN];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    /// The raw key bytes the HMAC is keyed with.
    pub fn key(&self) -> &[u8] {
        &self.0
    }

    /// The secret as shown to its owner: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }
}

impl FromStr for EndpointSecret {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if ["whsk_", "whsk1_", "whpk_", "whpk1_"]
            .iter()
            .any(|p| s.starts_with(p))
        {
            return Err(InvalidValue::new(
                "asymmetric (ed25519) secrets are not supported; use a `whsec_` secret",
            ));
        }
        let body = s.strip_prefix(PREFIX).unwrap_or(s);
        if !(32..=100).contains(&body.len()) {
            return Err(InvalidValue::new(
                "the secret must be `whsec_` followed by 32 to 100 base64 characters",
            ));
        }
        let key = STANDARD
            .decode(body)
            .map_err(|_| InvalidValue::new("the secret is not valid base64"))?;
        if !(MIN_LEN..=MAX_LEN).contains(&key.len()) {
            return Err(InvalidValue::new(format!(
                "the secret must hold {MIN_LEN} to {MAX_LEN} bytes of key material"
            )));
        }
        Ok(Self(key))
    }
}

impl fmt::Debug for EndpointSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EndpointSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_secrets_look_like_svix_ones() {
        let s = EndpointSecret::generate().expose();
        assert!(s.starts_with("whsec_"));
        assert_eq!(s.len(), 6 + 32);
        assert_eq!(s.parse::<EndpointSecret>().unwrap().expose(), s);
    }

    #[test]
    fn examples() {
        assert!(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
                .parse::<EndpointSecret>()
                .is_ok()
        );
        assert!(
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
                .parse::<EndpointSecret>()
                .is_ok()
        );
        assert!("whsec_short".parse::<EndpointSecret>().is_err());
        assert!(
            "whsec_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
                .parse::<EndpointSecret>()
                .is_err()
        );
        assert!(
            "whpk_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
                .parse::<EndpointSecret>()
                .is_err()
        );
        let secret: EndpointSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse().unwrap();
        assert!(!format!("{secret:?}").contains("C2FV"));
    }

    proptest! {
        #[test]
        fn any_key_of_valid_length_round_trips(key in proptest::collection::vec(any::<u8>(), 24..=64)) {
            let s = format!("whsec_{}", STANDARD.encode(&key));
            let parsed: EndpointSecret = s.parse().unwrap();
            prop_assert_eq!(parsed.key(), &key[..]);
            prop_assert_eq!(parsed.expose(), s);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            let _ = s.parse::<EndpointSecret>();
        }
    }
}
