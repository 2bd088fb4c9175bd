//! The crate's one error enum, and the single place bollard errors are mapped.

use std::error::Error as StdError;
use std::io;

/// Why the engine could not be reached; the text after "cannot reach … at {target}: ".
pub(crate) const REASON_NO_SOCKET: &str = "the socket does not exist";
pub(crate) const REASON_PERMISSION: &str = "permission denied";
pub(crate) const REASON_REFUSED: &str = "connection refused";
pub(crate) const REASON_TIMEOUT: &str = "no answer in time";

/// Everything that can go wrong talking to Docker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// The engine is not there: the socket is missing, the connection was
    /// refused or timed out, or the user may not open the socket.
    #[error("cannot reach the Docker engine at {target}: {reason}")]
    Unreachable {
        /// What berth tried, e.g. `unix:///var/run/docker.sock`.
        target: String,
        /// Short reason, e.g. `connection refused`.
        reason: String,
    },
    /// The daemon answered 404 (no such container, image, network…).
    #[error("{0}")]
    NotFound(String),
    /// The daemon answered 409 (name in use, container running…).
    #[error("{0}")]
    Conflict(String),
    /// Any other error the daemon reported, with its own message. `status` is
    /// the HTTP status, or 500 for an error reported inside a progress stream
    /// (pull, build), where the HTTP status was already 200.
    #[error("the Docker engine reported an error ({status}): {message}")]
    Daemon {
        /// HTTP status of the answer.
        status: u16,
        /// The daemon's own message.
        message: String,
    },
    /// `--docker-host` / `DOCKER_HOST` could not be understood.
    #[error(
        "invalid Docker host {0:?}: use unix:///path/to/docker.sock, /path/to/docker.sock or tcp://host:port"
    )]
    InvalidHost(String),
    /// Anything else (an answer berth could not decode…).
    #[error("{0}")]
    Other(String),
}

impl DockerError {
    /// True when the engine could not be reached at all (as opposed to the
    /// engine refusing a request).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DockerError::Unreachable { .. })
    }

    /// True for [`DockerError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, DockerError::NotFound(_))
    }

    /// How the user can fix it, when berth knows.
    pub fn hint(&self) -> Option<String> {
        match self {
            DockerError::Unreachable { reason, .. } if reason == REASON_PERMISSION => Some(
                "Run berth as root or as a user in the docker group \
                 (sudo usermod -aG docker $USER, then log in again), \
                 or point berth at another engine with --docker-host / DOCKER_HOST"
                    .to_owned(),
            ),
            DockerError::Unreachable { .. } => Some(
                "Start Docker (systemctl start docker) or point berth at it \
                 with --docker-host / DOCKER_HOST"
                    .to_owned(),
            ),
            DockerError::InvalidHost(_) => Some(
                "Set --docker-host / DOCKER_HOST to unix:///var/run/docker.sock, \
                 a socket path, or tcp://host:port"
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// Maps a bollard error; `target` is what the client was talking to.
    pub(crate) fn from_bollard(target: &str, err: bollard::errors::Error) -> Self {
        use bollard::errors::Error as B;
        let unreachable = |reason: String| DockerError::Unreachable {
            target: target.to_owned(),
            reason,
        };
        match err {
            B::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                404 => DockerError::NotFound(message),
                409 => DockerError::Conflict(message),
                status => DockerError::Daemon { status, message },
            },
            B::DockerStreamError { error } => DockerError::Daemon {
                status: 500,
                message: error,
            },
            B::DockerContainerWaitError { error, .. } => DockerError::Daemon {
                status: 500,
                message: error,
            },
            B::SocketNotFoundError(_) => unreachable(REASON_NO_SOCKET.to_owned()),
            B::RequestTimeoutError => unreachable(REASON_TIMEOUT.to_owned()),
            // `IOError` is `#[error(transparent)]`: look at the io::Error itself.
            B::IOError { err } => match io_reason(&err) {
                Some(reason) => unreachable(reason),
                None => DockerError::Other(err.to_string()),
            },
            // Transport failures: the connection could not be made or broke.
            ref e @ (B::HyperLegacyError { .. } | B::HyperResponseError { .. }) => {
                unreachable(io_reason(e).unwrap_or_else(|| innermost(e)))
            }
            other => DockerError::Other(other.to_string()),
        }
    }

    /// An `io::Error` from talking to the engine ourselves.
    pub(crate) fn from_io(target: &str, err: &io::Error) -> Self {
        DockerError::Unreachable {
            target: target.to_owned(),
            reason: io_kind_reason(err).unwrap_or_else(|| err.to_string()),
        }
    }
}

/// The reason for the first I/O error in the chain that says the engine is not reachable.
fn io_reason(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(reason) = io_kind_reason(io)
        {
            return Some(reason);
        }
        cur = e.source();
    }
    None
}

fn io_kind_reason(io: &io::Error) -> Option<String> {
    use io::ErrorKind as K;
    match io.kind() {
        K::NotFound => Some(REASON_NO_SOCKET.to_owned()),
        K::PermissionDenied => Some(REASON_PERMISSION.to_owned()),
        K::ConnectionRefused => Some(REASON_REFUSED.to_owned()),
        K::TimedOut => Some(REASON_TIMEOUT.to_owned()),
        K::ConnectionReset
        | K::ConnectionAborted
        | K::BrokenPipe
        | K::UnexpectedEof
        | K::NotConnected
        | K::AddrNotAvailable
        | K::HostUnreachable
        | K::NetworkUnreachable => Some(io.to_string()),
        _ => None,
    }
}

/// The most specific message in an error chain ("dns error: …" rather than "client error (Connect)").
fn innermost(err: &(dyn StdError + 'static)) -> String {
    let mut last = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_variants() {
        let server = |status_code| bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: "msg".to_owned(),
        };
        assert_eq!(
            DockerError::from_bollard("t", server(404)),
            DockerError::NotFound("msg".to_owned())
        );
        assert_eq!(
            DockerError::from_bollard("t", server(409)),
            DockerError::Conflict("msg".to_owned())
        );
        assert_eq!(
            DockerError::from_bollard("t", server(500)),
            DockerError::Daemon {
                status: 500,
                message: "msg".to_owned()
            }
        );
    }

    #[test]
    fn io_errors_mean_the_engine_is_unreachable() {
        for (kind, reason) in [
            (io::ErrorKind::NotFound, REASON_NO_SOCKET),
            (io::ErrorKind::ConnectionRefused, REASON_REFUSED),
            (io::ErrorKind::PermissionDenied, REASON_PERMISSION),
        ] {
            let err = bollard::errors::Error::IOError {
                err: io::Error::from(kind),
            };
            let mapped = DockerError::from_bollard("unix:///x.sock", err);
            assert_eq!(
                mapped,
                DockerError::Unreachable {
                    target: "unix:///x.sock".to_owned(),
                    reason: reason.to_owned()
                }
            );
            assert!(mapped.is_unreachable());
            assert!(mapped.to_string().contains("unix:///x.sock"));
        }
    }

    #[test]
    fn permission_denied_hints_at_the_docker_group() {
        let err = DockerError::Unreachable {
            target: "unix:///var/run/docker.sock".to_owned(),
            reason: REASON_PERMISSION.to_owned(),
        };
        assert!(err.hint().unwrap().contains("docker group"));
        let err = DockerError::Unreachable {
            target: "unix:///var/run/docker.sock".to_owned(),
            reason: REASON_REFUSED.to_owned(),
        };
        assert!(err.hint().unwrap().contains("systemctl start docker"));
        assert_eq!(DockerError::NotFound("x".into()).hint(), None);
    }
}
