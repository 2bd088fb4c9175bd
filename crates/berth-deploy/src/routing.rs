//! The edge's route table, rebuilt from the store whenever an app's
//! container, port or status changes, or a domain is added or removed.
//!
//! A full rebuild reads every app and domain: with a thousand apps that is a
//! few milliseconds, and it cannot drift the way incremental updates can.
//! Rebuilds are serialized, so a slow one never swaps in an older picture
//! after a newer one.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_core::{
    App, AppId, AppName, AppStatus, Domain, DomainName, DomainTarget, NewDomain, PathPrefix,
    ProjectName,
};
use berth_edge::{Edge, Route, Target};
use berth_store::apps;
use berth_store::domains;

use crate::{DeployError, Domains, Runtime};

/// What the engine needs to keep the edge's routes current.
pub(crate) struct EdgeLink {
    edge: Arc<Edge>,
    base_domain: DomainName,
    /// The dashboard's own listener, where its domain's route points.
    dashboard: SocketAddr,
    rebuild: tokio::sync::Mutex<()>,
}

impl Runtime {
    /// Connects the engine to the edge and publishes the first route table.
    /// Apps get the default host `<app>.<project>.<base_domain>`.
    pub async fn attach_edge(
        &self,
        edge: Arc<Edge>,
        base_domain: DomainName,
        dashboard: SocketAddr,
    ) -> Result<(), DeployError> {
        let link = EdgeLink {
            edge,
            base_domain,
            dashboard,
            rebuild: tokio::sync::Mutex::new(()),
        };
        if self.inner.edge.set(link).is_err() {
            tracing::warn!("the edge was attached twice; keeping the first");
        }
        self.refresh_routes().await
    }

    /// Waits until the edge has nothing under way to `upstream`, at most `max`.
    pub(crate) async fn drain_address(
        &self,
        upstream: SocketAddr,
        max: std::time::Duration,
    ) -> bool {
        match self.inner.edge.get() {
            Some(link) => link.edge.drain(upstream, max).await,
            None => true,
        }
    }

    /// Holds the requests of the edge route `name` (or to `upstream`) until
    /// the guard is dropped, each at most `limit`; `None` without an edge.
    pub(crate) fn hold_route(
        &self,
        name: &str,
        upstream: Option<SocketAddr>,
        limit: std::time::Duration,
    ) -> Option<berth_edge::HoldGuard> {
        Some(self.inner.edge.get()?.edge.hold(name, upstream, limit))
    }

    /// Holds the app's requests at the edge (a `recreate` switch) until the
    /// guard is dropped, each at most `limit`; `None` without an edge.
    pub(crate) fn hold_requests(
        &self,
        app: &App,
        serving: &berth_docker::ContainerInfo,
        limit: std::time::Duration,
    ) -> Option<berth_edge::HoldGuard> {
        let link = self.inner.edge.get()?;
        let upstream = self.upstream_of(app, serving).or(app.upstream);
        Some(link.edge.hold(&route_name(app), upstream, limit))
    }

    /// Rebuilds the edge's whole route table from the store and swaps it in.
    pub async fn refresh_routes(&self) -> Result<(), DeployError> {
        let Some(link) = self.inner.edge.get() else {
            return Ok(());
        };
        let _one_at_a_time = link.rebuild.lock().await;
        let apps = apps::list_all(self.store()).await?;
        let mut domains = domains::list_all(self.store()).await?;
        // A static site recorded before the static root existed, or whose
        // directory has since been moved or linked elsewhere, is not served.
        domains.retain(|d| match &d.target {
            DomainTarget::Static { dir, .. } => match self.check_static_dir(dir) {
                Ok(_) => true,
                Err(err) => {
                    tracing::warn!(domain.host = %d.host, domain.path = %d.path_prefix, error = %err, "static site not served");
                    false
                }
            },
            DomainTarget::App => true,
        });
        let dashboard = domains::dashboard_domain(self.store()).await?;
        let mut routes = build_routes(
            &apps,
            &domains,
            &link.base_domain,
            dashboard.as_ref().map(|d| (d, link.dashboard)),
        );
        // A stack's services are reached at their address on the stack's
        // network: nothing of theirs is published on the host.
        for (project, stack, r) in berth_store::stacks::all_routes(self.store()).await? {
            if dashboard.as_ref().is_some_and(|d| d.as_str() == r.host) {
                continue;
            }
            let upstream = r
                .address
                .as_deref()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, r.port));
            routes.push(Route {
                path_prefix: r.path.clone(),
                ..Route::app(
                    &r.host,
                    &crate::naming::stack_route_name(&project, &stack, &r.service),
                    upstream,
                )
            });
        }
        tracing::debug!(routes = routes.len(), "edge routes rebuilt");
        link.edge.set_routes(routes);
        Ok(())
    }

    /// Rebuilds the routes after a change whose own work has succeeded: a
    /// failure here is logged, not returned, so it cannot undo that work.
    pub(crate) async fn routes_changed(&self) {
        if let Err(err) = self.refresh_routes().await {
            tracing::warn!(error = %err, "could not rebuild the edge routes");
        }
    }
}

impl Domains {
    /// The host every app answers to without any domain set up.
    pub fn default_host(&self, project: &ProjectName, app: &AppName) -> Option<DomainName> {
        let link = self.inner.edge.get()?;
        default_host(&link.base_domain, project, app)
    }

    /// The base domain apps' default hosts live under (`None` without an edge).
    pub fn base_domain(&self) -> Option<DomainName> {
        Some(self.inner.edge.get()?.base_domain.clone())
    }

    /// Where `host` + `path` can be opened through the edge, for links.
    pub fn site_url(&self, host: &str, path: &str) -> Option<String> {
        Some(self.inner.edge.get()?.edge.site_url(host, path))
    }

    /// The app and its domains.
    pub async fn list_domains(
        &self,
        project: &ProjectName,
        app: &AppName,
    ) -> Result<(App, Vec<Domain>), DeployError> {
        let app = self.app(project, app).await?;
        let domains = domains::list_for_app(self.store(), app.id).await?;
        Ok((app, domains))
    }

    /// Adds a domain (or a static site) to the app and routes it at once.
    pub async fn add_domain(
        &self,
        project: &ProjectName,
        app: &AppName,
        new: NewDomain,
    ) -> Result<Domain, DeployError> {
        let app = self.app(project, app).await?;
        let mut new = new;
        if let DomainTarget::Static { dir, .. } = &mut new.target {
            // Kept resolved: what was checked is what is served.
            *dir = self.check_static_dir(dir)?;
        }
        // Any path there would receive the dashboard's session cookie.
        if domains::dashboard_domain(self.store()).await?.as_ref() == Some(&new.host) {
            return Err(DeployError::Invalid {
                field: "host",
                message: format!(
                    "{} is the dashboard's domain: no app or static site can take any path on it",
                    new.host
                ),
            });
        }
        let domain = domains::add(self.store(), app.id, &new).await?;
        tracing::info!(project.name = %project, app.name = %app.name, domain.host = %domain.host, domain.path = %domain.path_prefix, "domain added");
        self.routes_changed().await;
        Ok(domain)
    }

    /// Removes the app's routes for `host` (only the one at `prefix` when given).
    pub async fn remove_domain(
        &self,
        project: &ProjectName,
        app: &AppName,
        host: &DomainName,
        prefix: Option<&PathPrefix>,
    ) -> Result<(), DeployError> {
        let app = self.app(project, app).await?;
        domains::remove(self.store(), app.id, host, prefix).await?;
        tracing::info!(project.name = %project, app.name = %app.name, domain.host = %host, "domain removed");
        self.routes_changed().await;
        Ok(())
    }

    pub async fn dashboard_domain(&self) -> Result<Option<DomainName>, DeployError> {
        Ok(domains::dashboard_domain(self.store()).await?)
    }

    /// Serves the dashboard on `domain` through the edge (or stops, with `None`).
    pub async fn set_dashboard_domain(
        &self,
        domain: Option<&DomainName>,
    ) -> Result<(), DeployError> {
        if let Some(host) = domain {
            let taken = domains::list_all(self.store()).await?;
            if let Some(used) = taken.iter().find(|d| &d.host == host) {
                return Err(DeployError::Invalid {
                    field: "domain",
                    message: format!(
                        "{host} is a domain of the app {}/{}: remove it there first, the dashboard's domain must be its own",
                        used.project, used.app
                    ),
                });
            }
        }
        domains::set_dashboard_domain(self.store(), domain).await?;
        self.routes_changed().await;
        Ok(())
    }
}

impl Runtime {
    /// A static site's directory, resolved: it must exist and lie under the
    /// static root, away from the data dir and system directories (the edge
    /// runs as root and would serve whatever it is given).
    pub(crate) fn check_static_dir(&self, dir: &Path) -> Result<PathBuf, DeployError> {
        let invalid = |message: String| DeployError::Invalid {
            field: "static_dir",
            message,
        };
        let root = &self.options().static_root;
        if !dir.is_absolute() {
            return Err(invalid(format!(
                "must be an absolute path under the static root {}",
                root.display()
            )));
        }
        let resolved = std::fs::canonicalize(dir)
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| {
                invalid(format!(
                    "{} is not a directory on this server",
                    dir.display()
                ))
            })?;
        let rules = berth_core::BindRules {
            root: std::fs::canonicalize(root).unwrap_or_else(|_| root.clone()),
            root_name: "static root",
            data_dir: self.data_dir(),
        };
        for path in [dir, resolved.as_path()] {
            rules.check(path).map_err(|refusal| {
                invalid(format!(
                    "{refusal}. Static sites are served from under the static root."
                ))
            })?;
        }
        Ok(resolved)
    }
}

pub(crate) fn default_host(
    base: &DomainName,
    project: &ProjectName,
    app: &AppName,
) -> Option<DomainName> {
    base.prepend(project.as_str())
        .and_then(|d| d.prepend(app.as_str()))
        .ok()
}

/// The name the edge knows an app by (its error pages show it, and holds
/// go by it): `<project>/<app>`, so same-named apps of two projects differ.
fn route_name(app: &App) -> String {
    format!("{}/{}", app.project, app.name)
}

/// The route table for the edge: each app's default host first, then the
/// domains users added (which win over a default host with the same name),
/// then the dashboard's domain, which no other route shares (rows from
/// before that rule are left out).
pub fn build_routes(
    apps: &[App],
    domains: &[Domain],
    base_domain: &DomainName,
    dashboard: Option<(&DomainName, SocketAddr)>,
) -> Vec<Route> {
    let upstream = |app: &App| {
        // Rows from before `upstream` existed still have their published port.
        app.upstream
            .or_else(|| {
                app.host_port
                    .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            })
            .filter(|_| app.status == AppStatus::Running)
    };
    let by_id: HashMap<AppId, &App> = apps.iter().map(|a| (a.id, a)).collect();
    let mut routes = Vec::with_capacity(apps.len() + domains.len() + 1);
    for app in apps {
        if let Some(host) = default_host(base_domain, &app.project, &app.name) {
            routes.push(Route::app(host.as_str(), &route_name(app), upstream(app)));
        }
    }
    for domain in domains {
        let target = match &domain.target {
            DomainTarget::App => {
                let app = by_id.get(&domain.app_id);
                Target::App {
                    name: app.map_or_else(|| domain.app.to_string(), |a| route_name(a)),
                    upstream: app.and_then(|a| upstream(a)),
                }
            }
            DomainTarget::Static { dir, spa_fallback } => Target::Static {
                dir: dir.clone(),
                spa_fallback: *spa_fallback,
            },
        };
        routes.push(Route {
            host: domain.host.to_string(),
            path_prefix: domain.path_prefix.to_string(),
            strip_prefix: domain.strip_prefix,
            target,
            redirect_https: domain.redirect_https,
            hsts: domain.hsts,
        });
    }
    if let Some((host, addr)) = dashboard {
        // Nothing else may take a path on the dashboard's host.
        routes.retain(|r| r.host != host.as_str());
        // HSTS: once a browser has seen the dashboard over HTTPS it never
        // sends a password over plain HTTP. Plain HTTP is redirected by the
        // edge once the certificate exists, and by the dashboard before.
        routes.push(Route {
            hsts: true,
            ..Route::app(host.as_str(), "the berth dashboard", Some(addr))
        });
    }
    routes
}
