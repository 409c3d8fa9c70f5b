//! Validated names: uids, event-type names, channels and feature flags, with the
//! character sets and lengths of the Svix API.

use std::fmt;
use std::str::FromStr;

use crate::InvalidValue;

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, max = $max:literal, extra = $extra:literal, what = $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn as_str(&self) -> &str {
                &self.0
            }

            fn allowed(c: char) -> bool {
                c.is_ascii_alphanumeric() || $extra.contains(c)
            }

            /// Wraps a value read back from storage, where it was validated on the way in.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.is_empty() {
                    return Err(InvalidValue::new(concat!($what, " must not be empty")));
                }
                if s.len() > Self::MAX_LEN {
                    return Err(InvalidValue::new(format!(
                        concat!($what, " must be at most {} characters"),
                        Self::MAX_LEN
                    )));
                }
                if let Some(bad) = s.chars().find(|c| !Self::allowed(*c)) {
                    return Err(InvalidValue::new(format!(
                        concat!($what, " may contain only letters, digits and `{}`; found {:?}"),
                        $extra, bad
                    )));
                }
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

validated_name!(
    /// A caller-chosen unique identifier (of an application, endpoint, ...).
    Uid, max = 256, extra = "-_.", what = "a uid"
);
validated_name!(
    /// An event type's name, e.g. `invoice.paid`.
    EventTypeName, max = 256, extra = "-_.", what = "an event type name"
);
validated_name!(
    /// A message channel, e.g. `project_123` or `team:42`.
    ChannelName, max = 128, extra = "-_.:+", what = "a channel"
);
validated_name!(
    /// A feature flag gating the visibility of an event type.
    FeatureFlag, max = 256, extra = "-_.", what = "a feature flag"
);
validated_name!(
    /// An event type group's name.
    GroupName, max = 256, extra = "-_.", what = "a group name"
);
validated_name!(
    /// The name of a collection, leaderboard or portal mode of an application.
    DataName, max = 64, extra = "-_", what = "a name"
);
validated_name!(
    /// A document's key or a leaderboard player's id: it appears in portal URLs, so it
    /// keeps to characters that need no escaping there.
    ItemKey, max = 256, extra = "-_.:@+=", what = "a key"
);

validated_name!(
    /// A message tag, e.g. `project_1` or `a/b#c`.
    Tag, max = 128, extra = "-_./\\#", what = "a tag"
);

/// A source's uid, under the Ingest API's rule: 1 to 60 letters, digits, `-` and `_`,
/// never starting with `src_` (a source's id does), so a key names a uid or an id
/// unambiguously.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SourceUid(String);

impl SourceUid {
    pub const MAX_LEN: usize = 60;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A uid as stored: checked when it was written, so a rule tightened later never
    /// makes a stored source unreadable.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
}

impl FromStr for SourceUid {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > Self::MAX_LEN {
            return Err(InvalidValue::new("the uid must be at most 60 characters"));
        }
        if s.starts_with("src_") {
            return Err(InvalidValue::new("the uid must not start with `src_` (ids do)"));
        }
        if s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(InvalidValue::new("the uid may hold letters, digits, `-` and `_`"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for SourceUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SourceUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Channels a message or an endpoint may name at most.
pub const MAX_CHANNELS: usize = 10;
/// Tags a message may carry at most.
pub const MAX_TAGS: usize = 5;

/// A set of channels from a list: empty means none (no filter), at most
/// [`MAX_CHANNELS`], each a valid [`ChannelName`].
pub fn channel_set(list: &[String]) -> Result<Option<std::collections::BTreeSet<ChannelName>>, InvalidValue> {
    if list.is_empty() {
        return Ok(None);
    }
    if list.len() > MAX_CHANNELS {
        return Err(InvalidValue::new(format!("at most {MAX_CHANNELS} channels")));
    }
    list.iter().map(|c| c.parse()).collect::<Result<_, _>>().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_uid_never_looks_like_an_id() {
        assert!("github-main_2".parse::<SourceUid>().is_ok());
        for bad in ["", "src_abc", "a.b", "a b", &"x".repeat(61)] {
            assert!(bad.parse::<SourceUid>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "x".repeat(60).parse::<SourceUid>().map(|u| u.as_str().len()),
            Ok(60)
        );
    }

    #[test]
    fn tags_and_channel_sets_keep_their_limits() {
        assert!("a/b#c.d-e_f".parse::<Tag>().is_ok());
        assert!("".parse::<Tag>().is_err());
        assert!("a b".parse::<Tag>().is_err());
        assert!("x".repeat(129).parse::<Tag>().is_err());
        assert_eq!(channel_set(&[]).unwrap(), None);
        let ten: Vec<String> = (0..MAX_CHANNELS).map(|i| format!("c{i}")).collect();
        assert_eq!(channel_set(&ten).unwrap().map(|s| s.len()), Some(MAX_CHANNELS));
        let eleven: Vec<String> = (0..=MAX_CHANNELS).map(|i| format!("c{i}")).collect();
        assert!(channel_set(&eleven).is_err());
        assert!(channel_set(&["bad channel".into()]).is_err());
    }
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert!("user.signup".parse::<EventTypeName>().is_ok());
        assert!("a-b_c.d".parse::<Uid>().is_ok());
        assert!("team:42+x".parse::<ChannelName>().is_ok());
        assert!("team:42".parse::<Uid>().is_err());
        assert!("".parse::<Uid>().is_err());
        assert!("x".repeat(257).parse::<Uid>().is_err());
        assert!("x".repeat(256).parse::<Uid>().is_ok());
        assert!("x".repeat(129).parse::<ChannelName>().is_err());
        assert!("héllo".parse::<Uid>().is_err());
    }

    proptest! {
        #[test]
        fn uid_accepts_exactly_its_pattern(s in "\\PC{0,300}") {
            let expected = !s.is_empty()
                && s.len() <= 256
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            prop_assert_eq!(s.parse::<Uid>().is_ok(), expected);
        }

        #[test]
        fn valid_uids_round_trip(s in "[a-zA-Z0-9._-]{1,256}") {
            let uid: Uid = s.parse().unwrap();
            prop_assert_eq!(uid.as_str(), s.as_str());
            let json = serde_json_like(&uid);
            prop_assert_eq!(json, s);
        }

        #[test]
        fn event_type_names_accept_exactly_their_pattern(s in "[a-zA-Z0-9._ :/-]{0,260}") {
            let expected = !s.is_empty()
                && s.len() <= 256
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            prop_assert_eq!(s.parse::<EventTypeName>().is_ok(), expected);
            if let Ok(name) = s.parse::<EventTypeName>() {
                prop_assert_eq!(name.as_str(), s.as_str());
            }
        }

        #[test]
        fn channel_accepts_exactly_its_pattern(s in "[a-z:+ /]{0,140}") {
            let expected = !s.is_empty()
                && s.len() <= 128
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:+".contains(c));
            prop_assert_eq!(s.parse::<ChannelName>().is_ok(), expected);
        }
    }

    fn serde_json_like(uid: &Uid) -> String {
        String::from(uid.clone())
    }
}
