use serde::{Deserialize, Serialize};

/// What happened. The callers (deploys, backups, drills, alerts,
/// certificates) pick the kind; this crate only formats and delivers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    DeployFailed,
    DeploySucceeded,
    BackupFailed,
    BackupSucceeded,
    DrillFailed,
    DrillSucceeded,
    AlertFiring,
    AlertResolved,
    CertificateFailed,
    CertificateRenewed,
    /// The "Test" button of a channel.
    Test,
}

impl EventKind {
    /// The dotted name sent to webhooks (`backup.failed`), stable for receivers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeployFailed => "deploy.failed",
            Self::DeploySucceeded => "deploy.succeeded",
            Self::BackupFailed => "backup.failed",
            Self::BackupSucceeded => "backup.succeeded",
            Self::DrillFailed => "drill.failed",
            Self::DrillSucceeded => "drill.succeeded",
            Self::AlertFiring => "alert.firing",
            Self::AlertResolved => "alert.resolved",
            Self::CertificateFailed => "certificate.failed",
            Self::CertificateRenewed => "certificate.renewed",
            Self::Test => "test",
        }
    }

    /// Failures are sent by default, successes only when a user opts in
    /// (issue 12). The subscription itself is decided by the caller.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Self::DeployFailed
                | Self::BackupFailed
                | Self::DrillFailed
                | Self::AlertFiring
                | Self::CertificateFailed
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Success,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Success => "success",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// One notification, the same for every channel; each channel formats it for
/// its service. Serializable so a job row can carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub event: EventKind,
    pub title: String,
    pub body: String,
    pub severity: Severity,
    /// Ordered name/value pairs (database, destination, error…), shown as a
    /// table or list where the service has one.
    #[serde(default)]
    pub fields: Vec<(String, String)>,
    /// Identifies "the same" notification for the job runner's dedup and for
    /// receivers (for example `alert:disk:/`); sent as-is to webhooks.
    #[serde(default)]
    pub dedup_key: Option<String>,
}

impl Message {
    pub fn new(
        event: EventKind,
        severity: Severity,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            event,
            title: title.into(),
            body: body.into(),
            severity,
            fields: Vec::new(),
            dedup_key: None,
        }
    }

    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// What the "Test" button sends.
    pub fn test() -> Self {
        Self::new(
            EventKind::Test,
            Severity::Info,
            "berth test notification",
            "If you can read this, berth can reach this channel.",
        )
    }

    /// Body and fields as plain text, for services without structure
    /// (e-mail, Telegram, ntfy, Gotify, Pushover).
    pub fn plain_text(&self) -> String {
        let mut text = self.body.clone();
        if !self.fields.is_empty() {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            for (name, value) in &self.fields {
                text.push_str(name);
                text.push_str(": ");
                text.push_str(value);
                text.push('\n');
            }
            text.pop();
        }
        text
    }
}

/// Cut `text` to at most `max` characters, marking the cut with "…", so a
/// long error never makes a service reject the whole message.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_text_and_marks_a_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ééééé", 3).chars().count(), 3);
    }

    #[test]
    fn plain_text_lists_fields_after_the_body() {
        let m = Message::new(
            EventKind::BackupFailed,
            Severity::Critical,
            "t",
            "dump failed",
        )
        .field("database", "shop")
        .field("destination", "s3");
        assert_eq!(
            m.plain_text(),
            "dump failed\n\ndatabase: shop\ndestination: s3"
        );
    }
}
