//! Where a message may go, and the HTTP delivery that goes there.
//!
//! A target's name is resolved once; every address is checked; the
//! connection then goes to exactly the checked addresses (reqwest's
//! `resolve_to_addrs`, lettre given the IP), so a DNS answer that changes
//! between the check and the connection (rebinding) cannot reach a private
//! address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::error::SendError;
use crate::send::NotifyOptions;

/// How much of a server's answer is kept for the error message.
const ANSWER_CAP: usize = 2048;

/// Loopback, private (RFC 1918), carrier-grade NAT, link-local, unique-local,
/// unspecified and broadcast addresses: the host itself and its neighbours.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (first & 0xffc0) == 0xfe80 // fe80::/10 link local
                || (first & 0xffc0) == 0xfec0 // fec0::/10 old site local
                // NAT64 of a private v4 (64:ff9b::/96) reaches the same neighbours.
                || (v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                    && is_private_v4(Ipv4Addr::from(
                        (u32::from(v6.segments()[6]) << 16) | u32::from(v6.segments()[7]),
                    )))
        }
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10 shared (CGNAT)
}

/// Resolves `host` and refuses it if any address is private, unless allowed.
pub(crate) async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, SendError> {
    let addrs: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        let lookup = tokio::net::lookup_host((host, port));
        match tokio::time::timeout(timeout, lookup).await {
            Err(_) => {
                return Err(SendError::TimedOut {
                    host: host.to_owned(),
                    timeout,
                });
            }
            Ok(Err(e)) => {
                return Err(SendError::Resolve {
                    host: host.to_owned(),
                    reason: e.to_string(),
                });
            }
            Ok(Ok(found)) => found.collect(),
        }
    };
    if addrs.is_empty() {
        return Err(SendError::Resolve {
            host: host.to_owned(),
            reason: "no address".into(),
        });
    }
    if !allow_private && let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
        return Err(SendError::PrivateAddress {
            host: host.to_owned(),
            addr: bad.ip(),
        });
    }
    Ok(addrs)
}

/// One HTTP POST a channel wants to make, built without I/O so its shape
/// can be checked on its own.
#[derive(Debug)]
pub(crate) struct HttpPost {
    pub url: reqwest::Url,
    pub headers: Vec<(String, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Sends `post` to the checked addresses of its host and turns anything but
/// a 2xx into [`SendError::Rejected`] with the server's (capped) answer.
pub(crate) async fn post(post: HttpPost, options: &NotifyOptions) -> Result<(), SendError> {
    let timeout = options.timeout;
    let host = post.url.host_str().unwrap_or_default().to_owned();
    // Url keeps IPv6 hosts in brackets; resolution wants them bare.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = post.url.port_or_known_default().unwrap_or(443);
    let addrs = resolve_checked(bare, port, options.allow_private, timeout).await?;
    post_to(post, &addrs, options).await
}

/// The POST itself, to exactly `addrs`: no second DNS lookup happens.
async fn post_to(
    post: HttpPost,
    addrs: &[SocketAddr],
    options: &NotifyOptions,
) -> Result<(), SendError> {
    let timeout = options.timeout;
    let host = post.url.host_str().unwrap_or_default().to_owned();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            SendError::TimedOut {
                host: host.clone(),
                timeout,
            }
        } else {
            SendError::Transport {
                host: host.clone(),
                reason: error_chain(&e.without_url()),
            }
        }
    };
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = &options.extra_ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            SendError::Transport {
                host: host.clone(),
                reason: format!("the extra CA certificates could not be read: {e}"),
            }
        })? {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        // A redirect could point anywhere, private addresses included.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("berth-notify/", env!("CARGO_PKG_VERSION")))
        .resolve_to_addrs(bare, addrs)
        .build()
        .map_err(transport)?;
    let mut request = client
        .post(post.url.clone())
        .header(reqwest::header::CONTENT_TYPE, post.content_type)
        .body(post.body);
    for (name, value) in post.headers {
        request = request.header(name, value);
    }
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // Only the seconds form; an HTTP date is rare from these services.
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut answer = Vec::new();
    while answer.len() < ANSWER_CAP {
        match response.chunk().await {
            Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
            _ => break,
        }
    }
    answer.truncate(ANSWER_CAP);
    Err(SendError::Rejected {
        status: status.as_u16(),
        body: String::from_utf8_lossy(&answer).trim().to_owned(),
        retry_after,
    })
}

/// An error and its causes on one line; reqwest's own message alone says
/// only "error sending request".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_request_goes_to_the_checked_address_without_a_second_lookup() {
        // "rebind.invalid" resolves nowhere (RFC 6761): if the client looked
        // the name up again instead of using the checked address, this fails.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed early");
                head.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&head).into_owned()
        });
        let post = HttpPost {
            url: reqwest::Url::parse(&format!("http://rebind.invalid:{}/hook", addr.port()))
                .unwrap(),
            headers: Vec::new(),
            content_type: "application/json",
            body: b"{}".to_vec(),
        };
        post_to(post, &[addr], &NotifyOptions::default())
            .await
            .unwrap();
        let head = server.await.unwrap();
        assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("host: rebind.invalid:{}\r\n", addr.port())),
            "{head}"
        );
    }

    #[test]
    fn neighbours_are_private_and_the_internet_is_not() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fc12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:192.168.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip} should be private");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip} should be public");
        }
    }
}
