//! An endpoint's URL: absolute `http` or `https`, with a host, at most 64 KiB — or the
//! `hookd-listen://{session}` URL of a `hookd listen` session's temporary endpoint,
//! whose deliveries go to that session's connection instead of over the network.
//!
//! Whether the host may be reached is decided at delivery time by the network policy,
//! because DNS answers change after an endpoint is created. A listen URL is never
//! parsed from input ([`FromStr`] refuses it): only the listen service makes one
//! ([`EndpointUrl::listener`]), and the stores read it back ([`EndpointUrl::from_stored`]).

use std::fmt;
use std::str::FromStr;

use crate::InvalidValue;

#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    pub const MAX_LEN: usize = 65_536;

    /// The scheme of a `hookd listen` session's URL.
    pub const LISTEN_SCHEME: &str = "hookd-listen";

    /// The URL of the `hookd listen` session `session` (a [`crate::name::Uid`]-shaped
    /// name: letters, digits, `-`, `_`, `.`).
    pub fn listener(session: &str) -> Result<Self, InvalidValue> {
        let ok = !session.is_empty()
            && session.len() <= 200
            && session
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(InvalidValue::new(
                "a session name is 1 to 200 letters, digits, '-', '_' or '.'",
            ));
        }
        let url = url::Url::parse(&format!(
            "{}://{}",
            Self::LISTEN_SCHEME,
            session.to_ascii_lowercase()
        ))
        .map_err(|e| InvalidValue::new(format!("not a valid session name: {e}")))?;
        Ok(Self(url))
    }

    /// Whether deliveries to this URL go to a `hookd listen` session.
    pub fn is_listener(&self) -> bool {
        self.0.scheme() == Self::LISTEN_SCHEME
    }

    /// A URL as a store keeps it: what [`FromStr`] accepts, or a listen URL.
    pub fn from_stored(s: &str) -> Result<Self, InvalidValue> {
        if let Some(session) = s.strip_prefix("hookd-listen://") {
            return Self::listener(session);
        }
        s.parse()
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl FromStr for EndpointUrl {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(InvalidValue::new("the URL must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(InvalidValue::new("the URL must be at most 65536 characters"));
        }
        let url = url::Url::parse(s).map_err(|e| InvalidValue::new(format!("not a valid URL: {e}")))?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(InvalidValue::new(format!(
                    "the URL scheme must be http or https, not {other}"
                )));
            }
        }
        if url.host().is_none() {
            return Err(InvalidValue::new("the URL must have a host"));
        }
        Ok(Self(url))
    }
}

/// Deserializing reads stored data (an export, a job's state): listen URLs included.
impl TryFrom<String> for EndpointUrl {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::from_stored(&s)
    }
}

impl From<EndpointUrl> for String {
    fn from(u: EndpointUrl) -> String {
        u.0.into()
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert!("https://example.com/webhook/".parse::<EndpointUrl>().is_ok());
        assert!("http://127.0.0.1:8080/x?y=1".parse::<EndpointUrl>().is_ok());
        assert!("ftp://example.com".parse::<EndpointUrl>().is_err());
        assert!("example.com/hook".parse::<EndpointUrl>().is_err());
        assert!("https://".parse::<EndpointUrl>().is_err());
        assert!("".parse::<EndpointUrl>().is_err());
        assert!("javascript:alert(1)".parse::<EndpointUrl>().is_err());
    }

    #[test]
    fn listen_urls_are_made_never_parsed() {
        let made = EndpointUrl::listener("Laptop-3000").unwrap();
        assert!(made.is_listener());
        assert_eq!(made.as_str(), "hookd-listen://laptop-3000");
        assert!("hookd-listen://laptop-3000".parse::<EndpointUrl>().is_err());
        assert_eq!(EndpointUrl::from_stored(made.as_str()).unwrap(), made);
        assert!(
            !EndpointUrl::from_stored("https://x.example")
                .unwrap()
                .is_listener()
        );
        for bad in ["", "a/b", "a b", "x@y", "a:1"] {
            assert!(EndpointUrl::listener(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_accepts_only_http(s in "\\PC{0,80}") {
            if let Ok(u) = s.parse::<EndpointUrl>() {
                prop_assert!(matches!(u.as_url().scheme(), "http" | "https"));
                prop_assert!(u.as_url().host().is_some());
            }
        }

        #[test]
        fn https_hosts_are_accepted(host in "[a-z]{1,20}(\\.[a-z]{2,5}){1,3}", path in "(/[a-z0-9]{0,8}){0,4}") {
            let s = format!("https://{host}{path}");
            prop_assert!(s.parse::<EndpointUrl>().is_ok());
        }
    }
}
