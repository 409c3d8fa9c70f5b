//! Which addresses a webhook delivery may connect to.
//!
//! Endpoints are customer-supplied URLs, so without a guard hookd could be pointed at
//! its own admin interfaces, cloud metadata services or the private network (SSRF).
//! Every address a host resolves to is checked here *before* connecting, and only
//! addresses that pass are dialled. Internal ranges are refused unless an operator
//! allows them (`delivery_allow_networks`). IPv6 forms that embed an IPv4 address
//! (IPv4-mapped, IPv4-compatible, 6to4, NAT64) are judged by the embedded address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::network::NetworkList;

/// An IPv4 network, checked when the table is compiled (an invalid prefix length does
/// not build), so no entry can silently drop out of the tables below.
const fn v4(o: [u8; 4], len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(o[0], o[1], o[2], o[3]), len)
}

/// An IPv6 network, checked when the table is compiled.
const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]), len)
}

/// IPv4 ranges that are not the public internet, with the reason given on refusal.
const V4: &[(Ipv4Net, &str)] = &[
    (v4([0, 0, 0, 0], 8), "the unspecified/\"this\" network"),
    (v4([10, 0, 0, 0], 8), "a private network"),
    (
        v4([100, 64, 0, 0], 10),
        "carrier-grade NAT (shared address space)",
    ),
    (v4([127, 0, 0, 0], 8), "loopback"),
    (
        v4([169, 254, 0, 0], 16),
        "link-local (includes cloud metadata services)",
    ),
    (v4([172, 16, 0, 0], 12), "a private network"),
    (v4([192, 0, 0, 0], 24), "IETF protocol assignments"),
    (v4([192, 0, 2, 0], 24), "documentation"),
    (
        v4([192, 88, 99, 0], 24),
        "the deprecated 6to4 relay anycast range",
    ),
    (v4([192, 168, 0, 0], 16), "a private network"),
    (v4([198, 18, 0, 0], 15), "benchmarking"),
    (v4([198, 51, 100, 0], 24), "documentation"),
    (v4([203, 0, 113, 0], 24), "documentation"),
    (v4([224, 0, 0, 0], 4), "multicast"),
    (v4([240, 0, 0, 0], 4), "reserved (includes broadcast)"),
];

/// IPv6 ranges that are not the public internet.
const V6: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "the unspecified address"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0x1], 128), "loopback"),
    (v6([0x64, 0xff9b, 0x1, 0, 0, 0, 0, 0], 48), "local-use NAT64"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "the discard prefix"),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "IETF protocol assignments (Teredo, benchmarking, ORCHID)",
    ),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "a unique-local (private) network",
    ),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// The IPv4 address an IPv6 address carries, if it is one of the embedding forms.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let last32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4); // ::ffff:a.b.c.d
    }
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return Some(last32); // ::a.b.c.d (IPv4-compatible, deprecated)
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(last32); // NAT64 well-known prefix 64:ff9b::/96
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])); // 6to4 2002:AABB:CCDD::/48
    }
    None
}

/// Why `ip` is not a public internet address, or `None` if it is one.
pub fn internal_reason(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => V4
            .iter()
            .find(|(n, _)| n.contains(&v4))
            .map(|(_, why)| (*why).to_owned()),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return internal_reason(IpAddr::V4(v4))
                    .map(|why| format!("{why} (embedded in the IPv6 address)"));
            }
            V6.iter()
                .find(|(n, _)| n.contains(&v6))
                .map(|(_, why)| (*why).to_owned())
        }
    }
}

/// The delivery network policy: public addresses, plus the operator's allowed networks.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    allow: NetworkList,
}

impl NetworkPolicy {
    pub fn new(allow: NetworkList) -> Self {
        Self { allow }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.contains(ip)
            || match ip {
                IpAddr::V6(v6) => embedded_v4(v6).is_some_and(|v4| self.allow.contains(IpAddr::V4(v4))),
                IpAddr::V4(_) => false,
            }
    }

    /// `Ok` when a delivery may connect to `ip`; otherwise the reason it may not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.allowed(ip) {
            return Ok(());
        }
        match internal_reason(ip) {
            None => Ok(()),
            Some(why) => Err(format!(
                "{ip} is {why}; deliveries to internal addresses are refused unless the network is \
                 listed in delivery_allow_networks"
            )),
        }
    }

    pub fn allowed_networks(&self) -> &[IpNet] {
        self.allow.networks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_refusal_tables_hold_every_range() {
        let v4: Vec<String> = V4.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            v4,
            [
                "0.0.0.0/8",
                "10.0.0.0/8",
                "100.64.0.0/10",
                "127.0.0.0/8",
                "169.254.0.0/16",
                "172.16.0.0/12",
                "192.0.0.0/24",
                "192.0.2.0/24",
                "192.88.99.0/24",
                "192.168.0.0/16",
                "198.18.0.0/15",
                "198.51.100.0/24",
                "203.0.113.0/24",
                "224.0.0.0/4",
                "240.0.0.0/4",
            ]
        );
        let v6: Vec<String> = V6.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            v6,
            [
                "::/128",
                "::1/128",
                "64:ff9b:1::/48",
                "100::/64",
                "2001::/23",
                "2001:db8::/32",
                "3fff::/20",
                "fc00::/7",
                "fe80::/10",
                "fec0::/10",
                "ff00::/8",
            ]
        );
        // Each is a network address (no host bits set), as written.
        assert!(V4.iter().all(|(n, _)| n.network() == n.addr()));
        assert!(V6.iter().all(|(n, _)| n.network() == n.addr()));
    }

    fn refused(s: &str) -> bool {
        NetworkPolicy::default().check(s.parse().unwrap()).is_err()
    }

    #[test]
    fn internal_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "fec0::1",
            // IPv4 inside IPv6:
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "64:ff9b:1::1",
            "2001::1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!refused(ip), "{ip} should pass");
        }
    }

    #[test]
    fn allowed_networks_open_internal_ranges() {
        let policy = NetworkPolicy::new("127.0.0.0/8,fd00::/8".parse().unwrap());
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("fd00::5".parse().unwrap()).is_ok());
        assert!(policy.check("10.0.0.1".parse().unwrap()).is_err());
        let err = policy.check("10.0.0.1".parse().unwrap()).unwrap_err();
        assert!(
            err.contains("private") && err.contains("delivery_allow_networks"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn mapped_forms_agree_with_their_ipv4(a in any::<u32>()) {
            let v4 = Ipv4Addr::from(a);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            prop_assert_eq!(internal_reason(IpAddr::V4(v4)).is_some(), internal_reason(mapped).is_some());
            let o = v4.octets();
            let nat64 = IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0,
                u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([o[2], o[3]])));
            prop_assert_eq!(internal_reason(IpAddr::V4(v4)).is_some(), internal_reason(nat64).is_some());
        }

        #[test]
        fn private_ranges_are_always_refused(b in any::<u8>(), c in any::<u8>(), d in any::<u8>()) {
            for ip in [Ipv4Addr::new(10, b, c, d), Ipv4Addr::new(127, b, c, d), Ipv4Addr::new(192, 168, c, d),
                       Ipv4Addr::new(172, 16 + (b % 16), c, d), Ipv4Addr::new(169, 254, c, d)] {
                prop_assert!(NetworkPolicy::default().check(IpAddr::V4(ip)).is_err());
            }
        }
    }
}
