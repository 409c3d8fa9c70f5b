//! Lists of IP networks (CIDRs), as written in configuration: `10.0.0.0/8, ::1/128`.
//!
//! The delivery network guard (which addresses a webhook may reach) builds on this.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::InvalidValue;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct NetworkList(Vec<IpNet>);

impl NetworkList {
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&addr))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for NetworkList {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| InvalidValue::new(format!("{p:?} is not a CIDR network (e.g. 10.0.0.0/8)")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl fmt::Display for NetworkList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl fmt::Debug for NetworkList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetworkList({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cidrs_and_bare_addresses() {
        let list: NetworkList = "10.0.0.0/8, 127.0.0.1 ,::1/128".parse().unwrap();
        assert_eq!(list.networks().len(), 3);
        assert!(list.contains("10.1.2.3".parse().unwrap()));
        assert!(list.contains("127.0.0.1".parse().unwrap()));
        assert!(!list.contains("127.0.0.2".parse().unwrap()));
        assert!("".parse::<NetworkList>().unwrap().is_empty());
        let err = "10.0.0.0/8,nope".parse::<NetworkList>().unwrap_err();
        assert!(err.message.contains("nope"));
    }
}
