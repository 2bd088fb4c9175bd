//! Stacks: the services of one compose file, installed as one resource.
//!
//! A stack's containers are `berth_<project>_<stack>_<service>`, its
//! volumes `berth_<project>_<stack>_<volume>`, and it has a network of its
//! own (`berth_<project>_<stack>`) where services reach each other by
//! service name. Services with a route also join the project network as
//! `<stack>-<service>`; the edge reaches them at their address on the
//! stack network, so nothing is published on the host unless the user
//! ticked a port. Generated values are made once at install and stored
//! sealed: an update or a restart never makes new ones.

use std::collections::BTreeMap;

use berth_compose::Plan;
use berth_compose::catalogue::Template;
use berth_compose::plan::Warning;
use berth_core::{DomainName, ProjectName, Stack, StackId, StackName, StackSource, StackStatus};

use crate::naming::{PROJECT, RESOURCE};
use crate::{DeployError, ResourceKey, Runtime, Stacks};
use install::{Names, StackState};

mod git;
mod install;
mod view;

pub use view::{ServiceState, ServiceView, StackRoute, StackView};

/// What the user asks for when installing a stack (the install form, or
/// `POST /api/v1/projects/{project}/stacks`).
#[derive(Debug, Clone)]
pub struct StackRequest {
    pub name: StackName,
    pub source: StackSource,
    /// Values for the plan's inputs, by name.
    pub inputs: BTreeMap<String, String>,
    /// The admin confirmed the plan's dangerous settings (privileged, host
    /// network, the Docker socket, host paths outside the volumes root…).
    pub confirm_dangerous: bool,
    /// Ports the user ticked to publish on the host.
    pub publish: Vec<Publish>,
    /// The user's own domain for a routed service, by service: it replaces
    /// the generated host (and the URL variables follow it), and gets a
    /// certificate from the ACME CA.
    pub domains: BTreeMap<String, DomainName>,
}

/// A container port published on the host: on 127.0.0.1, or on every
/// interface when `public` (which the form confirms separately). Kept in
/// a stack's stored state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Publish {
    pub service: String,
    pub port: u16,
    pub public: bool,
}

/// What an update asks for: a new file (or the same one again), and the
/// inputs (missing ones keep their installed values).
#[derive(Debug, Clone, Default)]
pub struct StackUpdate {
    pub source: Option<StackSource>,
    pub inputs: BTreeMap<String, String>,
    /// New domains by service (`Some`: replaces them all; an empty map
    /// goes back to the generated hosts).
    pub domains: Option<BTreeMap<String, DomainName>>,
}

/// Which services an update recreated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateOutcome {
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// A plan as the install form and `dry_run` show it, with the hosts the
/// routes would get.
#[derive(Debug, Clone)]
pub struct PlanPreview {
    pub plan: Plan,
    /// Per route of the plan (same order): the host it would answer on.
    pub hosts: Vec<Option<DomainName>>,
    /// Those of `hosts` that are the user's own domains.
    pub custom: Vec<DomainName>,
}

impl PlanPreview {
    /// The plan's warnings that need the admin's confirmation.
    pub fn dangers(&self) -> Vec<&Warning> {
        self.plan.dangers().collect()
    }
}

impl Stacks {
    /// The catalogue: berth's own templates, embedded in the binary, and
    /// those of `--templates-dir` (read at each call, so a file dropped
    /// there shows at once; one with an embedded template's id replaces it).
    pub fn catalogue(&self) -> Vec<Template> {
        let mut all: Vec<Template> = berth_compose::catalogue::TEMPLATES.to_vec();
        if let Some(dir) = &self.options().templates_dir {
            let (found, skipped) = berth_compose::catalogue::load_dir(dir);
            for why in skipped {
                tracing::warn!("template skipped: {why}");
            }
            for t in found {
                all.retain(|e| e.id != t.id);
                all.push(t);
            }
        }
        all
    }

    /// The catalogue's template with this id.
    pub fn template(&self, id: &str) -> Option<Template> {
        self.catalogue().into_iter().find(|t| t.id == id)
    }

    /// Plans an install without doing anything (the form's preview and the
    /// API's `dry_run`). The plan carries its own errors; `Err` is for a
    /// project that does not exist, an unknown template, or a git
    /// repository that cannot be read. Generated values show as
    /// placeholders: they are made at install.
    pub async fn plan(
        &self,
        project: &ProjectName,
        request: &StackRequest,
    ) -> Result<PlanPreview, DeployError> {
        self.projects().find_project(project).await?;
        let (text, format) = self.stack_text(&request.source).await?;
        let names = Names {
            project,
            stack: &request.name,
        };
        Ok(self.plan_stack(
            &names,
            &text,
            format,
            &request.inputs,
            &BTreeMap::new(),
            &request.domains,
        ))
    }

    /// Records the stack and starts bringing it up in the background; the
    /// returned stack is `installing`. Refuses a plan with errors, and one
    /// with dangerous settings unless `confirm_dangerous`; nothing is
    /// recorded or created then.
    pub async fn install(
        &self,
        project: &ProjectName,
        request: StackRequest,
    ) -> Result<Stack, DeployError> {
        self.projects().find_project(project).await?;
        let names = Names {
            project,
            stack: &request.name,
        };
        let mut state = StackState {
            source: request.source.clone(),
            inputs: request.inputs.clone(),
            generated: BTreeMap::new(),
            publish: request.publish.clone(),
            confirm_dangerous: request.confirm_dangerous,
            domains: request.domains.clone(),
            text: None,
        };
        self.read_source(&mut state).await?;
        let preview = self.checked_plan(&names, &mut state).await?;
        let template = match &request.source {
            StackSource::Template { id } => Some(id.as_str()),
            _ => None,
        };
        let stack = berth_store::stacks::create(
            self.store(),
            project,
            &berth_store::stacks::NewStack {
                name: &request.name,
                source_kind: request.source.kind(),
                template,
                dangerous_confirmed: request.confirm_dangerous
                    && preview.plan.dangers().next().is_some(),
            },
            &encode(&state),
        )
        .await?;
        if let Err(e) = self.record_routes(stack.id, &preview).await {
            berth_store::stacks::delete(self.store(), stack.id).await?;
            return Err(e);
        }
        tracing::info!(project.name = %project, stack.name = %stack.name, "stack installing");
        let stacks = self.clone();
        let id = stack.id;
        let (project, name) = (project.clone(), stack.name.clone());
        tokio::spawn(async move {
            let lock = stacks.lock_for(ResourceKey::Stack(id));
            let _one_at_a_time = lock.lock().await;
            let names = Names {
                project: &project,
                stack: &name,
            };
            let outcome = stacks
                .apply_stack(id, &names, &preview, &state)
                .await
                .map(|_| ());
            stacks.stack_settled(id, outcome).await;
        });
        Ok(stack)
    }

    /// Stores the plan's routes with their hosts (refused when another
    /// stack serves one of them, or an app's domain is the same).
    async fn record_routes(&self, id: StackId, preview: &PlanPreview) -> Result<(), DeployError> {
        let taken = berth_store::domains::list_all(self.store()).await?;
        let dashboard = berth_store::domains::dashboard_domain(self.store()).await?;
        let mut rows = Vec::new();
        for (route, host) in preview.plan.routes.iter().zip(&preview.hosts) {
            let Some(host) = host else { continue };
            if dashboard.as_ref() == Some(host) {
                return Err(DeployError::Invalid {
                    field: "domains",
                    message: format!(
                        "{host} is the dashboard's domain: no stack can take any path on it"
                    ),
                });
            }
            if let Some(d) = taken.iter().find(|d| &d.host == host) {
                return Err(DeployError::Conflict(format!(
                    "{host} is a domain of the app {}/{}",
                    d.project, d.app
                )));
            }
            let port = match route.port {
                Some(port) => port,
                None => self.exposed_port(&preview.plan, &route.service).await?,
            };
            rows.push(berth_store::stacks::StackRouteRow {
                service: route.service.clone(),
                host: host.to_string(),
                path: route.path.clone(),
                port,
                address: None,
                acme: preview.custom.contains(host),
            });
        }
        berth_store::stacks::set_routes(self.store(), id, &rows).await?;
        Ok(())
    }

    /// The lowest port a service's image exposes, for a route that names
    /// none (as Coolify's proxy does).
    async fn exposed_port(&self, plan: &Plan, service: &str) -> Result<u16, DeployError> {
        let s = plan.services.iter().find(|s| s.name == service);
        if let Some(port) = s.and_then(|s| s.expose.first().copied()) {
            return Ok(port);
        }
        let image = s.and_then(|s| s.image.as_ref()).map(ToString::to_string);
        let exposed = match image {
            Some(image) => self
                .docker()
                .image_info(&image)
                .await?
                .and_then(|i| i.exposed_ports.into_iter().min()),
            None => None,
        };
        exposed.ok_or_else(|| DeployError::Invalid {
            field: "compose",
            message: format!(
                "the route to {service} names no port and its image exposes none: add the port (SERVICE_URL_{}_8080)",
                service.to_ascii_uppercase().replace('-', "_")
            ),
        })
    }

    /// The project's stacks, by name.
    pub async fn list(&self, project: &ProjectName) -> Result<Vec<Stack>, DeployError> {
        self.projects().find_project(project).await?;
        Ok(berth_store::stacks::list(self.store(), project).await?)
    }

    /// Every stack of every project (the dashboard).
    pub async fn list_all(&self) -> Result<Vec<Stack>, DeployError> {
        Ok(berth_store::stacks::list_all(self.store()).await?)
    }

    /// Where the stack answers through the edge, its main route first: read
    /// from the store only, for lists (the stack's page has [`Stacks::get`]).
    pub async fn urls(&self, stack: &Stack) -> Result<Vec<String>, DeployError> {
        Ok(berth_store::stacks::routes(self.store(), stack.id)
            .await?
            .into_iter()
            .filter_map(|r| {
                let host = DomainName::parse(&r.host).ok()?;
                Some(self.public_url(&host, &r.path))
            })
            .collect())
    }

    /// What the stack was installed from, and the inputs it was given
    /// (secret ones left out), to fill in the update form.
    pub async fn installed(
        &self,
        project: &ProjectName,
        name: &StackName,
    ) -> Result<(StackSource, BTreeMap<String, String>), DeployError> {
        let stack = berth_store::stacks::find(self.store(), project, name).await?;
        let state = self.stack_state(stack.id).await?;
        let names = Names {
            project,
            stack: name,
        };
        let preview = self.plan_state(&names, &state).await?;
        let secret = |key: &str| {
            preview
                .plan
                .inputs
                .iter()
                .any(|i| i.name == key && i.kind == berth_compose::InputKind::Secret)
        };
        let inputs = state
            .inputs
            .into_iter()
            .filter(|(k, _)| !secret(k))
            .collect();
        Ok((state.source, inputs))
    }

    /// The stack with its services as Docker has them, and its routes.
    pub async fn get(
        &self,
        project: &ProjectName,
        name: &StackName,
    ) -> Result<StackView, DeployError> {
        let stack = berth_store::stacks::find(self.store(), project, name).await?;
        self.view(stack).await
    }

    /// Plans the new file (or the same one with new inputs), then recreates
    /// only the services whose configuration changed. Generated values are
    /// kept; only values the new file asks for anew are made.
    pub async fn update(
        &self,
        project: &ProjectName,
        name: &StackName,
        update: StackUpdate,
    ) -> Result<UpdateOutcome, DeployError> {
        let stack = berth_store::stacks::find(self.store(), project, name).await?;
        let lock = self.lock_for(ResourceKey::Stack(stack.id));
        let _one_at_a_time = lock.lock().await;
        let names = Names {
            project,
            stack: name,
        };
        let mut state = self.stack_state(stack.id).await?;
        state.apply(update);
        self.read_source(&mut state).await?;
        let preview = self.checked_plan(&names, &mut state).await?;
        self.record_routes(stack.id, &preview).await?;
        berth_store::stacks::save_state(self.store(), stack.id, &encode(&state)).await?;
        berth_store::stacks::set_status(self.store(), stack.id, StackStatus::Updating, None)
            .await?;
        let applied = self.apply_stack(stack.id, &names, &preview, &state).await;
        let outcome = applied
            .as_ref()
            .map(|_| ())
            .map_err(|e| DeployError::Conflict(e.to_string()));
        self.stack_settled(stack.id, outcome).await;
        let changed = applied?;
        let unchanged = preview
            .plan
            .services
            .iter()
            .map(|s| s.name.clone())
            .filter(|s| !changed.contains(s))
            .collect();
        tracing::info!(project.name = %project, stack.name = %name, changed = ?changed, "stack updated");
        Ok(UpdateOutcome { changed, unchanged })
    }

    /// Which services [`Stacks::update`] would recreate, without changing
    /// anything: each service's configuration (image, environment, mounts…)
    /// against its running container's. Services built from git are always
    /// rebuilt, so they count as changed.
    pub async fn update_preview(
        &self,
        project: &ProjectName,
        name: &StackName,
        update: StackUpdate,
    ) -> Result<UpdateOutcome, DeployError> {
        let stack = berth_store::stacks::find(self.store(), project, name).await?;
        let names = Names {
            project,
            stack: name,
        };
        let mut state = self.stack_state(stack.id).await?;
        state.apply(update);
        self.read_source(&mut state).await?;
        let preview = self.checked_plan(&names, &mut state).await?;
        let plan = &preview.plan;
        let files = self.write_stack_files(&names, plan, false)?;
        let containers = self.docker().list_containers(&names.filter()).await?;
        let mut outcome = UpdateOutcome::default();
        for service in &plan.services {
            let running = containers
                .iter()
                .find(|c| c.name == names.container(&service.name));
            let same = match (service.build.is_some(), running) {
                (false, Some(c)) => {
                    let spec = self
                        .desired_spec(
                            &names,
                            plan,
                            service,
                            &state,
                            &files,
                            &BTreeMap::new(),
                            false,
                        )
                        .await?;
                    c.labels.get(install::CONFIG_HASH) == spec.labels.get(install::CONFIG_HASH)
                }
                _ => false,
            };
            if same {
                outcome.unchanged.push(service.name.clone());
            } else {
                outcome.changed.push(service.name.clone());
            }
        }
        for c in &containers {
            if let Some(service) = c.labels.get(crate::naming::SERVICE)
                && !plan.services.iter().any(|s| &s.name == service)
            {
                outcome.changed.push(service.clone());
            }
        }
        Ok(outcome)
    }

    /// Removes the stack's containers, network and routes; its volumes stay
    /// (listed as orphaned on the Storage page) unless `delete_volumes`.
    pub async fn uninstall(
        &self,
        project: &ProjectName,
        name: &StackName,
        delete_volumes: bool,
    ) -> Result<(), DeployError> {
        let stack = berth_store::stacks::find(self.store(), project, name).await?;
        let lock = self.lock_for(ResourceKey::Stack(stack.id));
        let _one_at_a_time = lock.lock().await;
        let names = Names {
            project,
            stack: name,
        };
        let docker = self.docker();
        let mine = names.filter();
        for c in docker.list_containers(&mine).await? {
            docker.stop_container(&c.id, 10).await?;
            docker.remove_container(&c.id).await?;
        }
        docker.remove_network(&names.network()).await?;
        berth_store::stacks::delete(self.store(), stack.id).await?;
        self.routes_changed().await;
        if delete_volumes {
            for v in docker.list_volumes(&mine).await? {
                docker.remove_volume(&v.name).await?;
            }
            for dir in [self.stack_dir(&names), self.stack_secrets_dir(&names)] {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| {
                        DeployError::Tool(format!("cannot remove {}: {e}", dir.display()))
                    })?;
                }
            }
        }
        tracing::info!(project.name = %project, stack.name = %name, delete_volumes, "stack uninstalled");
        Ok(())
    }

    /// The last `lines` lines of one service's logs.
    pub async fn service_logs(
        &self,
        project: &ProjectName,
        name: &StackName,
        service: &str,
        lines: usize,
    ) -> Result<Vec<String>, DeployError> {
        let stack = berth_store::stacks::find(self.store(), project, name).await?;
        let names = Names {
            project,
            stack: name,
        };
        let state = self.stack_state(stack.id).await?;
        let plan = self.plan_state(&names, &state).await?.plan;
        if !plan.services.iter().any(|s| s.name == service) {
            return Err(DeployError::NotFound { what: "service" });
        }
        match self
            .docker()
            .inspect_container(&names.container(service))
            .await?
        {
            Some(c) => Ok(self.docker().logs_tail(&c.id, lines).await?),
            None => Ok(Vec::new()),
        }
    }
}

impl Runtime {
    /// Takes up installs and updates that berth stopped in the middle of
    /// (a restart, a crash): bringing a stack up again is safe, since only
    /// services whose configuration differs are recreated.
    pub async fn resume_stacks(&self) {
        let stacks = match berth_store::stacks::list_all(self.store()).await {
            Ok(stacks) => stacks,
            Err(e) => {
                tracing::warn!(error = %e, "could not list stacks to resume");
                return;
            }
        };
        for stack in stacks {
            if !matches!(
                stack.status,
                StackStatus::Installing | StackStatus::Updating
            ) {
                continue;
            }
            tracing::info!(project.name = %stack.project, stack.name = %stack.name, "resuming an interrupted install or update");
            let runtime = self.clone();
            tokio::spawn(async move {
                let lock = runtime.lock_for(ResourceKey::Stack(stack.id));
                let _one_at_a_time = lock.lock().await;
                let names = Names {
                    project: &stack.project,
                    stack: &stack.name,
                };
                let outcome = async {
                    let mut state = runtime.stack_state(stack.id).await?;
                    let preview = runtime.checked_plan(&names, &mut state).await?;
                    runtime
                        .apply_stack(stack.id, &names, &preview, &state)
                        .await
                }
                .await
                .map(|_| ());
                runtime.stack_settled(stack.id, outcome).await;
            });
        }
    }

    /// Records where a stack service is served now, after an event of one
    /// of its containers: the address on the stack network of its running
    /// container (during a rolling update the new one runs beside the old,
    /// and neither its start nor the old one's stop may move the route
    /// before the update does).
    pub(crate) async fn stack_container_moved(&self, c: &berth_docker::ContainerInfo) {
        let (Some(project), Some(stack), Some(service)) = (
            c.labels.get(PROJECT),
            c.labels.get(RESOURCE),
            c.labels.get(crate::naming::SERVICE),
        ) else {
            return;
        };
        let (Ok(project), Ok(stack)) = (ProjectName::parse(project), StackName::parse(stack))
        else {
            return;
        };
        let Ok(found) = berth_store::stacks::find(self.store(), &project, &stack).await else {
            return;
        };
        // While an install or update runs, it moves the routes itself: an
        // event handled meanwhile reads a picture the update is changing.
        let lock = self.lock_for(ResourceKey::Stack(found.id));
        let Ok(_not_applying) = lock.try_lock() else {
            return;
        };
        let names = Names {
            project: &project,
            stack: &stack,
        };
        let (network, canonical) = (names.network(), names.container(service));
        let running = self
            .docker()
            .list_containers(
                &[
                    &names.filter()[..],
                    &[(crate::naming::SERVICE, service.as_str())],
                ]
                .concat(),
            )
            .await;
        let address = match running {
            // The service's own name first: a rolling update's new container
            // (a temporary name) is switched to by the update itself, once it
            // accepts connections, not by its start event.
            Ok(list) => list
                .iter()
                .filter(|c| c.state.is_running() && c.name == canonical)
                .chain(list.iter().filter(|c| c.state.is_running()))
                .find_map(|c| c.addresses.get(&network).cloned()),
            Err(e) => {
                tracing::warn!(error = %e, "could not list a stack service's containers");
                return;
            }
        };
        if let Err(e) = berth_store::stacks::set_service_address(
            self.store(),
            found.id,
            service,
            address.as_deref(),
        )
        .await
        {
            tracing::warn!(container.name = %c.name, error = %e, "could not record a stack service's address");
        }
    }

    /// One service of an installed stack as its plan has it (image,
    /// environment with the stack's values filled in), with the stack's
    /// network and the service's container name: what a backup of a
    /// database service needs.
    pub(crate) async fn stack_service_plan(
        &self,
        stack: &Stack,
        service: &str,
    ) -> Result<(berth_compose::plan::Service, String, String), DeployError> {
        let names = Names {
            project: &stack.project,
            stack: &stack.name,
        };
        let state = self.stack_state(stack.id).await?;
        let plan = self.plan_state(&names, &state).await?.plan;
        let found = plan
            .services
            .into_iter()
            .find(|s| s.name == service)
            .ok_or(DeployError::NotFound { what: "service" })?;
        Ok((found, names.network(), names.container(service)))
    }

    async fn stack_state(&self, id: StackId) -> Result<StackState, DeployError> {
        let bytes = berth_store::stacks::state(self.store(), id).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            DeployError::Store(berth_store::StoreError::Corrupt {
                what: "stack state",
                detail: e.to_string(),
            })
        })
    }
}

fn encode(state: &StackState) -> Vec<u8> {
    serde_json::to_vec(state).expect("a stack's state always serializes")
}
