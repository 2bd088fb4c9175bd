//! TLS certificates of the edge, ACME accounts and the ACME settings.

/// Where a certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Acme,
    Uploaded,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Acme => "acme",
            Source::Uploaded => "uploaded",
        }
    }

    pub fn parse(value: &str) -> Option<Source> {
        match value {
            "acme" => Some(Source::Acme),
            "uploaded" => Some(Source::Uploaded),
            _ => None,
        }
    }
}

/// A certificate the edge serves (its files' paths; keys never enter the database).
#[derive(Debug, Clone)]
pub struct Certificate {
    pub id: i64,
    pub domain: String,
    pub source: Source,
    pub names: Vec<String>,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub cert_path: Option<String>,
    pub key_path: Option<String>,
    pub account_id: Option<i64>,
    pub ari_start: Option<i64>,
    pub ari_end: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub failures: i64,
    pub last_error: Option<String>,
    pub rate_limited: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What berth learned from a certificate it just obtained or accepted.
#[derive(Debug, Clone)]
pub struct Issued {
    pub names: Vec<String>,
    pub issuer: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub cert_path: String,
    pub key_path: String,
    pub account_id: Option<i64>,
    pub next_attempt_at: Option<i64>,
}

/// An account at an ACME CA.
#[derive(Debug, Clone)]
pub struct AcmeAccount {
    pub id: i64,
    pub directory_url: String,
    pub email: String,
    pub account_url: String,
    pub credentials_path: String,
}

/// ACME settings as stored (the EAB HMAC key is a file, not a setting).
#[derive(Debug, Clone, Default)]
pub struct AcmeSettings {
    pub email: Option<String>,
    pub directory_url: Option<String>,
    pub eab_key_id: Option<String>,
    pub challenge: Option<String>,
}
