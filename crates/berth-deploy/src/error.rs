use berth_docker::DockerError;
use berth_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Docker(#[from] DockerError),
}
