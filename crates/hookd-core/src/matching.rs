//! Which endpoints a message goes to (Svix semantics).
//!
//! A disabled endpoint gets nothing. An endpoint with an event-type filter gets only
//! those types. An endpoint with channels gets only messages sent on at least one of
//! them; an endpoint without channels gets every message, with or without channels.

use std::collections::BTreeSet;

use crate::name::{ChannelName, EventTypeName};

/// What an endpoint subscribes to.
#[derive(Debug, Clone, Copy)]
pub struct Subscription<'a> {
    pub disabled: bool,
    pub event_types: Option<&'a BTreeSet<EventTypeName>>,
    pub channels: Option<&'a BTreeSet<ChannelName>>,
}

pub fn accepts(
    sub: Subscription<'_>,
    event_type: &EventTypeName,
    message_channels: Option<&BTreeSet<ChannelName>>,
) -> bool {
    if sub.disabled {
        return false;
    }
    if let Some(types) = sub.event_types
        && !types.contains(event_type)
    {
        return false;
    }
    match sub.channels {
        None => true,
        Some(wanted) => message_channels.is_some_and(|have| !wanted.is_disjoint(have)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<T: std::str::FromStr + Ord>(items: &[&str]) -> BTreeSet<T>
    where
        T::Err: std::fmt::Debug,
    {
        items.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn svix_semantics() {
        let et: EventTypeName = "a.b".parse().unwrap();
        let types = set::<EventTypeName>(&["a.b"]);
        let other_types = set::<EventTypeName>(&["c.d"]);
        let chans = set::<ChannelName>(&["x", "y"]);
        let msg_x = set::<ChannelName>(&["x"]);
        let msg_z = set::<ChannelName>(&["z"]);
        let open = Subscription {
            disabled: false,
            event_types: None,
            channels: None,
        };
        assert!(accepts(open, &et, None));
        assert!(accepts(open, &et, Some(&msg_z)));
        assert!(!accepts(
            Subscription {
                disabled: true,
                ..open
            },
            &et,
            None
        ));
        assert!(accepts(
            Subscription {
                event_types: Some(&types),
                ..open
            },
            &et,
            None
        ));
        assert!(!accepts(
            Subscription {
                event_types: Some(&other_types),
                ..open
            },
            &et,
            None
        ));
        let chan = Subscription {
            channels: Some(&chans),
            ..open
        };
        assert!(accepts(chan, &et, Some(&msg_x)));
        assert!(!accepts(chan, &et, Some(&msg_z)));
        assert!(!accepts(chan, &et, None));
    }
}
