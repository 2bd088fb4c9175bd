//! A real ACME CA for tests: Debian's `pebble`, with `pebble-challtestsrv`
//! as its DNS server answering 127.0.0.1 for every name. Both run as child
//! processes on free 127.0.0.1 ports and are killed on drop. Pebble's own
//! HTTPS certificate comes from a throwaway CA made here with rcgen (the
//! Debian package ships none); `ca_bundle` is that CA's root, for
//! `--acme-ca-bundle`.
//!
//! Also here: a small HTTPS client on tokio-rustls that reports the
//! certificate the server presented, which is what the TLS tests check.
//!
//! Shared by the binary's tests (`tests/common`) and berth-edge's own tests
//! (included there with `#[path]`), so it depends only on std, tokio,
//! rustls, tokio-rustls, rcgen and x509-parser.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// PEM root of Pebble's own HTTPS certificate (trust it for the directory).
    pub ca_bundle: PathBuf,
    /// Port Pebble validates HTTP-01 on (berth's `--http-listen` port).
    pub http_port: u16,
    /// Port Pebble validates TLS-ALPN-01 on (berth's `--https-listen` port).
    pub tls_port: u16,
    management: String,
    challtestsrv_management: String,
    pebble: Option<Child>,
    challtestsrv: Child,
    root_of_https: CertificateDer<'static>,
    _dir: tempfile::TempDir,
}

impl Pebble {
    /// Starts challtestsrv and Pebble; returns once the directory answers.
    pub async fn start(http_port: u16, tls_port: u16) -> Pebble {
        Self::start_with_eab(http_port, tls_port, None).await
    }

    /// Like [`Pebble::start`], but accounts need external account binding
    /// with this (key id, base64url HMAC key).
    pub async fn start_with_eab(
        http_port: u16,
        tls_port: u16,
        eab: Option<(&str, &str)>,
    ) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let (root_pem, cert_pem, key_pem) = pebble_https_identity();
        let ca_bundle = dir.path().join("pebble-https-root.pem");
        std::fs::write(&ca_bundle, &root_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();

        let (listen, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv is installed (tests/run installs the pebble package)");

        let config = format!(
            r#"{{"pebble": {{
                "listenAddress": "127.0.0.1:{listen}",
                "managementListenAddress": "127.0.0.1:{management}",
                "certificate": "{cert}",
                "privateKey": "{key}",
                "httpPort": {http_port},
                "tlsPort": {tls_port},
                "ocspResponderURL": "",
                "externalAccountBindingRequired": {eab_required},
                "externalAccountMACKeys": {{{eab_keys}}}
            }}}}"#,
            eab_required = eab.is_some(),
            eab_keys = eab
                .map(|(kid, hmac)| format!(r#""{kid}": "{hmac}""#))
                .unwrap_or_default(),
            cert = dir.path().join("cert.pem").display(),
            key = dir.path().join("key.pem").display(),
        );
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config).unwrap();
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // Validate at once, never reject a good nonce, never reuse an
            // authorization: every order really validates, fast.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble is installed (tests/run installs the pebble package)");

        let root_of_https = CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap();
        let pebble = Pebble {
            directory: format!("https://127.0.0.1:{listen}/dir"),
            ca_bundle,
            http_port,
            tls_port,
            management: format!("127.0.0.1:{management}"),
            challtestsrv_management: format!("127.0.0.1:{dns_management}"),
            pebble: Some(pebble),
            challtestsrv,
            root_of_https,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = https_get(
                &format!("127.0.0.1:{listen}"),
                "localhost",
                "/dir",
                &pebble.root_of_https,
            )
            .await
            .is_ok_and(|r| r.status == 200);
            let dns_up = std::net::TcpStream::connect(&pebble.challtestsrv_management).is_ok();
            if up && dns_up {
                break;
            }
            assert!(Instant::now() < deadline, "pebble never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pebble
    }

    /// The root Pebble issues under (new for every Pebble run), as DER.
    pub async fn issuing_root(&self) -> CertificateDer<'static> {
        let response = https_get(
            &self.management,
            "localhost",
            "/roots/0",
            &self.root_of_https,
        )
        .await
        .expect("pebble's management interface answers");
        assert_eq!(response.status, 200, "GET /roots/0");
        CertificateDer::from_pem_slice(&response.body).expect("a PEM root")
    }

    /// Makes challtestsrv answer `ip` for `host`, e.g. an address nothing
    /// listens on, so that validations of `host` fail.
    pub async fn resolve_host_to(&self, host: &str, ip: &str) {
        let body = format!(r#"{{"host":"{host}","addresses":["{ip}"]}}"#);
        let status = plain_post(&self.challtestsrv_management, "/add-a", &body).await;
        assert_eq!(status, 200, "challtestsrv /add-a");
    }

    /// Stops Pebble (the CA becomes unreachable); challtestsrv keeps running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.challtestsrv.kill();
        let _ = self.challtestsrv.wait();
    }
}

/// A root CA and a `localhost`/127.0.0.1 certificate under it, for Pebble's
/// own HTTPS listener: (root PEM, cert PEM, key PEM).
fn pebble_https_identity() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "berth test pebble HTTPS root");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// A CA, and a leaf for `names` under it valid in the years `from` to `until`.
pub fn rcgen_cert(
    names: &[&str],
    from: i32,
    until: i32,
) -> (String, String, CertificateDer<'static>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, date_time_ymd};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.not_before = date_time_ymd(from, 1, 1);
    params.not_after = date_time_ymd(until, 1, 1);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let root = CertificateDer::from_pem_slice(ca_cert.pem().as_bytes()).unwrap();
    (cert.pem(), key.serialize_pem(), root)
}

/// What [`https_get`] saw.
pub struct HttpsResponse {
    pub status: u16,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The certificate chain the server presented, leaf first.
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

/// One HTTP/1.1 GET over TLS to `addr` with SNI `server_name`, trusting only
/// `root`. Fails on any TLS error (e.g. an untrusted or wrong certificate).
pub async fn https_get(
    addr: &str,
    server_name: &str,
    path: &str,
    root: &CertificateDer<'static>,
) -> Result<HttpsResponse, String> {
    https_request(addr, server_name, "GET", path, &[], "", root).await
}

impl HttpsResponse {
    /// The first value of a header (`name` in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Like [`https_get`], with any method, extra headers and a body.
pub async fn https_request(
    addr: &str,
    server_name: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    root: &CertificateDer<'static>,
) -> Result<HttpsResponse, String> {
    let mut store = rustls::RootCertStore::empty();
    store.add(root.clone()).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS handshake with {server_name}: {e}"))?;
    let peer_certificates = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {server_name}\r\n{extra}{length}Connection: close\r\n\r\n{body}"
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    // A peer that closes without close_notify still gave us the response.
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut raw)).await;
    let (status, headers, body) = parse_response(&raw)?;
    Ok(HttpsResponse {
        status,
        headers,
        body,
        peer_certificates,
    })
}

async fn plain_post(addr: &str, path: &str, body: &str) -> u16 {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw).await;
    parse_response(&raw).map(|(s, _, _)| s).unwrap_or(0)
}

type Headers = Vec<(String, String)>;

fn parse_response(raw: &[u8]) -> Result<(u16, Headers, Vec<u8>), String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..line_end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    out
}

/// The DNS names (subjectAltName) of a DER certificate.
pub fn served_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::*;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).expect("a certificate");
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_string());
            }
        }
    }
    names
}

/// The serial number of a DER certificate, hex (for "a new serial is served").
pub fn serial_of(cert: &CertificateDer<'_>) -> String {
    use x509_parser::prelude::*;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).expect("a certificate");
    parsed.raw_serial_as_string()
}
