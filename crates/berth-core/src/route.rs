//! Domains the edge routes: to an app's container or a static directory.

use std::path::PathBuf;

use crate::{AppId, AppName, DomainId, DomainName, PathPrefix, ProjectName};

/// How a domain gets its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Obtained (and renewed) from the ACME CA.
    Acme,
    /// A certificate the user uploaded.
    Uploaded,
    /// Plain HTTP only.
    None,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Acme => "acme",
            TlsMode::Uploaded => "uploaded",
            TlsMode::None => "none",
        }
    }

    pub fn parse(value: &str) -> Option<TlsMode> {
        match value {
            "acme" => Some(TlsMode::Acme),
            "uploaded" => Some(TlsMode::Uploaded),
            "none" => Some(TlsMode::None),
            _ => None,
        }
    }
}

/// Where a domain's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainTarget {
    /// The app's current container.
    App,
    /// Files from a directory on the server.
    Static { dir: PathBuf, spa_fallback: bool },
}

/// A domain as the user asked for it.
#[derive(Debug, Clone)]
pub struct NewDomain {
    pub host: DomainName,
    pub path_prefix: PathPrefix,
    pub strip_prefix: bool,
    pub target: DomainTarget,
    pub tls_mode: TlsMode,
    pub redirect_https: bool,
    pub hsts: bool,
}

/// A domain routed to an app or a static site.
#[derive(Debug, Clone)]
pub struct Domain {
    pub id: DomainId,
    pub app_id: AppId,
    pub project: ProjectName,
    pub app: AppName,
    pub host: DomainName,
    pub path_prefix: PathPrefix,
    pub strip_prefix: bool,
    pub target: DomainTarget,
    pub tls_mode: TlsMode,
    pub redirect_https: bool,
    pub hsts: bool,
    pub created_at: i64,
}
