//! Certificates as berth sees them: the facts shown to the user (names,
//! issuer, validity, serial) and the validation of an uploaded certificate +
//! key pair, which must be complete before anything is saved.

use base64::Engine as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;
use x509_parser::prelude::*;

use crate::tls::TlsError;

/// What the certificates page shows about a certificate (its leaf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// DNS names from subjectAltName, lowercase.
    pub names: Vec<String>,
    /// The issuer's common name (or the whole issuer DN when it has none).
    pub issuer: String,
    /// Serial number, hex with `:` separators, as browsers show it.
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// The DNS names (subjectAltName dNSName entries) of a certificate.
pub fn dns_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, TlsError> {
    let parsed = parse(cert)?;
    Ok(names_of(&parsed))
}

/// Facts about the leaf of a PEM chain.
pub fn facts_from_pem(chain_pem: &str) -> Result<CertFacts, TlsError> {
    let chain = parse_chain(chain_pem)?;
    facts(&chain[0])
}

pub fn facts(cert: &CertificateDer<'_>) -> Result<CertFacts, TlsError> {
    let parsed = parse(cert)?;
    let issuer = parsed
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| parsed.issuer().to_string());
    Ok(CertFacts {
        names: names_of(&parsed),
        issuer,
        serial: parsed.raw_serial_as_string(),
        not_before: parsed.validity().not_before.timestamp(),
        not_after: parsed.validity().not_after.timestamp(),
    })
}

/// Whether `names` (a certificate's DNS names) cover `domain`: an exact
/// match, or a wildcard one label up (`*.example.com` covers `a.example.com`).
pub fn covers(names: &[String], domain: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|name| {
        let name = name.to_ascii_lowercase();
        name == domain
            || name.strip_prefix("*.").is_some_and(|parent| {
                domain
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent)
            })
    })
}

/// A certificate + key pair that passed every check, ready to be saved and served.
pub struct ValidUpload {
    pub chain_pem: String,
    pub key_pem: String,
    pub facts: CertFacts,
    pub key: CertifiedKey,
}

impl std::fmt::Debug for ValidUpload {
    // The key is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidUpload")
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

/// Checks an uploaded certificate chain (PEM, leaf first) and private key
/// (PEM) for `domain` at time `now` (unix seconds): both parse, the key
/// belongs to the leaf, each certificate is signed by the next one, the leaf
/// names cover the domain, and it is valid now. The error names the field
/// (`certificate` or `key`) it belongs to.
pub fn validate_upload(
    domain: &str,
    chain_pem: &str,
    key_pem: &str,
    now: i64,
) -> Result<ValidUpload, TlsError> {
    let chain = parse_chain(chain_pem)?;
    let leaf = parse(&chain[0])?;
    let facts = facts(&chain[0])?;

    let (_, key) = crate::tls::certified_key_from_pem(chain_pem, key_pem)?;

    for (i, pair) in chain.windows(2).enumerate() {
        let child = parse(&pair[0])?;
        let parent = parse(&pair[1])?;
        let signed = child.issuer() == parent.subject()
            && child.verify_signature(Some(parent.public_key())).is_ok();
        if !signed {
            return Err(TlsError::invalid(
                "certificate",
                format!(
                    "the chain is out of order or incomplete: certificate {} ({}) is not signed by certificate {} ({}); paste the leaf first, then its intermediates",
                    i + 1,
                    child.subject(),
                    i + 2,
                    parent.subject()
                ),
            ));
        }
    }

    if facts.not_after <= now {
        return Err(TlsError::invalid(
            "certificate",
            format!("the certificate expired on {}", leaf.validity().not_after),
        ));
    }
    if facts.not_before > now {
        return Err(TlsError::invalid(
            "certificate",
            format!(
                "the certificate is not valid before {}",
                leaf.validity().not_before
            ),
        ));
    }
    if !covers(&facts.names, domain) {
        let listed = if facts.names.is_empty() {
            "no DNS names".to_owned()
        } else {
            facts.names.join(", ")
        };
        return Err(TlsError::invalid(
            "certificate",
            format!("the certificate does not cover {domain}: it is for {listed}"),
        ));
    }

    Ok(ValidUpload {
        chain_pem: normalize_pem_chain(&chain),
        key_pem: key_pem.trim().to_owned() + "\n",
        facts,
        key,
    })
}

/// Every certificate in a PEM text, leaf first; at least one.
pub fn parse_chain(chain_pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::invalid("certificate", format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::invalid(
            "certificate",
            "no certificate found (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(chain)
}

fn parse<'a>(cert: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, TlsError> {
    X509Certificate::from_der(cert.as_ref())
        .map(|(_, parsed)| parsed)
        .map_err(|e| TlsError::invalid("certificate", format!("cannot read the certificate: {e}")))
}

fn names_of(parsed: &X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    names
}

fn normalize_pem_chain(chain: &[CertificateDer<'_>]) -> String {
    chain
        .iter()
        .map(|der| pem_encode("CERTIFICATE", der.as_ref()))
        .collect()
}

/// PEM text for DER bytes (64-column base64).
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        let names = vec!["*.example.com".to_owned()];
        assert!(covers(&names, "a.example.com"));
        assert!(!covers(&names, "example.com"));
        assert!(!covers(&names, "a.b.example.com"));
    }

    #[test]
    fn pem_encoding_round_trips() {
        let der = b"some bytes that are not a certificate at all, 50 long";
        let pem = pem_encode("CERTIFICATE", der);
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), der);
    }
}
