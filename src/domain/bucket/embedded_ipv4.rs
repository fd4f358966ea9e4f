//! The IPv4 addresses an IPv6 address carries: where a translator or tunnel would deliver
//! packets sent to it. The IPv4 endpoint rules must hold for each of them, or
//! `[64:ff9b::a9fe:a9fe]` reaches 169.254.169.254 through a NAT64 gateway.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Every IPv4 address `ip` may stand for (none for a plain IPv6 address). Where a scheme
/// allows several positions (local-use NAT64), each candidate is returned.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let o = ip.octets();
    let s = ip.segments();
    let at = |i: [usize; 4]| Ipv4Addr::new(o[i[0]], o[i[1]], o[i[2]], o[i[3]]);
    let last = at([12, 13, 14, 15]);
    match s {
        // IPv4-mapped ::ffff:0:0/96 and IPv4-translated ::ffff:0:0:0/96 (SIIT).
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0xffff, 0, ..] => vec![last],
        // IPv4-compatible ::/96 (deprecated, still routed by some stacks); `::` and `::1`
        // are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, ..] if u32::from(last) > 1 => vec![last],
        // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052): always a /96.
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => vec![last],
        // Local-use NAT64 64:ff9b:1::/48 (RFC 8215): the operator picks a prefix of 48, 56,
        // 64 or 96 bits inside it, so the IPv4 address may sit at any of these places
        // (bits 64 to 71 are always skipped). A reading at the wrong length mostly falls on
        // the zero padding: one starting with a zero byte is no address and is skipped, so a
        // /96 address is not refused for what its /48 reading would be.
        [0x64, 0xff9b, 1, ..] => [
            at([6, 7, 9, 10]),
            at([7, 9, 10, 11]),
            at([9, 10, 11, 12]),
            last,
        ]
        .into_iter()
        .filter(|v4| v4.octets()[0] != 0)
        .collect(),
        // 6to4 2002::/16: the relay's IPv4 address in bits 16 to 47.
        [0x2002, ..] => vec![at([2, 3, 4, 5])],
        // Teredo 2001::/32: the server in bits 32 to 63, the client (inverted) in the last 32.
        [0x2001, 0, ..] => vec![at([4, 5, 6, 7]), Ipv4Addr::from(!u32::from(last))],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(ip: &str) -> Vec<Ipv4Addr> {
        embedded_ipv4(ip.parse().unwrap())
    }

    fn v4(ip: &str) -> Ipv4Addr {
        ip.parse().unwrap()
    }

    #[test]
    fn each_embedding_yields_the_address_it_carries() {
        assert_eq!(carried("::ffff:169.254.169.254"), [v4("169.254.169.254")]);
        assert_eq!(carried("::ffff:0:10.1.2.3"), [v4("10.1.2.3")]);
        assert_eq!(carried("::127.0.0.1"), [v4("127.0.0.1")]);
        assert_eq!(carried("64:ff9b::a9fe:a9fe"), [v4("169.254.169.254")]);
        assert_eq!(carried("2002:a9fe:a9fe::1"), [v4("169.254.169.254")]);
        // Server 65.54.227.120, client 169.254.169.254 stored inverted.
        assert_eq!(
            carried("2001:0:4136:e378:8000:63bf:5601:5601"),
            [v4("65.54.227.120"), v4("169.254.169.254")]
        );
    }

    #[test]
    fn local_use_nat64_is_read_at_every_prefix_length() {
        // 169.254.169.254 placed after a /48, /56, /64 and /96 prefix.
        for ip in [
            "64:ff9b:1:a9fe:00a9:fe00::",
            "64:ff9b:1:00a9:00fe:a9fe::",
            "64:ff9b:1::a9:fea9:fe00:0",
            "64:ff9b:1::a9fe:a9fe",
        ] {
            assert!(carried(ip).contains(&v4("169.254.169.254")), "{ip}");
        }
        assert_eq!(carried("64:ff9b:1::5db8:d822"), [v4("93.184.216.34")]);
    }

    #[test]
    fn plain_ipv6_carries_nothing() {
        for ip in [
            "::",
            "::1",
            "2a00:1450:4001:82a::200e",
            "fd12:3456::1",
            "2001:db8::1",
        ] {
            assert!(carried(ip).is_empty(), "{ip}");
        }
    }
}
