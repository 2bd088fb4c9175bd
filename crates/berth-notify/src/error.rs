/// Why a channel URL was refused. The message names the part that is wrong
/// and never repeats a token or password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("a channel URL looks like scheme://…; this one has no \"://\"")]
    NoScheme,
    #[error(
        "unknown channel scheme {0:?}: use json, jsons, mailto, mailtos, discord, slack, tgram, ntfy, ntfys, gotify, gotifys or pover"
    )]
    UnknownScheme(String),
    #[error("{scheme}:// needs {what}; expected {form}")]
    Missing {
        scheme: &'static str,
        what: &'static str,
        form: &'static str,
    },
    #[error("{scheme}://: {problem}")]
    Invalid {
        scheme: &'static str,
        problem: String,
    },
}

/// Why a message was not delivered. `Rejected` carries the server's own
/// answer (status and the start of its body) so the admin sees what the
/// service said; no variant contains a channel's token or password.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(
        "{host} resolves to {addr}, a loopback, private, link-local or unique-local address; an admin can allow private targets"
    )]
    PrivateAddress {
        host: String,
        addr: std::net::IpAddr,
    },
    #[error("could not resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("the server answered {status}: {body}")]
    Rejected {
        status: u16,
        body: String,
        /// The server's `Retry-After` in seconds, when it sent one (429, 503).
        retry_after: Option<std::time::Duration>,
    },
    #[error("connecting to or talking with {host} failed: {reason}")]
    Transport { host: String, reason: String },
    #[error("no answer from {host} within {timeout:?}")]
    TimedOut {
        host: String,
        timeout: std::time::Duration,
    },
    #[error("sending the mail failed: {answer}")]
    Smtp {
        answer: String,
        /// A 5xx answer: the same mail will be refused again.
        permanent: bool,
    },
    #[error("the e-mail could not be built: {0}")]
    BadEmail(String),
}

impl SendError {
    /// Whether sending the same message again later can succeed, for the
    /// job runner's retry policy: time-outs, connection failures, 5xx, 408
    /// and 429 can; a refused address, a 4xx or a permanent SMTP answer
    /// cannot without the admin changing something.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::PrivateAddress { .. } | Self::BadEmail(_) => false,
            Self::Resolve { .. } | Self::Transport { .. } | Self::TimedOut { .. } => true,
            Self::Rejected { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            Self::Smtp { permanent, .. } => !permanent,
        }
    }

    /// How long the server asked to wait before the next try, if it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Rejected { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
