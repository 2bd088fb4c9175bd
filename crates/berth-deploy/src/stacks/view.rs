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
    /// Its environment variables' names (values may be secrets).
    pub env_keys: Vec<String>,
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
    /// The user's own domain (its certificate comes from the ACME CA).
    pub own_domain: bool,
}

impl crate::Runtime {
    /// The stack as its page shows it: the plan of its state (with the
    /// values made at install, so no placeholders), each service's
    /// container, and the routes.
    pub(super) async fn view(
        &self,
        stack: berth_core::Stack,
    ) -> Result<StackView, crate::DeployError> {
        use super::install::{Names, is_one_shot};
        let names = Names {
            project: &stack.project,
            stack: &stack.name,
        };
        let state = self.stack_state(stack.id).await?;
        let preview = self.plan_state(&names, &state).await?;
        let containers = self.docker().list_containers(&names.filter()).await?;
        let plan = &preview.plan;
        let services = plan
            .services
            .iter()
            .map(|s| {
                let container = names.container(&s.name);
                let info = containers.iter().find(|c| c.name == container);
                let one_shot = is_one_shot(&s.name, plan);
                let state = match info {
                    None => ServiceState::Missing,
                    Some(c) => match &c.state {
                        berth_docker::ContainerState::Running => ServiceState::Running,
                        berth_docker::ContainerState::Restarting => ServiceState::Restarting,
                        berth_docker::ContainerState::Created => ServiceState::Created,
                        _ if c.exit_code == Some(0)
                            && (one_shot || s.restart == Some(berth_core::RestartPolicy::No)) =>
                        {
                            ServiceState::Done
                        }
                        _ => ServiceState::Exited(c.exit_code.unwrap_or(-1)),
                    },
                };
                let image = s
                    .image
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| info.map(|c| c.image.clone()).unwrap_or_default());
                ServiceView {
                    name: s.name.clone(),
                    unpinned: s
                        .image
                        .as_ref()
                        .is_some_and(|i| i.tag().is_none_or(|t| t == "latest")),
                    image,
                    container,
                    state,
                    health: info.and_then(|c| c.health.clone()),
                    strategy: s.strategy,
                    published: info.map(|c| c.published.clone()).unwrap_or_default(),
                    depends_on: s.depends_on.iter().map(|d| d.service.clone()).collect(),
                    env_keys: s.environment.keys().cloned().collect(),
                }
            })
            .collect();
        let routes = berth_store::stacks::routes(self.store(), stack.id)
            .await?
            .into_iter()
            .filter_map(|r| {
                let host = DomainName::parse(&r.host).ok()?;
                Some(StackRoute {
                    url: self.domains().site_url(host.as_str(), &r.path),
                    service: r.service,
                    port: r.port,
                    host,
                    path: r.path,
                    own_domain: r.acme,
                })
            })
            .collect();
        Ok(StackView {
            stack,
            services,
            routes,
            warnings: preview.plan.warnings.clone(),
        })
    }
}
