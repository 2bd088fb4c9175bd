use std::fmt;

/// What an app is doing, as berth last saw it (Docker events keep it current).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppStatus {
    /// Recorded, waiting for its first container.
    Pending,
    Pulling,
    Starting,
    Running,
    Restarting,
    /// Stopped on purpose.
    Stopped,
    /// Exited by itself while it should be running.
    Crashed,
    /// berth could not get it running (pull or create failed).
    Failed,
}

impl AppStatus {
    pub const ALL: [AppStatus; 8] = [
        AppStatus::Pending,
        AppStatus::Pulling,
        AppStatus::Starting,
        AppStatus::Running,
        AppStatus::Restarting,
        AppStatus::Stopped,
        AppStatus::Crashed,
        AppStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::Pending => "pending",
            AppStatus::Pulling => "pulling",
            AppStatus::Starting => "starting",
            AppStatus::Running => "running",
            AppStatus::Restarting => "restarting",
            AppStatus::Stopped => "stopped",
            AppStatus::Crashed => "crashed",
            AppStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Still on its way somewhere: pages showing it refresh themselves.
    pub fn is_transitional(self) -> bool {
        matches!(
            self,
            AppStatus::Pending | AppStatus::Pulling | AppStatus::Starting | AppStatus::Restarting
        )
    }
}

impl fmt::Display for AppStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_parses_back() {
        for st in AppStatus::ALL {
            assert_eq!(AppStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(AppStatus::parse("bogus"), None);
    }
}
