//! The network guard: every address a delivery host resolves to is checked against the
//! [`NetworkPolicy`] and only the addresses that pass are handed to the connector, so a
//! DNS answer cannot smuggle a request to an internal address (no check-then-use gap).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hookd_core::network_policy::NetworkPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a delivery was not sent to an address.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by the delivery network policy: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// A resolver that drops refused addresses, failing when none is left.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<NetworkPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if resolved.is_empty() {
                return Err(format!("{host} did not resolve to any address").into());
            }
            let mut reasons = Vec::new();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        reasons.push(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused(format!("{host}: {}", reasons.join("; "))))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Checks a URL whose host is an IP literal (the resolver is not asked for those).
pub fn check_literal(policy: &NetworkPolicy, url: &url::Url) -> Result<(), Refused> {
    let ip: Option<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(v4.into()),
        Some(url::Host::Ipv6(v6)) => Some(v6.into()),
        _ => None,
    };
    match ip {
        Some(ip) => policy.check(ip).map_err(Refused),
        None => Ok(()),
    }
}

/// Finds a [`Refused`] anywhere in an error's cause chain.
pub fn refusal_in(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        cur = e.source();
    }
    None
}
