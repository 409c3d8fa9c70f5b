//! Prefixed, time-ordered identifiers (`app_`, `ep_`, `msg_`, `atmpt_`, `org_`, ...).
//!
//! The body is a millisecond KSUID (27 base62 characters), the same shape Svix uses, so
//! ids sort by creation time and listings can page by id alone.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use rand::RngCore as _;
use svix_ksuid::KsuidMs;

use crate::InvalidValue;

/// Length of the KSUID body of every id.
pub const KSUID_LEN: usize = 27;

/// KSUID epoch (2014-05-13T16:53:20Z) in Unix seconds.
const KSUID_EPOCH: i64 = 1_400_000_000;
const PAYLOAD_LEN: usize = 15;

/// The last timestamp and payload handed out, so ids made in the same 4 ms tick (the
/// KSUID-ms resolution) still sort in creation order within this process.
static LAST: Mutex<(u64, [u8; PAYLOAD_LEN])> = Mutex::new((0, [0; PAYLOAD_LEN]));

/// A new KSUID-ms body, strictly greater than every one this process made before.
fn next_ksuid() -> KsuidMs {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let secs = now_ms.div_euclid(1000) - KSUID_EPOCH;
    let raw = ((secs.max(0) as u64) << 8) | ((now_ms.rem_euclid(1000) as u64) >> 2);
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (ts, payload) = if raw > last.0 {
        let mut payload = [0u8; PAYLOAD_LEN];
        rand::rng().fill_bytes(&mut payload);
        // Leave headroom so increments within a tick never wrap.
        payload[0] &= 0x7f;
        (raw, payload)
    } else {
        let mut payload = last.1;
        for byte in payload.iter_mut().rev() {
            let (v, carry) = byte.overflowing_add(1);
            *byte = v;
            if !carry {
                break;
            }
        }
        (last.0, payload)
    };
    *last = (ts, payload);
    KsuidMs::new_raw(ts, Some(&payload))
}

/// Length of the body of the shorter ids of the Svix Ingest API (`src_`, `log`).
pub const SHORT_LEN: usize = 22;

static LAST_SHORT: Mutex<u128> = Mutex::new(0);

/// A new short id body: 48 bits of Unix milliseconds and 80 random bits, as 22
/// zero-padded base62 characters (so string order is creation order), strictly greater
/// than every one this process made before.
fn next_short() -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u128;
    let mut random = [0u8; 16];
    rand::rng().fill_bytes(&mut random);
    // 79 random bits: headroom so increments within a millisecond never reach the time.
    let candidate = (now_ms << 80) | (u128::from_be_bytes(random) >> 49);
    let mut last = LAST_SHORT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let value = if candidate > *last { candidate } else { *last + 1 };
    *last = value;
    let mut out = [b'0'; SHORT_LEN];
    let mut n = value;
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        prefixed_id!($(#[$doc])* $name, concat!($prefix, "_"), KSUID_LEN, next_ksuid);
    };
    ($(#[$doc:meta])* $name:ident, $prefix:expr, $len:expr, $body:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id for something created now.
            pub fn generate() -> Self {
                Self(format!("{}{}", Self::PREFIX, $body()))
            }

            /// Whether `s` has this id's shape (prefix and 27 base62 characters).
            pub fn is_valid(s: &str) -> bool {
                s.strip_prefix(Self::PREFIX).is_some_and(|body| {
                    body.len() == $len && body.bytes().all(|b| b.is_ascii_alphanumeric())
                })
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a value read back from storage, where it was validated on the way in.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if Self::is_valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(InvalidValue::new(format!(
                        "must be `{}` followed by {} letters or digits",
                        Self::PREFIX,
                        $len
                    )))
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

prefixed_id!(
    /// An organisation: the tenant every other object belongs to.
    OrgId,
    "org"
);
prefixed_id!(
    /// An application: a customer of the organisation, owner of endpoints and messages.
    ApplicationId,
    "app"
);
prefixed_id!(
    /// An endpoint of an application: a URL that receives webhooks.
    EndpointId,
    "ep"
);
prefixed_id!(
    /// A message sent to an application.
    MessageId,
    "msg"
);
prefixed_id!(
    /// One delivery attempt of a message to an endpoint.
    AttemptId,
    "atmpt"
);
prefixed_id!(
    /// A background task (e.g. an endpoint recovery).
    TaskId,
    "qtask"
);
prefixed_id!(
    /// An API token (its public part; the secret part is only ever stored hashed).
    TokenId,
    "tok"
);
prefixed_id!(
    /// A flow (the automation's unit: a trigger and its steps).
    FlowId,
    "flow"
);
prefixed_id!(
    /// One run of a flow.
    FlowRunId,
    "run"
);
prefixed_id!(
    /// An API key of the data API (its public part; the secret is only stored hashed).
    ApiKeyId,
    "key"
);

prefixed_id!(
    /// A web UI session, or the sign-in link that starts one (its public part; the
    /// secret is only stored hashed).
    UiSessionId,
    "uis"
);

prefixed_id!(
    /// An ingest source: a URL that receives third-party webhooks.
    SourceId,
    "src_",
    SHORT_LEN,
    next_short
);
prefixed_id!(
    /// One request received at a source URL (an entry of the source's log).
    IngestLogId,
    "log",
    SHORT_LEN,
    next_short
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_ids_have_the_svix_shape() {
        let id = ApplicationId::generate();
        assert_eq!(id.as_str().len(), 31);
        assert!(ApplicationId::is_valid(id.as_str()));
        assert!(!EndpointId::is_valid(id.as_str()));
        assert_eq!(EndpointId::generate().as_str().len(), 30);
    }

    #[test]
    fn ids_made_in_one_tick_still_sort_in_order() {
        let ids: Vec<OrgId> = (0..2_000).map(|_| OrgId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn short_ids_have_the_ingest_shape_and_sort_in_order() {
        let ids: Vec<IngestLogId> = (0..2_000).map(|_| IngestLogId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let src = SourceId::generate();
        assert_eq!(src.as_str().len(), 26);
        assert!(src.as_str().starts_with("src_"));
        assert_eq!(ids[0].as_str().len(), 25);
        assert!(ids[0].as_str().parse::<IngestLogId>().is_ok());
        assert!(src.as_str().parse::<IngestLogId>().is_err());
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let first = MessageId::generate();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = MessageId::generate();
        assert!(first < second, "{first} should sort before {second}");
    }

    proptest! {
        #[test]
        fn parse_accepts_only_the_exact_shape(s in "\\PC{0,40}") {
            let ok = s.parse::<ApplicationId>().is_ok();
            let expected = s.len() == 31
                && s.starts_with("app_")
                && s[4..].bytes().all(|b| b.is_ascii_alphanumeric());
            prop_assert_eq!(ok, expected);
        }

        #[test]
        fn display_round_trips(_n in 0u8..8) {
            let id = EndpointId::generate();
            prop_assert_eq!(id.to_string().parse::<EndpointId>().unwrap(), id);
        }
    }
}
