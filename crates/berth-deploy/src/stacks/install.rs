//! Bringing a stack up: its plan with the values made at install, the
//! network, volumes and files, then each service in depends_on order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use berth_compose::plan::{Condition, FileSource, Healthcheck, MountSource, Service};
use berth_compose::{Format, Options, Plan};
use berth_core::{
    DeployStrategy, DomainName, ProjectName, RestartPolicy, StackId, StackName, StackSource,
    StackStatus,
};
use berth_docker::{ContainerInfo, ContainerOptions, ContainerSpec, Mount, PublishedPort};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{PlanPreview, Publish};
use crate::naming::{INSTANCE, KIND, MANAGED, PROJECT, RESOURCE, SERVICE, VOLUME};
use crate::{DeployError, Runtime, network_name};

/// The label that holds a service container's configuration hash: an
/// update recreates exactly the services whose hash changed.
pub(super) const CONFIG_HASH: &str = "berth.config-hash";

/// How long a rolling update waits for the old container's requests to end.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// How long a routed service may take to accept connections after start.
const PORT_LIMIT: Duration = Duration::from_secs(30);

/// How long the edge holds a service's requests while it is recreated.
const HOLD_LIMIT: Duration = Duration::from_secs(30);

/// How long a service may take to become healthy (or to finish, for a
/// one-shot service) before the install stops and says which one.
const WAIT_LIMIT: Duration = Duration::from_secs(300);

/// What a stack was installed from, sealed in the store: the file, the
/// user's inputs and the values berth made once (never made again).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StackState {
    pub source: StackSource,
    pub inputs: BTreeMap<String, String>,
    pub generated: BTreeMap<String, String>,
    pub publish: Vec<Publish>,
    pub confirm_dangerous: bool,
    /// The user's own domains, by service (see `StackRequest::domains`).
    #[serde(default)]
    pub domains: BTreeMap<String, DomainName>,
    /// The file as read from its source at install or at the last update:
    /// what runs now, so a page view never clones a repository and a newer
    /// catalogue does not change what an installed stack shows. (`None` in
    /// states stored before it was kept: read from the source then.)
    #[serde(default)]
    pub text: Option<String>,
}

impl StackState {
    /// Takes an update in: a new source, new input values (missing ones keep
    /// theirs), and the domains when given.
    pub fn apply(&mut self, update: super::StackUpdate) {
        if let Some(source) = update.source {
            self.source = source;
        }
        self.inputs.extend(update.inputs);
        if let Some(domains) = update.domains {
            self.domains = domains;
        }
    }
}

/// A stack's names in Docker.
pub(super) struct Names<'a> {
    pub project: &'a ProjectName,
    pub stack: &'a StackName,
}

impl Names<'_> {
    pub fn network(&self) -> String {
        format!("berth_{}_{}", self.project, self.stack)
    }

    pub fn container(&self, service: &str) -> String {
        format!("berth_{}_{}_{service}", self.project, self.stack)
    }

    pub fn volume(&self, volume: &str) -> String {
        format!("berth_{}_{}_{volume}", self.project, self.stack)
    }

    /// The alias a routed service has on the project network.
    pub fn project_alias(&self, service: &str) -> String {
        format!("{}-{}", self.stack, service.replace('_', "-"))
    }

    /// The name the edge knows a service's routes by.
    pub fn route_name(&self, service: &str) -> String {
        crate::naming::stack_route_name(self.project, self.stack, service)
    }

    /// The label filter that finds the stack's containers and volumes.
    pub fn filter(&self) -> [(&'static str, &str); 3] {
        [
            (KIND, "stack"),
            (PROJECT, self.project.as_str()),
            (RESOURCE, self.stack.as_str()),
        ]
    }

    /// The labels every object of the stack carries.
    pub fn labels(&self, runtime: &Runtime) -> BTreeMap<String, String> {
        let mut labels = runtime.object_labels();
        labels.extend([
            (MANAGED.to_owned(), "true".to_owned()),
            (INSTANCE.to_owned(), runtime.instance_id().to_owned()),
            (KIND.to_owned(), "stack".to_owned()),
            (PROJECT.to_owned(), self.project.to_string()),
            (RESOURCE.to_owned(), self.stack.to_string()),
        ]);
        labels
    }
}

impl Runtime {
    /// The file's text and format for a source.
    pub(super) async fn stack_text(
        &self,
        source: &StackSource,
    ) -> Result<(String, Format), DeployError> {
        match source {
            StackSource::Template { id } => {
                let t = self
                    .stacks()
                    .template(id)
                    .ok_or(DeployError::NotFound { what: "template" })?;
                let text = t.text.into_owned();
                Ok((text.clone(), format_of(source, &text)))
            }
            StackSource::Compose { text } => {
                if text.trim().is_empty() {
                    return Err(DeployError::Invalid {
                        field: "compose",
                        message: "the compose file is empty".to_owned(),
                    });
                }
                Ok((text.clone(), format_of(source, text)))
            }
            StackSource::Git { url, branch, path } => {
                let text = self.read_git_file(url, branch, path).await?;
                let format = format_of(source, &text);
                Ok((text, format))
            }
        }
    }

    /// Plans the file with the values known so far; a route's URL and host
    /// variables get the hosts the stack will answer on.
    pub(super) fn plan_stack(
        &self,
        names: &Names<'_>,
        text: &str,
        format: Format,
        inputs: &BTreeMap<String, String>,
        generated: &BTreeMap<String, String>,
        domains: &BTreeMap<String, DomainName>,
    ) -> PlanPreview {
        let mut options = Options {
            inputs: inputs.clone(),
            values: generated.clone(),
            bind_rules: Some(self.bind_rules()),
        };
        let first = berth_compose::plan(text, format, &options);
        let hosts = self.route_hosts(names, &first, domains);
        for (route, host) in first.routes.iter().zip(&hosts) {
            let Some(host) = host else { continue };
            if let Some(var) = &route.url_variable {
                options
                    .values
                    .insert(var.clone(), self.public_url(host, &route.path));
            }
            if let Some(var) = &route.host_variable {
                options.values.insert(var.clone(), host.to_string());
            }
        }
        let mut plan = berth_compose::plan(text, format, &options);
        for service in domains.keys() {
            if !plan.routes.iter().any(|r| &r.service == service) {
                plan.errors.push(berth_compose::Problem::new(
                    None,
                    format!("domains.{service}"),
                    format!(
                        "{service} has no route: only a service with a route can have a domain"
                    ),
                ));
            }
        }
        let custom = hosts
            .iter()
            .flatten()
            .filter(|h| domains.values().any(|d| d == *h))
            .cloned()
            .collect();
        PlanPreview {
            plan,
            hosts,
            custom,
        }
    }

    /// The host of each route: the main service's first route answers on
    /// `<stack>.<project>.<base>`, every other on
    /// `<stack>-<service>[-<port>].<project>.<base>`. `None` without an edge.
    fn route_hosts(
        &self,
        names: &Names<'_>,
        plan: &Plan,
        domains: &BTreeMap<String, DomainName>,
    ) -> Vec<Option<DomainName>> {
        let Some(base) = self.domains().base_domain() else {
            return plan
                .routes
                .iter()
                .map(|r| domains.get(&r.service).cloned())
                .collect();
        };
        let main = plan
            .metadata
            .as_ref()
            .and_then(|m| m.service.clone())
            .or_else(|| plan.routes.first().map(|r| r.service.clone()));
        let mut used: BTreeSet<String> = BTreeSet::new();
        let mut own: BTreeSet<&String> = BTreeSet::new();
        plan.routes
            .iter()
            .map(|r| {
                // The user's domain takes the service's first route.
                if let Some(domain) = domains.get(&r.service)
                    && own.insert(&r.service)
                {
                    return Some(domain.clone());
                }
                let service = r.service.replace('_', "-").to_ascii_lowercase();
                let mut label = if Some(&r.service) == main.as_ref() {
                    names.stack.to_string()
                } else {
                    format!("{}-{service}", names.stack)
                };
                if used.contains(&label) {
                    label = format!("{label}-{}", r.port.unwrap_or(0));
                }
                used.insert(label.clone());
                base.prepend(names.project.as_str())
                    .and_then(|d| d.prepend(&label))
                    .ok()
            })
            .collect()
    }

    /// Where a host + path opens through the edge (`http://host/` without one).
    pub(super) fn public_url(&self, host: &DomainName, path: &str) -> String {
        self.domains()
            .site_url(host.as_str(), path)
            .unwrap_or_else(|| format!("http://{host}{path}"))
    }

    /// Makes the values the plan asks for that are not made yet.
    pub(super) fn generate_missing(plan: &Plan, generated: &mut BTreeMap<String, String>) -> bool {
        let mut made = false;
        for g in &plan.generated {
            if !generated.contains_key(&g.name) {
                generated.insert(g.name.clone(), g.generate(&mut rand::rng()));
                made = true;
            }
        }
        made
    }

    /// Reads the file from the state's source again (install, update).
    pub(super) async fn read_source(&self, state: &mut StackState) -> Result<(), DeployError> {
        state.text = Some(self.stack_text(&state.source).await?.0);
        Ok(())
    }

    /// The plan of a stack's stored state, its values and domains as they
    /// are (nothing is made, nothing checked).
    pub(super) async fn plan_state(
        &self,
        names: &Names<'_>,
        state: &StackState,
    ) -> Result<PlanPreview, DeployError> {
        let (text, format) = match &state.text {
            Some(text) => (text.clone(), format_of(&state.source, text)),
            None => self.stack_text(&state.source).await?,
        };
        Ok(self.plan_stack(
            names,
            &text,
            format,
            &state.inputs,
            &state.generated,
            &state.domains,
        ))
    }

    /// The full plan of a stack's state: made values filled in (making any
    /// that are missing), refused when it has errors or unconfirmed dangers.
    pub(super) async fn checked_plan(
        &self,
        names: &Names<'_>,
        state: &mut StackState,
    ) -> Result<PlanPreview, DeployError> {
        let mut preview = self.plan_state(names, state).await?;
        if Self::generate_missing(&preview.plan, &mut state.generated) {
            preview = self.plan_state(names, state).await?;
        }
        let plan = &preview.plan;
        if !plan.errors.is_empty() {
            let message = plan
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(DeployError::Invalid {
                field: "compose",
                message,
            });
        }
        let dangers: Vec<&str> = plan.dangers().map(|w| w.message.as_str()).collect();
        if !dangers.is_empty() && !state.confirm_dangerous {
            return Err(DeployError::Invalid {
                field: "confirm_dangerous",
                message: format!(
                    "these settings need an admin's confirmation: {}",
                    dangers.join("; ")
                ),
            });
        }
        for p in &state.publish {
            let service = plan
                .services
                .iter()
                .find(|s| s.name == p.service)
                .ok_or_else(|| DeployError::Invalid {
                    field: "publish",
                    message: format!("cannot publish a port of {:?}: no such service", p.service),
                })?;
            let offered = service
                .ports
                .iter()
                .any(|m| (m.target..=m.target_end).contains(&p.port))
                || service.expose.contains(&p.port);
            if !offered {
                return Err(DeployError::Invalid {
                    field: "publish",
                    message: format!(
                        "{} has no port {} in its ports or expose",
                        p.service, p.port
                    ),
                });
            }
        }
        let from_git = matches!(state.source, StackSource::Git { .. });
        for s in &plan.services {
            if s.image.is_none() && !(from_git && s.build.is_some()) {
                return Err(DeployError::Invalid {
                    field: "compose",
                    message: format!(
                        "service {}: build: needs a stack from a git repository (the build context is read there)",
                        s.name
                    ),
                });
            }
        }
        Ok(preview)
    }

    /// Brings the stack's services up as planned: network, volumes, files,
    /// then each service in depends_on order, recreating only those whose
    /// configuration differs from their running container (all of them at
    /// install). Returns the services it (re)created.
    pub(super) async fn apply_stack(
        &self,
        id: StackId,
        names: &Names<'_>,
        preview: &PlanPreview,
        state: &StackState,
    ) -> Result<Vec<String>, DeployError> {
        let plan = &preview.plan;
        let docker = self.docker();
        let labels = names.labels(self);
        docker.ensure_network(&names.network(), &labels).await?;
        let mut project_labels = self.object_labels();
        project_labels.extend([
            (MANAGED.to_owned(), "true".to_owned()),
            (INSTANCE.to_owned(), self.instance_id().to_owned()),
            (PROJECT.to_owned(), names.project.to_string()),
        ]);
        docker
            .ensure_network(&network_name(names.project), &project_labels)
            .await?;
        for v in &plan.volumes {
            let mut vl = labels.clone();
            vl.insert(VOLUME.to_owned(), v.volume.to_string());
            vl.extend(v.labels.clone());
            docker
                .ensure_volume(&names.volume(v.volume.as_str()), &vl)
                .await?;
        }
        let files = self.write_stack_files(names, plan, true)?;
        let images = match &state.source {
            StackSource::Git { url, branch, path } => {
                self.build_stack_images(names, plan, url, branch, path)
                    .await?
            }
            _ => BTreeMap::new(),
        };
        let mut changed = Vec::new();
        for service in start_order(&plan.services) {
            // A dependency the plan left out (another profile, `required: false`) is not waited for.
            let deps = service
                .depends_on
                .iter()
                .filter(|d| plan.services.iter().any(|s| s.name == d.service));
            for dep in deps {
                self.wait_for(names, &dep.service, dep.condition, plan)
                    .await?;
            }
            let spec = self
                .desired_spec(names, plan, service, state, &files, &images, true)
                .await?;
            let current = docker
                .inspect_container(&names.container(&service.name))
                .await?;
            let same = current
                .as_ref()
                .is_some_and(|c| c.labels.get(CONFIG_HASH) == spec.labels.get(CONFIG_HASH));
            if same {
                if let Some(c) = current
                    .as_ref()
                    .filter(|c| !c.state.is_running() && !is_done(c))
                {
                    docker.start_container(&c.id).await?;
                }
            } else {
                let routed = plan.routes.iter().any(|r| r.service == service.name);
                match current {
                    Some(old)
                        if routed
                            && old.state.is_running()
                            && service.strategy == DeployStrategy::Rolling =>
                    {
                        self.roll_service(id, names, service, &spec, &old).await?;
                    }
                    old => {
                        self.recreate_service(id, names, service, &spec, old.as_ref(), routed)
                            .await?;
                    }
                }
                changed.push(service.name.clone());
            }
            self.route_to(id, names, &service.name, &names.container(&service.name))
                .await?;
        }
        // Services left out of the file now: their containers go, their volumes stay.
        let containers = docker.list_containers(&names.filter()).await?;
        for c in containers {
            let gone = c
                .labels
                .get(SERVICE)
                .is_some_and(|s| !plan.services.iter().any(|p| &p.name == s));
            if gone {
                docker.stop_container(&c.id, 10).await?;
                docker.remove_container(&c.id).await?;
                changed.push(c.labels.get(SERVICE).cloned().unwrap_or_default());
            }
        }
        // The last services' conditions are nobody's dependency; a stack is
        // running once each is started (or done).
        for service in &plan.services {
            self.wait_for(names, &service.name, settled(service, plan), plan)
                .await?;
        }
        Ok(changed)
    }

    /// Replaces a running service with a route without a refused request:
    /// the new container starts beside the old under a temporary name, the
    /// edge switches to it once it is up (healthy, when it has a check), the
    /// old one drains and goes, and the new one takes the service's name.
    async fn roll_service(
        &self,
        id: StackId,
        names: &Names<'_>,
        service: &Service,
        spec: &ContainerSpec,
        old: &ContainerInfo,
    ) -> Result<(), DeployError> {
        let docker = self.docker();
        let mut next = spec.clone();
        next.name = format!(
            "{}.next-{}",
            spec.name,
            hex::encode(rand::random::<[u8; 3]>())
        );
        let new_id = docker.create_container(&next).await?;
        docker.start_container(&new_id).await?;
        let up = self
            .wait_for_container(&new_id, &service.name, Condition::ServiceHealthy, false)
            .await;
        if let Err(e) = up {
            // The old container keeps serving; the new one goes.
            let _ = docker.stop_container(&new_id, 5).await;
            let _ = docker.remove_container(&new_id).await;
            return Err(e);
        }
        self.route_to(id, names, &service.name, &new_id).await?;
        // As for apps: a request that read the old table just before the
        // swap is counted only a moment later; settle, then drain.
        tokio::time::sleep(crate::deployments::DRAIN_SETTLE).await;
        if let Some(ip) = old
            .addresses
            .get(&names.network())
            .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        {
            for route in berth_store::stacks::routes(self.store(), id).await? {
                if route.service == service.name {
                    self.drain_address(std::net::SocketAddr::new(ip, route.port), DRAIN_LIMIT)
                        .await;
                }
            }
        }
        docker.stop_container(&old.id, stop_grace(service)).await?;
        docker.remove_container(&old.id).await?;
        docker.rename_container(&new_id, &spec.name).await?;
        Ok(())
    }

    /// Stops the old container (if any) and starts the new one on the same
    /// volumes; the edge holds the service's requests meanwhile.
    async fn recreate_service(
        &self,
        id: StackId,
        names: &Names<'_>,
        service: &Service,
        spec: &ContainerSpec,
        old: Option<&ContainerInfo>,
        routed: bool,
    ) -> Result<(), DeployError> {
        let docker = self.docker();
        let _hold = match old {
            Some(old) if routed => {
                let upstream = old
                    .addresses
                    .get(&names.network())
                    .and_then(|a| a.parse::<std::net::IpAddr>().ok());
                let port = berth_store::stacks::routes(self.store(), id)
                    .await?
                    .into_iter()
                    .find(|r| r.service == service.name)
                    .map(|r| r.port);
                let upstream = upstream
                    .zip(port)
                    .map(|(ip, port)| std::net::SocketAddr::new(ip, port));
                self.hold_route(&names.route_name(&service.name), upstream, HOLD_LIMIT)
            }
            _ => None,
        };
        if let Some(old) = old {
            docker.stop_container(&old.id, stop_grace(service)).await?;
            docker.remove_container(&old.id).await?;
        }
        let new_id = docker.create_container(spec).await?;
        docker.start_container(&new_id).await?;
        if routed {
            // Published to the edge only once it is up, so held requests
            // reach a container that answers.
            let _ = self
                .wait_for_container(&new_id, &service.name, Condition::ServiceHealthy, false)
                .await;
            self.route_to(id, names, &service.name, &new_id).await?;
        }
        Ok(())
    }

    /// Sends the service's routes to container `container` once it accepts
    /// connections (its address on the stack network).
    async fn route_to(
        &self,
        id: StackId,
        names: &Names<'_>,
        service: &str,
        container: &str,
    ) -> Result<(), DeployError> {
        let address = self
            .docker()
            .inspect_container(container)
            .await?
            .and_then(|c| c.addresses.get(&names.network()).cloned());
        self.wait_for_routes_port(id, service, address.as_deref())
            .await;
        berth_store::stacks::set_service_address(self.store(), id, service, address.as_deref())
            .await?;
        self.routes_changed().await;
        Ok(())
    }

    /// The container a service should run now, with its configuration hash.
    /// `apply` pulls a missing image and creates the volumes for paths its
    /// image declares; without it (a preview) nothing changes on the host.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site each for apply and preview"
    )]
    pub(super) async fn desired_spec(
        &self,
        names: &Names<'_>,
        plan: &Plan,
        service: &Service,
        state: &StackState,
        files: &BTreeMap<String, PathBuf>,
        images: &BTreeMap<String, String>,
        apply: bool,
    ) -> Result<ContainerSpec, DeployError> {
        let docker = self.docker();
        let image = match images.get(&service.name) {
            Some(tag) => tag.clone(),
            None => {
                let image = service
                    .image
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                if apply {
                    self.ensure_image(&image).await?;
                }
                image
            }
        };
        // Paths the image keeps data in get a named volume of the stack, as
        // for apps: an anonymous one would go with the container.
        let image_volumes: Vec<String> = docker
            .image_info(&image)
            .await?
            .map(|i| i.volumes)
            .unwrap_or_default()
            .into_iter()
            .filter(|path| !service.volumes.iter().any(|m| m.target.as_str() == path))
            .collect();
        let mut spec = self.service_spec(names, plan, service, state, files)?;
        for path in &image_volumes {
            let volume = image_volume(service, path);
            if apply {
                let mut labels = names.labels(self);
                labels.insert(VOLUME.to_owned(), volume.clone());
                docker
                    .ensure_volume(&names.volume(&volume), &labels)
                    .await?;
            }
            spec.mounts.push(Mount::Volume {
                name: names.volume(&volume),
                target: path.clone(),
                read_only: false,
            });
        }
        spec.image = image;
        let hash = config_hash(&spec);
        spec.labels.insert(CONFIG_HASH.to_owned(), hash);
        Ok(spec)
    }

    /// Waits (at most [`PORT_LIMIT`]) until the service's routed port
    /// accepts connections at `address`: a container is "up" to Docker
    /// before its server listens, and the edge must not switch to it then.
    async fn wait_for_routes_port(&self, id: StackId, service: &str, address: Option<&str>) {
        let Some(ip) = address.and_then(|a| a.parse::<std::net::IpAddr>().ok()) else {
            return;
        };
        let Ok(routes) = berth_store::stacks::routes(self.store(), id).await else {
            return;
        };
        let Some(port) = routes.iter().find(|r| r.service == service).map(|r| r.port) else {
            return;
        };
        let addr = std::net::SocketAddr::new(ip, port);
        let started = Instant::now();
        while started.elapsed() < PORT_LIMIT {
            let connect = tokio::net::TcpStream::connect(addr);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), connect).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::warn!(service, %addr, "the service does not accept connections yet; routing to it anyway");
    }

    /// The image, pulled when it is not here yet.
    async fn ensure_image(&self, image: &str) -> Result<(), DeployError> {
        if self.docker().image_exists(image).await? {
            return Ok(());
        }
        let mut pull = self.docker().pull_image(image);
        while let Some(progress) = pull.next().await {
            progress?;
        }
        Ok(())
    }

    /// Waits until `service` meets `condition`; a service that exits
    /// otherwise, turns unhealthy or takes too long stops the install.
    async fn wait_for(
        &self,
        names: &Names<'_>,
        service: &str,
        condition: Condition,
        plan: &Plan,
    ) -> Result<(), DeployError> {
        let one_shot = is_one_shot(service, plan);
        self.wait_for_container(&names.container(service), service, condition, one_shot)
            .await
    }

    /// Waits until the container `container` (of `service`) meets `condition`.
    async fn wait_for_container(
        &self,
        container: &str,
        service: &str,
        condition: Condition,
        one_shot: bool,
    ) -> Result<(), DeployError> {
        let started = Instant::now();
        let fail = |why: String| DeployError::Conflict(format!("service {service} {why}"));
        loop {
            let info = self.docker().inspect_container(container).await?;
            let Some(info) = info else {
                return Err(fail("has no container".to_owned()));
            };
            let exited = !info.state.is_running()
                && matches!(
                    info.state,
                    berth_docker::ContainerState::Exited | berth_docker::ContainerState::Dead
                );
            match condition {
                Condition::ServiceStarted if info.state.is_running() => return Ok(()),
                Condition::ServiceStarted if exited && one_shot && info.exit_code == Some(0) => {
                    return Ok(());
                }
                Condition::ServiceHealthy if info.state.is_running() => {
                    match info.health.as_deref() {
                        Some("healthy") | None => return Ok(()),
                        Some("unhealthy") => {
                            return Err(fail(format!(
                                "is unhealthy: {}",
                                self.last_log_line(&info).await
                            )));
                        }
                        _ => {}
                    }
                }
                Condition::ServiceCompletedSuccessfully if exited => {
                    return match info.exit_code {
                        Some(0) => Ok(()),
                        code => Err(fail(format!(
                            "exited with code {}: {}",
                            code.unwrap_or(-1),
                            self.last_log_line(&info).await
                        ))),
                    };
                }
                _ if exited => {
                    return Err(fail(format!(
                        "exited with code {}: {}",
                        info.exit_code.unwrap_or(-1),
                        self.last_log_line(&info).await
                    )));
                }
                _ => {}
            }
            if started.elapsed() > WAIT_LIMIT {
                return Err(fail(format!(
                    "did not become {} within {} s",
                    match condition {
                        Condition::ServiceStarted => "started",
                        Condition::ServiceHealthy => "healthy",
                        Condition::ServiceCompletedSuccessfully => "done",
                    },
                    WAIT_LIMIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn last_log_line(&self, info: &ContainerInfo) -> String {
        self.docker()
            .logs_tail(&info.id, 1)
            .await
            .ok()
            .and_then(|l| l.into_iter().next())
            .unwrap_or_else(|| "(no output)".to_owned())
    }

    /// Where a stack's relative bind mounts and files live on the host.
    pub(super) fn stack_dir(&self, names: &Names<'_>) -> PathBuf {
        self.options()
            .volumes_root
            .join(names.project.as_str())
            .join(names.stack.as_str())
    }

    /// Secrets and configs made from values: kept under the data dir, not
    /// beside the user's data.
    pub(super) fn stack_secrets_dir(&self, names: &Names<'_>) -> PathBuf {
        self.data_dir()
            .join("stacks")
            .join(names.project.as_str())
            .join(names.stack.as_str())
    }

    /// Writes what the services mount as files (Coolify's `content:`,
    /// secrets and configs from values) and makes the directories relative
    /// bind mounts need. Returns the host path of each secret and config.
    pub(super) fn write_stack_files(
        &self,
        names: &Names<'_>,
        plan: &Plan,
        write: bool,
    ) -> Result<BTreeMap<String, PathBuf>, DeployError> {
        let io = |path: &Path, e: std::io::Error| {
            DeployError::Tool(format!("cannot write {}: {e}", path.display()))
        };
        let dir = self.stack_dir(names);
        for service in plan.services.iter().filter(|_| write) {
            for mount in &service.volumes {
                let MountSource::Bind {
                    path,
                    content,
                    mode,
                    is_directory,
                } = &mount.source
                else {
                    continue;
                };
                let host = self.bind_source(names, path)?;
                if let Some(content) = content {
                    // Written as a file, never as a directory.
                    if host.is_dir() {
                        return Err(DeployError::Invalid {
                            field: "compose",
                            message: format!(
                                "{} must be a file, but a directory is there",
                                host.display()
                            ),
                        });
                    }
                    if let Some(parent) = host.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                    }
                    std::fs::write(&host, content).map_err(|e| io(&host, e))?;
                    set_mode(&host, mode.unwrap_or(0o644)).map_err(|e| io(&host, e))?;
                } else if *is_directory || !host.exists() {
                    // Docker would make a missing source as a root-owned
                    // directory anyway; berth makes it itself, inside the root.
                    if host.starts_with(&dir) || *is_directory {
                        std::fs::create_dir_all(&host).map_err(|e| io(&host, e))?;
                    }
                }
            }
        }
        let mut files = BTreeMap::new();
        let secrets = self.stack_secrets_dir(names);
        for (kind, objects) in [("secrets", &plan.secrets), ("configs", &plan.configs)] {
            for object in objects {
                let path = match &object.source {
                    FileSource::File(rel) => self.bind_source(names, rel)?,
                    FileSource::Environment(_) | FileSource::Content { .. } if !write => {
                        secrets.join(kind).join(&object.name)
                    }
                    FileSource::Environment(var) => {
                        let value = plan
                            .services
                            .iter()
                            .find_map(|s| s.environment.get(var))
                            .cloned()
                            .or_else(|| std::env::var(var).ok())
                            .unwrap_or_default();
                        write_private(&secrets.join(kind).join(&object.name), &value)
                            .map_err(|e| io(&secrets, e))?
                    }
                    FileSource::Content { text } => {
                        write_private(&secrets.join(kind).join(&object.name), text)
                            .map_err(|e| io(&secrets, e))?
                    }
                };
                files.insert(format!("{kind}/{}", object.name), path);
            }
        }
        Ok(files)
    }

    /// A bind mount's host path: relative paths live in the stack's
    /// directory under the volumes root and may not climb out of it.
    fn bind_source(&self, names: &Names<'_>, path: &str) -> Result<PathBuf, DeployError> {
        let p = Path::new(path);
        if p.is_absolute() {
            return Ok(p.to_path_buf());
        }
        let mut out = self.stack_dir(names);
        for c in p.components() {
            match c {
                Component::Normal(part) => out.push(part),
                Component::CurDir => {}
                _ => {
                    return Err(DeployError::Invalid {
                        field: "compose",
                        message: format!(
                            "the bind path {path:?} leaves the stack's directory; use a path inside it or an absolute path (which needs a confirmation)"
                        ),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The container a service runs in, with the hash of all of it.
    fn service_spec(
        &self,
        names: &Names<'_>,
        plan: &Plan,
        service: &Service,
        state: &StackState,
        files: &BTreeMap<String, PathBuf>,
    ) -> Result<ContainerSpec, DeployError> {
        let routed = plan.routes.iter().any(|r| r.service == service.name);
        let mut labels = names.labels(self);
        labels.extend(service.labels.clone());
        labels.insert(SERVICE.to_owned(), service.name.clone());
        let mut mounts = Vec::new();
        let mut tmpfs: BTreeMap<String, String> = service
            .tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((path, opts)) => (path.to_owned(), opts.to_owned()),
                None => (t.clone(), String::new()),
            })
            .collect();
        for m in &service.volumes {
            let target = m.target.as_str().to_owned();
            match &m.source {
                MountSource::Volume { volume, .. } | MountSource::Anonymous { volume } => {
                    mounts.push(Mount::Volume {
                        name: names.volume(volume.as_str()),
                        target,
                        read_only: m.read_only,
                    });
                }
                MountSource::Bind { path, .. } => mounts.push(Mount::Bind {
                    source: self.bind_source(names, path)?.display().to_string(),
                    target,
                    read_only: m.read_only,
                }),
                MountSource::Tmpfs { size } => {
                    tmpfs.insert(
                        target,
                        size.map(|s| format!("size={s}")).unwrap_or_default(),
                    );
                }
            }
        }
        for (kind, list, default_dir) in [
            ("secrets", &service.secrets, "/run/secrets/"),
            ("configs", &service.configs, "/"),
        ] {
            for f in list {
                let Some(source) = files.get(&format!("{kind}/{}", f.source)) else {
                    continue;
                };
                let target = if f.target.starts_with('/') {
                    f.target.clone()
                } else {
                    format!("{default_dir}{}", f.target)
                };
                mounts.push(Mount::Bind {
                    source: source.display().to_string(),
                    target,
                    read_only: true,
                });
            }
        }
        let mut env: Vec<(String, String)> = Vec::new();
        for file in &service.env_files {
            let path = self.bind_source(names, &file.path)?;
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    for line in text.lines() {
                        let line = line.trim();
                        if line.is_empty() || line.starts_with('#') {
                            continue;
                        }
                        if let Some((k, v)) = line.split_once('=') {
                            env.push((k.trim().to_owned(), v.trim().to_owned()));
                        }
                    }
                }
                Err(_) if !file.required => {}
                Err(e) => {
                    return Err(DeployError::Invalid {
                        field: "compose",
                        message: format!(
                            "service {}: env_file {} cannot be read: {e}",
                            service.name,
                            path.display()
                        ),
                    });
                }
            }
        }
        env.retain(|(k, _)| !service.environment.contains_key(k));
        env.extend(service.environment.clone());
        let publish = state
            .publish
            .iter()
            .filter(|p| p.service == service.name)
            .flat_map(|p| {
                let protocols: Vec<String> = service
                    .ports
                    .iter()
                    .filter(|m| (m.target..=m.target_end).contains(&p.port))
                    .map(|m| m.protocol.clone())
                    .collect();
                let protocols = if protocols.is_empty() {
                    vec!["tcp".to_owned()]
                } else {
                    protocols
                };
                let published = service
                    .ports
                    .iter()
                    .find(|m| m.target == p.port)
                    .and_then(|m| m.published.as_deref())
                    .and_then(|s| s.parse::<u16>().ok());
                protocols.into_iter().map(move |protocol| PublishedPort {
                    host_ip: if p.public { "0.0.0.0" } else { "127.0.0.1" }.to_owned(),
                    host_port: published,
                    container_port: p.port,
                    protocol,
                })
            })
            .collect();
        let one_shot = is_one_shot(&service.name, plan);
        let restart = service.restart.unwrap_or(if one_shot {
            RestartPolicy::No
        } else {
            RestartPolicy::UnlessStopped
        });
        let host_network = service.network_mode.as_deref() == Some("host");
        let mut aliases = vec![service.name.clone()];
        aliases.extend(service.aliases.clone());
        if let Some(h) = &service.hostname {
            aliases.push(h.clone());
        }
        let options = ContainerOptions {
            entrypoint: service.entrypoint.clone(),
            user: service.user.clone(),
            working_dir: service.working_dir.clone(),
            hostname: service.hostname.clone(),
            extra_networks: if routed && !host_network {
                vec![(
                    network_name(names.project),
                    vec![names.project_alias(&service.name)],
                )]
            } else {
                Vec::new()
            },
            publish,
            healthcheck: service.healthcheck.as_ref().map(docker_healthcheck),
            cap_add: service.cap_add.clone(),
            cap_drop: service.cap_drop.clone(),
            privileged: service.privileged,
            read_only: service.read_only,
            init: service.init,
            tty: service.tty,
            open_stdin: service.stdin_open,
            network_mode: service.network_mode.clone(),
            pid_mode: service.pid.clone(),
            security_opt: service.security_opt.clone(),
            devices: service.devices.clone(),
            ulimits: service
                .ulimits
                .iter()
                .map(|(name, u)| (name.clone(), u.soft, u.hard))
                .collect(),
            shm_size: service.shm_size.and_then(|s| i64::try_from(s).ok()),
            tmpfs,
            sysctls: service.sysctls.clone(),
            stop_signal: service.stop_signal.clone(),
            stop_timeout_secs: service
                .stop_grace_period_ms
                .map(|ms| i64::try_from(ms / 1000).unwrap_or(i64::MAX)),
            logging: service
                .logging
                .as_ref()
                .and_then(|l| Some((l.driver.clone()?, l.options.clone()))),
            pids_limit: service.limits.pids,
        };
        Ok(ContainerSpec {
            name: names.container(&service.name),
            image: service
                .image
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            cmd: service.command.clone(),
            env,
            labels,
            network: if host_network {
                String::new()
            } else {
                names.network()
            },
            network_aliases: aliases,
            container_port: 0,
            restart,
            memory_bytes: service.limits.memory.and_then(|m| i64::try_from(m).ok()),
            nano_cpus: service.limits.cpus.map(|c| (c * 1e9) as i64),
            mounts,
            options,
        })
    }
}

/// The stack volume for a path a service's image declares with `VOLUME`:
/// `<service>-<path>` (`db-var-lib-postgresql-data`).
fn image_volume(service: &Service, path: &str) -> String {
    let name = berth_core::MountPath::parse(path)
        .map(|p| berth_core::VolumeName::for_path(&p).to_string())
        .unwrap_or_else(|_| "data".to_owned());
    format!(
        "{}-{name}",
        service.name.replace('_', "-").to_ascii_lowercase()
    )
}

/// How a source's file is read: a catalogue template is berth's format;
/// anything else says what it is by its content.
fn format_of(source: &StackSource, text: &str) -> Format {
    match source {
        StackSource::Template { .. } => Format::Berth,
        _ => Format::detect(text),
    }
}

/// A hash of everything in a container's configuration (environment values
/// included: a changed password must recreate the service).
fn config_hash(spec: &ContainerSpec) -> String {
    let mut h = Sha256::new();
    h.update(format!("{spec:?}"));
    for (k, v) in &spec.env {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

fn docker_healthcheck(h: &Healthcheck) -> berth_docker::Healthcheck {
    let ns = |ms: Option<u64>| {
        ms.map_or(0, |ms| {
            i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000) * 1_000_000
        })
    };
    berth_docker::Healthcheck {
        test: if h.disable {
            vec!["NONE".to_owned()]
        } else {
            h.test.clone()
        },
        interval_ns: ns(h.interval_ms),
        timeout_ns: ns(h.timeout_ms),
        retries: h
            .retries
            .map_or(0, |r| i64::try_from(r).unwrap_or(i64::MAX)),
        start_period_ns: ns(h.start_period_ms),
        start_interval_ns: ns(h.start_interval_ms),
    }
}

/// How long a service may take to stop before it is killed.
fn stop_grace(service: &Service) -> i32 {
    service
        .stop_grace_period_ms
        .map_or(10, |ms| i32::try_from(ms / 1000).unwrap_or(i32::MAX))
}

/// A service another waits for with `service_completed_successfully`: it
/// runs once, and exiting 0 is its success.
pub(super) fn is_one_shot(service: &str, plan: &Plan) -> bool {
    plan.services.iter().any(|s| {
        s.depends_on
            .iter()
            .any(|d| d.service == service && d.condition == Condition::ServiceCompletedSuccessfully)
    })
}

/// What a service must reach before the stack counts as running.
fn settled(service: &Service, plan: &Plan) -> Condition {
    if is_one_shot(&service.name, plan) {
        Condition::ServiceCompletedSuccessfully
    } else {
        Condition::ServiceStarted
    }
}

/// A one-shot container that finished well: not started again.
fn is_done(c: &ContainerInfo) -> bool {
    c.exit_code == Some(0)
        && c.labels.contains_key(CONFIG_HASH)
        && matches!(c.state, berth_docker::ContainerState::Exited)
}

/// The services with each one after those it depends on (the plan has
/// refused loops already), in file order otherwise.
pub(super) fn start_order(services: &[Service]) -> Vec<&Service> {
    let mut out: Vec<&Service> = Vec::with_capacity(services.len());
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    while out.len() < services.len() {
        let before = out.len();
        for s in services {
            if placed.contains(s.name.as_str()) {
                continue;
            }
            let ready = s.depends_on.iter().all(|d| {
                placed.contains(d.service.as_str()) || !services.iter().any(|o| o.name == d.service)
            });
            if ready {
                placed.insert(&s.name);
                out.push(s);
            }
        }
        if out.len() == before {
            // A loop the plan missed: start the rest in file order.
            out.extend(
                services
                    .iter()
                    .filter(|s| !placed.contains(s.name.as_str())),
            );
            break;
        }
    }
    out
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Writes a secret for a container: the directory only root can enter,
/// the file readable by the container's user (which may not be root).
fn write_private(path: &Path, value: &str) -> std::io::Result<PathBuf> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
        set_mode(parent, 0o711)?;
    }
    std::fs::write(path, value)?;
    set_mode(path, 0o444)?;
    Ok(path.to_path_buf())
}

impl Runtime {
    /// Marks the stack's outcome and rebuilds the routes.
    pub(super) async fn stack_settled(&self, id: StackId, outcome: Result<(), DeployError>) {
        let (status, message) = match &outcome {
            Ok(()) => (StackStatus::Running, None),
            Err(e) => (StackStatus::Failed, Some(e.to_string())),
        };
        if let Err(e) = &outcome {
            tracing::warn!(stack.id = %id, error = %e, "stack did not come up");
        }
        if let Err(e) =
            berth_store::stacks::set_status(self.store(), id, status, message.as_deref()).await
        {
            tracing::warn!(stack.id = %id, error = %e, "could not record the stack's status");
        }
        self.routes_changed().await;
    }
}
