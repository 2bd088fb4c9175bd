//! The TLS side of the edge: which certificate a handshake gets (SNI), and the
//! answers to ACME challenges (HTTP-01 tokens, TLS-ALPN-01 certificates).
//!
//! The HTTPS listener builds its acceptor from [`server_config`] once; the
//! certificates behind it change at run time through [`CertResolver::install`]
//! (an atomic swap, so a handshake sees either the old or the new set, never a
//! half-updated one). The HTTP listener answers
//! `GET /.well-known/acme-challenge/{token}` from [`Http01Challenges::answer`].
//!
//! A connection whose negotiated ALPN is [`ACME_TLS_ALPN`] was a TLS-ALPN-01
//! validation: the handshake itself was the answer, so the listener closes it
//! without serving HTTP.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use rustls::crypto::ring;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// ALPN protocol id of TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Errors of the TLS half of the edge: certificates, keys and ACME.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key the user uploaded is not acceptable. `field` is
    /// the form field the message belongs next to (`certificate` or `key`).
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The CA answered with a problem document (RFC 8555 section 6.7).
    #[error("the CA refused: {detail}")]
    Ca {
        /// `urn:ietf:params:acme:error:...`, when the CA gave one.
        kind: Option<String>,
        detail: String,
        /// The CA said "too many requests" (`rateLimited`).
        rate_limited: bool,
    },
    /// Any other ACME failure (network, unexpected answer, timeout).
    #[error("{0}")]
    Acme(String),
    /// Reading or writing key/certificate files in the data dir.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Making a key or certificate failed (rustls/rcgen).
    #[error("crypto: {0}")]
    Crypto(String),
    /// No such certificate.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The database failed (its message, for the logs).
    #[error("store: {0}")]
    Store(String),
}

impl TlsError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        TlsError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// The crypto provider berth uses everywhere (ring; no aws-lc in the build).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Certificates by server name, and TLS-ALPN-01 challenge certificates.
///
/// Lookup order for a ClientHello: when the client offers only
/// `acme-tls/1`, the challenge certificate for the SNI name (or nothing);
/// otherwise the certificate installed for the exact name, then the one for
/// the wildcard `*.parent`. Names are compared in lowercase.
pub struct CertResolver {
    by_name: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
    challenges: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
}

impl Default for CertResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = self.by_name.load().keys().cloned().collect();
        names.sort();
        f.debug_struct("CertResolver")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl CertResolver {
    pub fn new() -> Self {
        Self {
            by_name: ArcSwap::from_pointee(HashMap::new()),
            challenges: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// Whether a handshake for `host` would get a certificate (exact name or
    /// a wildcard covering it). The HTTP listener uses this to decide whether
    /// redirecting to HTTPS can work.
    pub fn has_certificate(&self, host: &str) -> bool {
        self.lookup(host).is_some()
    }

    /// The certificate a handshake for `host` gets, if any.
    pub fn lookup(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let host = normalize(host);
        let map = self.by_name.load();
        if let Some(key) = map.get(&host) {
            return Some(key.clone());
        }
        // `*.example.com` covers exactly one more label, like browsers do.
        let (_, parent) = host.split_once('.')?;
        map.get(&format!("*.{parent}")).cloned()
    }

    /// Installs `key` for each of `names`, replacing what was there for
    /// those names, in one atomic swap.
    pub fn install(&self, names: &[String], key: Arc<CertifiedKey>) {
        self.by_name.rcu(|map| {
            let mut map = HashMap::clone(map);
            for name in names {
                map.insert(normalize(name), key.clone());
            }
            map
        });
    }

    /// Parses a PEM chain (leaf first) and a PEM private key, and installs
    /// them for the DNS names the leaf certificate lists. Returns the names.
    pub fn install_pem(&self, chain_pem: &str, key_pem: &str) -> Result<Vec<String>, TlsError> {
        let (names, key) = certified_key_from_pem(chain_pem, key_pem)?;
        self.install(&names, Arc::new(key));
        Ok(names)
    }

    /// Removes the certificates of `names` (the names of a deleted
    /// certificate). Only entries still pointing at `key` when given, so a
    /// newer certificate installed for the same name is kept.
    pub fn remove(&self, names: &[String], key: Option<&Arc<CertifiedKey>>) {
        self.by_name.rcu(|map| {
            let mut map = HashMap::clone(map);
            for name in names {
                let name = normalize(name);
                let same = match (key, map.get(&name)) {
                    (Some(k), Some(current)) => Arc::ptr_eq(k, current),
                    (None, Some(_)) => true,
                    _ => false,
                };
                if same {
                    map.remove(&name);
                }
            }
            map
        });
    }

    /// Starts answering TLS-ALPN-01 for `domain` with a self-signed
    /// certificate carrying the acmeIdentifier extension (RFC 8737).
    /// `key_authorization_digest` is SHA-256 of the key authorization.
    pub fn set_alpn_challenge(
        &self,
        domain: &str,
        key_authorization_digest: &[u8],
    ) -> Result<(), TlsError> {
        let key = alpn_challenge_key(domain, key_authorization_digest)?;
        let domain = normalize(domain);
        self.challenges.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(domain.clone(), key.clone());
            map
        });
        Ok(())
    }

    /// Stops answering TLS-ALPN-01 for `domain`.
    pub fn clear_alpn_challenge(&self, domain: &str) {
        let domain = normalize(domain);
        self.challenges.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(&domain);
            map
        });
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_owned();
        let acme = hello
            .alpn()
            .map(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
            .unwrap_or(false);
        if acme {
            // Never fall back to the real certificate: a validation must see
            // the challenge certificate or fail.
            return self.challenges.load().get(&normalize(&name)).cloned();
        }
        self.lookup(&name)
    }
}

/// The rustls configuration of the HTTPS listener: certificates from
/// `resolver`, ALPN `h2`, `http/1.1` and `acme-tls/1` (chosen only when the
/// client offers it, which only ACME validators do).
pub fn server_config(resolver: Arc<CertResolver>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Arc::new(config)
}

/// Pending HTTP-01 challenges: token → key authorization.
#[derive(Default)]
pub struct Http01Challenges {
    tokens: RwLock<HashMap<String, String>>,
}

impl fmt::Debug for Http01Challenges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.tokens.read().map(|t| t.len()).unwrap_or(0);
        f.debug_struct("Http01Challenges")
            .field("pending", &count)
            .finish()
    }
}

impl Http01Challenges {
    pub fn new() -> Self {
        Self::default()
    }

    /// The body to answer `GET /.well-known/acme-challenge/{token}` with
    /// (`text/plain`), or `None` for an unknown token (answer 404).
    pub fn answer(&self, token: &str) -> Option<String> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    pub fn insert(&self, token: impl Into<String>, key_authorization: impl Into<String>) {
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.into(), key_authorization.into());
    }

    pub fn remove(&self, token: &str) {
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Builds a rustls key from PEM text; names are the leaf's DNS SANs.
pub(crate) fn certified_key_from_pem(
    chain_pem: &str,
    key_pem: &str,
) -> Result<(Vec<String>, CertifiedKey), TlsError> {
    let chain = crate::certs::parse_chain(chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| {
        TlsError::invalid(
            "key",
            "no private key found (expected -----BEGIN PRIVATE KEY----- or an RSA/EC key)",
        )
    })?;
    let names = crate::certs::dns_names(&chain[0])?;
    let key = CertifiedKey::from_der(chain, key, &ring::default_provider()).map_err(|e| {
        TlsError::invalid(
            "key",
            format!("the private key does not fit the certificate: {e}"),
        )
    })?;
    Ok((names, key))
}

fn alpn_challenge_key(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .map_err(|e| TlsError::Crypto(e.to_string()))?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Crypto(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Crypto(e.to_string()))?;
    let der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| TlsError::Crypto(e.to_string()))?;
    // Not `from_der`: its key check parses the certificate with webpki, which
    // rejects the critical acmeIdentifier extension this certificate must carry.
    let signing = ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Crypto(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn keys_and_challenge_answers_never_show_in_debug_output() {
        let resolver = CertResolver::new();
        let (cert, key) = self_signed(&["shop.example.com"]);
        resolver.install_pem(&cert, &key).unwrap();
        let shown = format!("{resolver:?} {resolver:#?}");
        assert!(shown.contains("shop.example.com"), "{shown}");
        let key_body = key.lines().nth(1).unwrap();
        assert!(
            !shown.contains("PRIVATE") && !shown.contains(key_body),
            "{shown}"
        );

        let challenges = Http01Challenges::new();
        challenges.insert("token-abc", "token-abc.thumbprint-s3cr3t");
        let shown = format!("{challenges:?} {challenges:#?}");
        assert!(
            !shown.contains("token-abc") && !shown.contains("thumbprint"),
            "{shown}"
        );
        assert!(shown.contains("pending: 1"), "{shown}");
    }

    #[test]
    fn an_exact_name_wins_over_a_wildcard_which_covers_one_label() {
        let resolver = CertResolver::new();
        let (cert, key) = self_signed(&["*.example.com"]);
        resolver.install_pem(&cert, &key).unwrap();
        let (cert, key) = self_signed(&["shop.example.com"]);
        resolver.install_pem(&cert, &key).unwrap();

        let wildcard = resolver.lookup("blog.example.com").unwrap();
        let exact = resolver.lookup("SHOP.example.com.").unwrap();
        assert!(!Arc::ptr_eq(&wildcard, &exact));
        assert!(resolver.has_certificate("x.example.com"));
        assert!(!resolver.has_certificate("a.b.example.com"));
        assert!(!resolver.has_certificate("example.com"));
    }

    #[test]
    fn removing_an_old_key_keeps_a_newer_one_for_the_same_name() {
        let resolver = CertResolver::new();
        let (cert, key) = self_signed(&["shop.example.com"]);
        resolver.install_pem(&cert, &key).unwrap();
        let old = resolver.lookup("shop.example.com").unwrap();
        let (cert, key) = self_signed(&["shop.example.com"]);
        resolver.install_pem(&cert, &key).unwrap();
        let new = resolver.lookup("shop.example.com").unwrap();
        // Two distinct certificates, or the checks below prove nothing.
        assert_ne!(old.cert[0].as_ref(), new.cert[0].as_ref());

        resolver.remove(&["shop.example.com".to_owned()], Some(&old));
        // What remains is the new certificate, not the old one and not nothing.
        let kept = resolver
            .lookup("shop.example.com")
            .expect("the newer certificate was removed with the old key");
        assert!(Arc::ptr_eq(&kept, &new));
        assert_eq!(kept.cert[0].as_ref(), new.cert[0].as_ref());
        assert_ne!(kept.cert[0].as_ref(), old.cert[0].as_ref());

        // The key that is current is removed when named.
        resolver.remove(&["shop.example.com".to_owned()], Some(&new));
        assert!(!resolver.has_certificate("shop.example.com"));
        assert!(resolver.lookup("shop.example.com").is_none());

        resolver.install(&["shop.example.com".to_owned()], new.clone());
        resolver.remove(&["shop.example.com".to_owned()], None);
        assert!(!resolver.has_certificate("shop.example.com"));
    }

    #[test]
    fn a_challenge_certificate_is_made_and_cleared() {
        let resolver = CertResolver::new();
        resolver
            .set_alpn_challenge("shop.example.com", &[7u8; 32])
            .unwrap();
        assert!(resolver.challenges.load().contains_key("shop.example.com"));
        // A challenge certificate is never served to ordinary clients.
        assert!(!resolver.has_certificate("shop.example.com"));
        resolver.clear_alpn_challenge("shop.example.com");
        assert!(resolver.challenges.load().is_empty());
    }

    #[test]
    fn http_01_answers_only_known_tokens() {
        let challenges = Http01Challenges::new();
        challenges.insert("token", "token.thumbprint");
        assert_eq!(
            challenges.answer("token").as_deref(),
            Some("token.thumbprint")
        );
        assert_eq!(challenges.answer("other"), None);
        challenges.remove("token");
        assert_eq!(challenges.answer("token"), None);
    }
}
