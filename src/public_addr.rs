//! `--base-domain auto`: this server's public IPv4 address under sslip.io,
//! an outside wildcard-DNS service that answers `a-b-c-d.sslip.io` (and any
//! name below it) with the address a.b.c.d. berth depends on that service
//! only for DNS; if it is down, the names stop resolving.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use anyhow::{Context, bail};
use berth_core::DomainName;

/// The wildcard-DNS service `auto` uses.
pub const WILDCARD_DNS: &str = "sslip.io";

/// `<a-b-c-d>.sslip.io`: dashes keep the address one label, so each app's
/// host is `<app>.<project>.<a-b-c-d>.sslip.io`.
pub fn sslip_domain(ip: Ipv4Addr) -> DomainName {
    let [a, b, c, d] = ip.octets();
    DomainName::parse(&format!("{a}-{b}-{c}-{d}.{WILDCARD_DNS}"))
        .expect("four numbers joined by dashes under sslip.io is a valid domain")
}

/// Whether the rest of the internet can reach this address (not private,
/// shared/CGNAT, loopback, link-local, documentation or otherwise reserved).
pub fn is_public(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    let benchmarking = a == 198 && (b == 18 || b == 19);
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || shared
        || benchmarking
        || a == 0
        || a >= 240)
}

/// The IPv4 address this server sends from on its default route: the source
/// address of a UDP socket "connected" to a public address. Connecting a UDP
/// socket only picks the route; no packet leaves the machine.
pub fn outgoing_ipv4() -> anyhow::Result<Ipv4Addr> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
        .context("cannot open a UDP socket to find this server's address")?;
    // A well-known public address; nothing is sent to it.
    socket
        .connect(SocketAddr::from((Ipv4Addr::new(9, 9, 9, 9), 53)))
        .context("this server has no IPv4 route to the internet")?;
    match socket.local_addr()?.ip() {
        IpAddr::V4(ip) => Ok(ip),
        IpAddr::V6(ip) => bail!("the default route goes out from the IPv6 address {ip}"),
    }
}

/// The base domain for `--base-domain auto`, or why there is none.
pub fn auto_base_domain() -> anyhow::Result<DomainName> {
    let ip = outgoing_ipv4()?;
    if !is_public(ip) {
        bail!(
            "--base-domain auto: this server sends from {ip}, which is not a public address \
             (it is behind NAT or a private network); pass --base-domain a-b-c-d.{WILDCARD_DNS} \
             with the public address, or a domain of your own"
        );
    }
    Ok(sslip_domain(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_address_becomes_one_dashed_label_under_sslip_io() {
        let domain = sslip_domain(Ipv4Addr::new(203, 0, 114, 7));
        assert_eq!(domain.as_str(), "203-0-114-7.sslip.io");
        let app = domain.prepend("demo").unwrap().prepend("web").unwrap();
        assert_eq!(app.as_str(), "web.demo.203-0-114-7.sslip.io");
    }

    #[test]
    fn private_shared_and_reserved_addresses_are_not_public() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.10",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "192.0.2.1",
            "198.18.0.1",
            "0.1.2.3",
            "240.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["203.0.114.7", "1.1.1.1", "95.217.1.2", "100.128.0.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_outgoing_address_is_found_without_sending_anything() {
        // Machines without an IPv4 route have none; that is an answer too.
        if let Ok(ip) = outgoing_ipv4() {
            assert!(!ip.is_unspecified());
        }
    }
}
