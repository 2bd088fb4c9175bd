use berth_docker::DockerError;
use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Store(#[from] StoreError),
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
