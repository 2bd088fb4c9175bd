//! Deployments: numbered launches of an app, and how an app is deployed.

use crate::{AppId, DeployStrategy, DeploymentId};

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Queued => "queued",
            DeploymentStatus::Running => "running",
            DeploymentStatus::Succeeded => "succeeded",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DeploymentStatus::Queued,
            DeploymentStatus::Running,
            DeploymentStatus::Succeeded,
            DeploymentStatus::Failed,
            DeploymentStatus::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Queued or running: not finished yet.
    pub fn is_active(self) -> bool {
        matches!(self, DeploymentStatus::Queued | DeploymentStatus::Running)
    }
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: DeploymentId,
    pub app_id: AppId,
    pub number: i64,
    pub status: DeploymentStatus,
    pub trigger: String,
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub commit_sha: Option<String>,
    pub rollback_of: Option<i64>,
    pub container_id: Option<String>,
    pub reason: Option<String>,
    pub built: bool,
    pub pruned: bool,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// How an app is deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploySettings {
    pub source: Source,
    pub health: HealthCheck,
    pub drain_secs: u32,
    pub stop_timeout_secs: u32,
    pub memory_mb: Option<u32>,
    pub cpu_millis: Option<u32>,
    pub restart_policy: RestartPolicy,
    pub keep_images: u32,
    /// `None`: berth chooses (see [`DeployStrategy::choose`]).
    pub strategy: Option<DeployStrategy>,
    /// How long the edge holds the app's requests during a recreate switch.
    pub hold_secs: u32,
    /// How long a clone and build may take before both are stopped
    /// ([`BUILD_TIMEOUT_MINS`] bounds it).
    pub build_timeout_mins: u32,
}

/// The bounds of [`DeploySettings::build_timeout_mins`], in minutes.
pub const BUILD_TIMEOUT_MINS: std::ops::RangeInclusive<u32> = 1..=240;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The app's image reference.
    Image,
    Git(GitSource),
}

/// `Debug` masks credentials in the URL (`https://user:token@host/…`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct GitSource {
    /// `https://…`, `ssh://…`, `git@host:path`, `file://…` or a local path.
    pub url: String,
    pub branch: String,
    /// Build context inside the repository; empty for its root.
    pub subdir: String,
    /// Dockerfile path inside the context; empty for `Dockerfile`.
    pub dockerfile: String,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSource")
            .field("url", &redact_url_credentials(&self.url))
            .field("branch", &self.branch)
            .field("subdir", &self.subdir)
            .field("dockerfile", &self.dockerfile)
            .finish()
    }
}

/// The URL with whatever stands between `://` and `@` in its authority (a
/// user name, a password, an access token) replaced by `***`, for logs and
/// `Debug`. scp-like `git@host:path` has only a user name and is kept.
pub fn redact_url_credentials(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.into();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // The last `@`: a password may itself contain one, percent-encoded or not.
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end], &rest[at..]).into(),
        None => url.into(),
    }
}

/// Whether `url` carries `***` where [`redact_url_credentials`] put it: a
/// URL as a page or the API showed it, not one with credentials typed in.
pub fn url_has_masked_credentials(url: &str) -> bool {
    url.find("://")
        .is_some_and(|i| url[i + 3..].starts_with("***@"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// An HTTP path to GET on the new container; `None` uses the image's
    /// HEALTHCHECK, or else "still running after `start_secs`".
    pub path: Option<String>,
    pub expected_status: u16,
    pub interval_ms: u32,
    pub timeout_ms: u32,
    pub retries: u32,
    pub start_secs: u32,
}

impl HealthCheck {
    /// Why `path` cannot be the request target of the HTTP check, if it
    /// cannot: it is written into a request line, where a CR or LF would
    /// start a second request.
    pub fn path_problem(path: &str) -> Option<&'static str> {
        if !path.starts_with('/') {
            Some("must start with '/'")
        } else if path.chars().any(|c| c.is_control() || c.is_whitespace()) {
            Some("may not contain spaces or control characters such as CR or LF")
        } else {
            None
        }
    }
}

impl Default for DeploySettings {
    fn default() -> Self {
        DeploySettings {
            source: Source::Image,
            health: HealthCheck {
                path: None,
                expected_status: 200,
                interval_ms: 1000,
                timeout_ms: 2000,
                retries: 30,
                start_secs: 1,
            },
            drain_secs: 2,
            stop_timeout_secs: 10,
            memory_mb: None,
            cpu_millis: None,
            restart_policy: RestartPolicy::UnlessStopped,
            keep_images: 5,
            strategy: None,
            hold_secs: 10,
            build_timeout_mins: 30,
        }
    }
}

/// What Docker does when the app's container exits.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart (Docker's default).
    #[default]
    No,
    /// Restart unless stopped on purpose, including after a daemon restart
    /// (berth's default for apps).
    UnlessStopped,
    /// Restart after a non-zero exit, without limit.
    OnFailure,
    /// Always restart.
    Always,
}

impl RestartPolicy {
    pub const ALL: [RestartPolicy; 4] = [
        RestartPolicy::No,
        RestartPolicy::UnlessStopped,
        RestartPolicy::OnFailure,
        RestartPolicy::Always,
    ];

    /// Docker's name for the policy (`no`, `unless-stopped`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }

    /// Parses Docker's name for a policy.
    pub fn parse(s: &str) -> Option<RestartPolicy> {
        RestartPolicy::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_git_url_never_show_in_debug_output() {
        let source = Source::Git(GitSource {
            url: "https://deploy:ghp_s3cr3t@github.com/o/r.git".to_owned(),
            branch: "main".to_owned(),
            ..GitSource::default()
        });
        let shown = format!("{source:?} {source:#?}");
        assert!(
            !shown.contains("ghp_s3cr3t") && !shown.contains("deploy:"),
            "{shown}"
        );
        assert!(shown.contains("https://***@github.com/o/r.git"), "{shown}");
        assert!(shown.contains("main"), "{shown}");
    }

    #[test]
    fn only_the_user_info_of_a_url_is_masked() {
        for (url, shown) in [
            ("https://tok@host/r.git", "https://***@host/r.git"),
            ("https://u:p@ss@host:8443/r", "https://***@host:8443/r"),
            ("ssh://git@host/r.git", "ssh://***@host/r.git"),
            ("https://host/r.git?ref=a@b", "https://host/r.git?ref=a@b"),
            ("https://host/team@x/r.git", "https://host/team@x/r.git"),
            ("git@host:o/r.git", "git@host:o/r.git"),
            ("/srv/repo", "/srv/repo"),
        ] {
            assert_eq!(redact_url_credentials(url), shown, "{url}");
        }
    }

    #[test]
    fn a_health_path_is_one_request_target() {
        assert_eq!(HealthCheck::path_problem("/healthz?full=1"), None);
        assert!(HealthCheck::path_problem("healthz").is_some());
        assert!(HealthCheck::path_problem("/a\r\nHost: evil").is_some());
        assert!(HealthCheck::path_problem("/a b").is_some());
    }

    #[test]
    fn restart_policies_read_back_as_written_in_text_and_json() {
        for p in RestartPolicy::ALL {
            assert_eq!(RestartPolicy::parse(p.as_str()), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert_eq!(RestartPolicy::parse("sometimes"), None);
    }
}
