//! A stack as its page shows it: services with their container's state, and routes.

use berth_compose::plan::Warning;
use berth_core::{DeployStrategy, DomainName, Stack};

/// A stack with what Docker says of each service.
#[derive(Debug, Clone)]
pub struct StackView {
    pub stack: Stack,
    pub services: Vec<ServiceView>,
    pub routes: Vec<StackRoute>,
    /// The installed plan's warnings: unpinned images, dangerous settings
    /// the admin confirmed, notes.
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone)]
pub struct ServiceView {
    pub name: String,
    /// The image reference as the file gives it.
    pub image: String,
    /// `latest` or no tag: flagged in the UI.
    pub unpinned: bool,
    pub container: String,
    pub state: ServiceState,
    /// Docker's health verdict when the service has a health check.
    pub health: Option<String>,
    pub strategy: DeployStrategy,
    /// Ports published on the host, as `127.0.0.1:5432->5432/tcp`.
    pub published: Vec<String>,
    /// Names of the services it waits for.
    pub depends_on: Vec<String>,
}

/// A service's state, from its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    /// Running (see `health` for its check).
    Running,
    /// A one-shot service that exited 0 (others wait for it with
    /// `service_completed_successfully`): done, not crashed.
    Done,
    /// Exited with this code and is not restarting.
    Exited(i64),
    /// Docker is restarting it by its restart policy.
    Restarting,
    /// Created, not started yet (waiting for the services it depends on).
    Created,
    /// No container: not installed yet, or removed outside berth.
    Missing,
}

impl ServiceState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceState::Running => "running",
            ServiceState::Done => "done",
            ServiceState::Exited(_) => "exited",
            ServiceState::Restarting => "restarting",
            ServiceState::Created => "created",
            ServiceState::Missing => "missing",
        }
    }
}

/// A route of the stack: where the edge sends `host` + `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRoute {
    pub service: String,
    pub port: u16,
    pub host: DomainName,
    pub path: String,
    /// Where to open it through the edge (a link), when there is an edge.
    pub url: Option<String>,
}
