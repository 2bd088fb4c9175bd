use berth_docker::DockerError;
use berth_store::StoreError;

/// What a service call can fail with. The store's errors that the user
/// can act on arrive as their own kinds (not found, conflict); the rest
/// stay `Store`, an internal failure.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The name is taken, the project still has apps, and the like.
    #[error("{0}")]
    Conflict(String),
    /// Someone else saved the variables meanwhile.
    #[error("the variables were changed meanwhile (now version {current})")]
    VersionConflict { current: i64 },
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// References that do not resolve (unknown, circular, malformed).
    #[error("{0}")]
    Env(crate::EnvErrors),
    /// A webhook call whose secret or signature does not match.
    #[error("the webhook secret or signature does not match")]
    BadSignature,
    /// Input that parsed but does not fit this server (e.g. a static site directory that does not exist).
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A tool berth runs on the server failed (e.g. `ssh-keygen`).
    #[error("{0}")]
    Tool(String),
}

impl From<StoreError> for DeployError {
    fn from(err: StoreError) -> DeployError {
        match err {
            StoreError::NotFound { what } => DeployError::NotFound { what },
            StoreError::VersionConflict { current } => DeployError::VersionConflict { current },
            StoreError::AlreadyExists { .. } | StoreError::ProjectNotEmpty => {
                DeployError::Conflict(err.to_string())
            }
            other => DeployError::Store(other),
        }
    }
}
