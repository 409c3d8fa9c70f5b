//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
//!
//! During a secret rotation every valid key signs, and the signatures are joined by a
//! space in one header, so a receiver holding either key verifies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::secret::EndpointSecret;

/// One `v1,<base64>` signature.
pub fn sign(secret: &EndpointSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // A key of any length is valid for HMAC, so `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret.key()).unwrap_or_else(|_| unreachable!());
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value: one signature per secret, space-separated.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a EndpointSecret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .map(|s| sign(s, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The vector from the Standard Webhooks reference implementation.
    #[test]
    fn matches_the_reference_vector() {
        let secret: EndpointSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse().unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn rotation_signs_with_every_key() {
        let a = EndpointSecret::generate();
        let b = EndpointSecret::generate();
        let header = signature_header([&a, &b], "msg_x", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts, [sign(&a, "msg_x", 1, b"{}"), sign(&b, "msg_x", 1, b"{}")]);
    }

    proptest! {
        #[test]
        fn any_byte_change_changes_the_signature(body in proptest::collection::vec(any::<u8>(), 1..64), i in any::<prop::sample::Index>()) {
            let secret = EndpointSecret::generate();
            let mut tampered = body.clone();
            let at = i.index(tampered.len());
            tampered[at] ^= 0x01;
            prop_assert_ne!(sign(&secret, "msg_a", 7, &body), sign(&secret, "msg_a", 7, &tampered));
        }
    }
}
