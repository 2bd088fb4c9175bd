//! The forwarded headers an app receives: who the client is and how it
//! came. The edge is the first hop, so what a client claims in these
//! headers is replaced, unless the peer is a trusted proxy (a CDN such as
//! Cloudflare in front of berth), whose claims are kept and extended.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// An IP network such as `203.0.113.0/24` or `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// With the bits past the prefix cleared.
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or network (such as 203.0.113.0/24 or 2001:db8::/32)")]
    Invalid(String),
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(input: &str) -> Result<Cidr, CidrError> {
        let invalid = || CidrError::Invalid(input.to_owned());
        let (addr, prefix) = match input.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (input.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let addr = addr.to_canonical();
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(invalid)?,
            None => bits,
        };
        Ok(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

pub(crate) fn is_trusted(trusted: &[Cidr], ip: IpAddr) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The client's address as the edge judged it (one address, never a list).
pub(crate) const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Sets `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` (from
/// `host`, the request's `Host`) and `X-Real-IP` for a request from `peer`,
/// and returns the client's address.
///
/// From any other peer, every forwarded header the client sent is dropped
/// (`Forwarded`, `X-Forwarded-Host`/`-Port`/`-Prefix` too): `X-Forwarded-For`
/// and `X-Real-IP` are the peer. From a trusted proxy, the peer is appended
/// to its `X-Forwarded-For`, its `X-Forwarded-Proto` and `X-Forwarded-Host`
/// (the host its client asked it for) are kept, and the client is the last
/// address in the chain that is not itself a trusted proxy.
pub(crate) fn set(
    headers: &mut HeaderMap,
    peer: IpAddr,
    https: bool,
    host: Option<&HeaderValue>,
    trusted: &[Cidr],
) -> IpAddr {
    let peer = peer.to_canonical();
    let ours = HeaderValue::from_static(if https { "https" } else { "http" });
    if !is_trusted(trusted, peer) {
        let claims = [
            header::FORWARDED,
            X_FORWARDED_FOR,
            X_FORWARDED_HOST,
            X_FORWARDED_PORT,
            X_FORWARDED_PREFIX,
            X_REAL_IP,
        ];
        // Clients rarely send any: one walk over the names is cheaper than
        // a hashed removal for each of them.
        if headers.keys().any(|name| claims.contains(name)) {
            for name in claims {
                headers.remove(name);
            }
        }
        let value = HeaderValue::from_str(&peer.to_string()).expect("an address is a valid header");
        headers.insert(X_FORWARDED_FOR, value.clone());
        headers.insert(X_REAL_IP, value);
        headers.insert(X_FORWARDED_PROTO, ours);
        if let Some(host) = host {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
        return peer;
    }
    let chain: Vec<IpAddr> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    let client = chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(trusted, **ip))
        .or(chain.first())
        .copied()
        .unwrap_or(peer);
    let list = chain
        .iter()
        .chain([&peer])
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    headers.insert(
        X_FORWARDED_FOR,
        HeaderValue::from_str(&list).expect("addresses are a valid header"),
    );
    headers.insert(
        X_REAL_IP,
        HeaderValue::from_str(&client.to_string()).expect("an address is a valid header"),
    );
    let proto_ok = headers
        .get(&X_FORWARDED_PROTO)
        .is_some_and(|p| p == "https" || p == "http");
    if !proto_ok {
        headers.insert(X_FORWARDED_PROTO, ours);
    }
    if let Some(host) = host
        && !headers.contains_key(&X_FORWARDED_HOST)
    {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain_their_addresses() {
        let net = cidr("203.0.113.7/24");
        assert_eq!(net.to_string(), "203.0.113.0/24");
        assert!(net.contains("203.0.113.200".parse().unwrap()));
        assert!(net.contains("::ffff:203.0.113.1".parse().unwrap()));
        assert!(!net.contains("203.0.114.1".parse().unwrap()));
        assert!(cidr("2001:db8::/32").contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!cidr("2001:db8::/32").contains("203.0.113.1".parse().unwrap()));
        assert!(cidr("0.0.0.0/0").contains("198.51.100.1".parse().unwrap()));
        assert!(cidr("192.0.2.1").contains("192.0.2.1".parse().unwrap()));
        assert!(!cidr("192.0.2.1").contains("192.0.2.2".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    fn sent(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn a_clients_claims_are_replaced() {
        let mut headers = sent(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-real-ip", "10.0.0.2"),
            ("forwarded", "for=10.0.0.3"),
            ("x-forwarded-port", "443"),
        ]);
        let client = set(
            &mut headers,
            "198.51.100.4".parse().unwrap(),
            false,
            None,
            &[],
        );
        assert_eq!(client.to_string(), "198.51.100.4");
        assert_eq!(headers["x-forwarded-for"], "198.51.100.4");
        assert_eq!(headers["x-real-ip"], "198.51.100.4");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert!(headers.get("forwarded").is_none());
        assert!(headers.get("x-forwarded-port").is_none());
    }

    #[test]
    fn a_trusted_proxys_chain_is_extended_and_its_client_believed() {
        let trusted = [cidr("203.0.113.0/24")];
        let mut headers = sent(&[
            ("x-forwarded-for", "10.9.9.9, 198.51.100.4"),
            ("x-forwarded-for", "203.0.113.5"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=198.51.100.4"),
        ]);
        let client = set(
            &mut headers,
            "203.0.113.9".parse().unwrap(),
            false,
            None,
            &trusted,
        );
        assert_eq!(client.to_string(), "198.51.100.4");
        assert_eq!(
            headers["x-forwarded-for"],
            "10.9.9.9, 198.51.100.4, 203.0.113.5, 203.0.113.9"
        );
        assert_eq!(headers["x-real-ip"], "198.51.100.4");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["forwarded"], "for=198.51.100.4");
    }
}
