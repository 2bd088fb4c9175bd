//! Volumes: what an app mounts, the Docker volumes behind them, and the
//! Storage page's view of every volume berth made.
//!
//! Nothing here removes a volume unless the user asked for exactly that
//! volume (or for an app "with its volumes"), with the name typed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use berth_core::{
    App, AppName, AppVolume, DeployStrategy, HostPath, MountPath, OwnedVolume, ProjectName,
    ResourceKind, VolumeName, VolumeSource, docker_volume_name,
};
use berth_docker::{ContainerInfo, Mount, MountKind};
use berth_store::apps;
use berth_store::volumes;

use crate::naming::{APP, APP_ID, INSTANCE, KIND, MANAGED, PROJECT, RESOURCE, SERVICE, VOLUME};
use crate::{DeployError, Runtime, Storage};

/// A mount the user asks for: a named volume, or a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    pub name: VolumeName,
    /// `None`: a named Docker volume; `Some`: a bind mount of this host path.
    pub host_path: Option<HostPath>,
    pub target: MountPath,
    pub read_only: bool,
}

/// One volume as the Storage page shows it.
#[derive(Debug, Clone)]
pub struct StorageVolume {
    /// The Docker volume's name, or the host path of a bind mount.
    pub name: String,
    pub bind: bool,
    /// The app that mounts it now; `None` when it is orphaned.
    pub owner: Option<VolumeOwner>,
    /// The project it was made in (from its labels); attach only within it.
    pub project: Option<String>,
    /// The app it was made for, and its name there (from its labels).
    pub made_for: Option<String>,
    pub made_as: Option<String>,
    pub size_bytes: Option<u64>,
    /// How many containers (running or not) mount it.
    pub containers: u64,
    /// The stack it belongs to (`<project>/<stack>`), while that stack is installed.
    pub stack: Option<String>,
    /// The managed database it holds (`<project>/<db>`), while that database exists.
    pub database: Option<String>,
}

impl StorageVolume {
    pub fn orphaned(&self) -> bool {
        self.owner.is_none() && self.stack.is_none() && self.database.is_none()
    }

    pub fn in_use(&self) -> bool {
        self.containers > 0
    }
}

#[derive(Debug, Clone)]
pub struct VolumeOwner {
    pub project: ProjectName,
    pub app: AppName,
    pub volume: AppVolume,
}

/// What deleting an app does with its volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeChoice {
    /// They stay, orphaned, on the Storage page.
    Keep,
    /// The app's named Docker volumes are removed (host directories of
    /// bind mounts are never removed).
    Delete,
}

/// The mounts of one container about to be created.
pub(crate) struct PreparedMounts {
    pub mounts: Vec<Mount>,
    /// Mount paths of named volumes created just now (empty): where the data
    /// of a container made before volumes existed moves in.
    pub fresh_targets: Vec<String>,
    pub count: usize,
}

impl Storage {
    /// The app's mounts, by mount path.
    pub async fn app_volumes(&self, app: &App) -> Result<Vec<AppVolume>, DeployError> {
        Ok(volumes::list_for_app(self.store(), app.id).await?)
    }

    /// The strategy the app's next deployment uses, and why.
    pub async fn app_strategy(&self, app: &App) -> Result<(DeployStrategy, String), DeployError> {
        let settings = self.deployments().deploy_settings(app).await?;
        let count = volumes::list_for_app(self.store(), app.id).await?.len();
        Ok(DeployStrategy::choose(settings.strategy, count))
    }

    /// Adds a mount to an app; it takes effect with the next deployment.
    pub async fn add_volume(
        &self,
        project: &ProjectName,
        name: &AppName,
        request: VolumeRequest,
        confirm_dangerous: bool,
    ) -> Result<App, DeployError> {
        let app = self.app(project, name).await?;
        let existing = self.app_volumes(&app).await?;
        if existing.iter().any(|v| v.name == request.name) {
            return Err(invalid(format!(
                "the app already has a volume named {}",
                request.name
            )));
        }
        if existing.iter().any(|v| v.target == request.target) {
            return Err(invalid(format!(
                "the app already mounts a volume at {}",
                request.target
            )));
        }
        let dangerous = app.dangerous_mounts || confirm_dangerous;
        self.check_volumes(std::slice::from_ref(&request), dangerous)?;
        if confirm_dangerous && !app.dangerous_mounts {
            apps::set_dangerous_mounts(self.store(), app.id, true).await?;
        }
        self.record_volumes(&app, std::slice::from_ref(&request))
            .await?;
        tracing::info!(project.name = %project, app.name = %name, volume.name = %request.name, volume.target = %request.target, "volume added");
        Ok(apps::find_by_id(self.store(), app.id).await?)
    }

    /// Stops mounting a volume in the app (from its next deployment). The
    /// volume itself stays, orphaned, on the Storage page.
    pub async fn detach_volume(
        &self,
        project: &ProjectName,
        name: &AppName,
        volume: &VolumeName,
    ) -> Result<(), DeployError> {
        let app = self.app(project, name).await?;
        if !volumes::remove(self.store(), app.id, volume).await? {
            return Err(DeployError::NotFound { what: "volume" });
        }
        tracing::info!(project.name = %project, app.name = %name, volume.name = %volume, "volume detached (kept)");
        Ok(())
    }

    /// Every volume berth made (and every bind mount an app has), with its
    /// owner, size and whether a container uses it.
    pub async fn list_storage(&self) -> Result<Vec<StorageVolume>, DeployError> {
        let rows = volumes::list_all(self.store()).await?;
        let mut by_source: HashMap<String, OwnedVolume> = HashMap::new();
        let mut out = Vec::new();
        for row in rows {
            match &row.volume.source {
                VolumeSource::Volume(name) => {
                    by_source.insert(name.clone(), row);
                }
                VolumeSource::Bind(path) => out.push(StorageVolume {
                    name: path.to_string(),
                    bind: true,
                    project: Some(row.project.to_string()),
                    made_for: Some(row.app.to_string()),
                    made_as: Some(row.volume.name.to_string()),
                    owner: Some(VolumeOwner {
                        project: row.project,
                        app: row.app,
                        volume: row.volume,
                    }),
                    size_bytes: None,
                    containers: 0,
                    stack: None,
                    database: None,
                }),
            }
        }
        let instance = self.instance_id().to_owned();
        let docker_volumes = self
            .docker()
            .list_volumes(&[(MANAGED, "true"), (INSTANCE, instance.as_str())])
            .await?;
        let usage = self.docker().volume_usage().await.unwrap_or_default();
        let stacks: Vec<String> = berth_store::stacks::list_all(self.store())
            .await?
            .into_iter()
            .map(|s| format!("{}/{}", s.project, s.name))
            .collect();
        let dbs: Vec<String> = berth_store::databases::list_all(self.store())
            .await?
            .into_iter()
            .map(|d| format!("{}/{}", d.project, d.name))
            .collect();
        for v in docker_volumes {
            let stack = stack_of(&v.labels).filter(|s| stacks.contains(s));
            let database = database_of(&v.labels).filter(|d| dbs.contains(d));
            let owner = by_source.remove(&v.name).map(|row| VolumeOwner {
                project: row.project,
                app: row.app,
                volume: row.volume,
            });
            let use_ = usage.get(&v.name);
            out.push(StorageVolume {
                project: v.labels.get(PROJECT).cloned(),
                // A database's volume names its database as the resource.
                made_for: v.labels.get(APP).or(v.labels.get(RESOURCE)).cloned(),
                made_as: v.labels.get(VOLUME).cloned(),
                size_bytes: use_.and_then(|u| u.size_bytes),
                containers: use_.map(|u| u.containers).unwrap_or(0),
                bind: false,
                name: v.name,
                owner,
                stack,
                database,
            });
        }
        out.sort_by(|a, b| {
            (a.project.as_deref(), a.name.as_str()).cmp(&(b.project.as_deref(), b.name.as_str()))
        });
        Ok(out)
    }

    /// One volume berth made, without its size (measuring every volume is
    /// for the Storage page): its owner and the containers that use it.
    async fn find_volume(&self, name: &str) -> Result<StorageVolume, DeployError> {
        let not_found = || DeployError::NotFound { what: "volume" };
        let volume = self
            .docker()
            .inspect_volume(name)
            .await?
            .ok_or_else(not_found)?;
        // Only this installation's volumes are berth's to delete or attach.
        if volume.labels.get(INSTANCE).map(String::as_str) != Some(self.instance_id()) {
            return Err(not_found());
        }
        let owner = volumes::list_all(self.store())
            .await?
            .into_iter()
            .find(|row| row.volume.source == VolumeSource::Volume(name.to_owned()))
            .map(|row| VolumeOwner {
                project: row.project,
                app: row.app,
                volume: row.volume,
            });
        let containers = self.docker().containers_using_volume(name).await?;
        let mut stack = None;
        if let Some(s) = stack_of(&volume.labels)
            && let Some((project, name)) = s.split_once('/')
            && let Ok(project) = ProjectName::parse(project)
            && berth_store::stacks::exists(self.store(), &project, name).await?
        {
            stack = Some(s);
        }
        let mut database = None;
        if let Some(d) = database_of(&volume.labels)
            && let Some((project, name)) = d.split_once('/')
            && let Ok(project) = ProjectName::parse(project)
            && berth_store::databases::exists(self.store(), &project, name).await?
        {
            database = Some(d);
        }
        Ok(StorageVolume {
            database,
            stack,
            name: name.to_owned(),
            bind: false,
            owner,
            project: volume.labels.get(PROJECT).cloned(),
            made_for: volume.labels.get(APP).cloned(),
            made_as: volume.labels.get(VOLUME).cloned(),
            size_bytes: None,
            containers: containers.len() as u64,
        })
    }

    /// Removes an orphaned volume and its data. `confirm` must be the
    /// volume's name; a volume an app still mounts, or a container still
    /// uses, is refused.
    pub async fn delete_volume(&self, name: &str, confirm: &str) -> Result<(), DeployError> {
        let volume = self.find_volume(name).await?;
        if confirm.trim() != name {
            return Err(DeployError::Invalid {
                field: "confirm",
                message: format!(
                    "type the volume's name ({name}) to delete it and its data; nothing was deleted"
                ),
            });
        }
        if let Some(owner) = &volume.owner {
            return Err(DeployError::Invalid {
                field: "confirm",
                message: format!(
                    "{name} is mounted by the app {}/{}: detach it there first; nothing was deleted",
                    owner.project, owner.app
                ),
            });
        }
        if let Some(stack) = &volume.stack {
            return Err(DeployError::Invalid {
                field: "confirm",
                message: format!(
                    "{name} belongs to the stack {stack}: uninstall it with \"delete volumes\" instead; nothing was deleted"
                ),
            });
        }
        if let Some(db) = &volume.database {
            return Err(DeployError::Invalid {
                field: "confirm",
                message: format!(
                    "{name} holds the data of the database {db}: delete the database with \"delete its volume\" instead; nothing was deleted"
                ),
            });
        }
        if volume.in_use() {
            let users: Vec<String> = self
                .docker()
                .containers_using_volume(name)
                .await?
                .into_iter()
                .map(|c| c.name)
                .collect();
            return Err(DeployError::Invalid {
                field: "confirm",
                message: format!(
                    "{name} is used by the container(s) {}: remove them first; nothing was deleted",
                    users.join(", ")
                ),
            });
        }
        self.docker().remove_volume(name).await?;
        tracing::info!(volume.name = %name, "orphaned volume deleted on request");
        Ok(())
    }

    /// Attaches an orphaned volume to an app of the project it was made in,
    /// mounted at `target` from the app's next deployment. A volume the app
    /// mounted there before is detached (and kept, orphaned).
    pub async fn attach_volume(
        &self,
        name: &str,
        app: &AppName,
        target: &MountPath,
    ) -> Result<App, DeployError> {
        let volume = self.find_volume(name).await?;
        if !volume.orphaned() {
            return Err(DeployError::Invalid {
                field: "volume",
                message: format!(
                    "{name} is mounted by an app or a stack already: only orphaned volumes can be attached"
                ),
            });
        }
        let project = volume
            .project
            .as_deref()
            .and_then(|p| ProjectName::parse(p).ok())
            .ok_or_else(|| DeployError::Invalid {
                field: "volume",
                message: format!("{name} carries no project label: it cannot be attached"),
            })?;
        let app = self.app(&project, app).await?;
        let existing = self.app_volumes(&app).await?;
        if let Some(old) = existing.iter().find(|v| &v.target == target) {
            volumes::remove(self.store(), app.id, &old.name).await?;
            tracing::info!(app.name = %app.name, volume.name = %old.name, "volume detached to make room for an attached one (kept)");
        }
        // The name it had in its old app, unless another of this app's volumes has it.
        let vname = volume
            .made_as
            .as_deref()
            .and_then(|n| VolumeName::parse(n).ok())
            .unwrap_or_else(|| VolumeName::for_path(target))
            .first_free(|c| existing.iter().any(|v| &v.name == c && &v.target != target));
        volumes::add(
            self.store(),
            app.id,
            &AppVolume {
                name: vname,
                source: VolumeSource::Volume(name.to_owned()),
                target: target.clone(),
                read_only: false,
                from_image: false,
            },
        )
        .await?;
        tracing::info!(volume.name = %name, app.name = %app.name, volume.target = %target, "orphaned volume attached");
        Ok(app)
    }
}

impl Runtime {
    pub(crate) fn bind_rules(&self) -> berth_core::BindRules {
        berth_core::BindRules {
            root: self.options().volumes_root.clone(),
            root_name: "volumes root",
            data_dir: self.data_dir(),
        }
    }

    /// Refuses a bind mount the rules do not allow, unless the admin
    /// confirmed dangerous mounts. Symlinks are resolved first, so a link
    /// under the volumes root cannot lead out of it.
    pub(crate) fn check_volumes(
        &self,
        requests: &[VolumeRequest],
        dangerous_confirmed: bool,
    ) -> Result<(), DeployError> {
        let rules = self.bind_rules();
        for (i, a) in requests.iter().enumerate() {
            if requests[..i].iter().any(|b| b.name == a.name) {
                return Err(invalid(format!("two volumes are named {}", a.name)));
            }
            if requests[..i].iter().any(|b| b.target == a.target) {
                return Err(invalid(format!("two volumes are mounted at {}", a.target)));
            }
            let Some(host) = &a.host_path else { continue };
            if dangerous_confirmed {
                continue;
            }
            let resolved = resolve_existing(host.as_path());
            for path in [host.as_path(), resolved.as_path()] {
                if let Err(refusal) = rules.check(path) {
                    return Err(invalid(format!(
                        "{refusal}. Refused; an admin may allow it by ticking \"dangerous mount\" for this app."
                    )));
                }
            }
        }
        Ok(())
    }

    /// Records the app's mounts (after [`Runtime::check_volumes`]).
    pub(crate) async fn record_volumes(
        &self,
        app: &App,
        requests: &[VolumeRequest],
    ) -> Result<(), DeployError> {
        for request in requests {
            let source = match &request.host_path {
                Some(path) => VolumeSource::Bind(path.clone()),
                None => VolumeSource::Volume(self.free_volume_name(app, &request.name).await?),
            };
            volumes::add(
                self.store(),
                app.id,
                &AppVolume {
                    name: request.name.clone(),
                    source,
                    target: request.target.clone(),
                    read_only: request.read_only,
                    from_image: false,
                },
            )
            .await?;
        }
        Ok(())
    }

    /// A Docker volume name for the app's volume that no volume has yet: an
    /// orphan of an earlier app of the same name keeps its data and its
    /// name, and is attached only when the user says so.
    async fn free_volume_name(
        &self,
        app: &App,
        volume: &VolumeName,
    ) -> Result<String, DeployError> {
        let base = docker_volume_name(&app.project, &app.name, volume);
        let taken: Vec<String> = volumes::list_all(self.store())
            .await?
            .into_iter()
            .filter_map(|o| match o.volume.source {
                VolumeSource::Volume(name) => Some(name),
                VolumeSource::Bind(_) => None,
            })
            .collect();
        let mut candidate = base.clone();
        for n in 2.. {
            if !taken.contains(&candidate)
                && self.docker().inspect_volume(&candidate).await?.is_none()
            {
                return Ok(candidate);
            }
            candidate = format!("{base}-{n}");
        }
        unreachable!("an unbounded counter finds a free name")
    }

    /// Makes sure every path the image declares with `VOLUME` has a named
    /// volume of its own (recorded once, kept for good), creates missing
    /// Docker volumes and host directories, and returns the mounts.
    pub(crate) async fn prepare_mounts(
        &self,
        app: &App,
        declared: &[String],
    ) -> Result<PreparedMounts, DeployError> {
        let mut rows = volumes::list_for_app(self.store(), app.id).await?;
        for path in declared {
            let Ok(target) = MountPath::parse(path) else {
                tracing::warn!(app.name = %app.name, volume.target = %path, "the image declares a volume path berth cannot mount; Docker gives it an anonymous volume");
                continue;
            };
            if rows.iter().any(|v| v.target == target) {
                continue;
            }
            let name =
                VolumeName::for_path(&target).first_free(|c| rows.iter().any(|v| &v.name == c));
            let volume = AppVolume {
                source: VolumeSource::Volume(self.free_volume_name(app, &name).await?),
                name,
                target,
                read_only: false,
                from_image: true,
            };
            volumes::add(self.store(), app.id, &volume).await?;
            tracing::info!(app.name = %app.name, volume.target = %volume.target, "a named volume for a path the image declares");
            rows.push(volume);
        }
        let mut mounts = Vec::with_capacity(rows.len());
        let mut fresh_targets = Vec::new();
        for v in &rows {
            match &v.source {
                VolumeSource::Volume(docker_name) => {
                    let labels = self.volume_labels(app, &v.name);
                    let (_, created) = self.docker().ensure_volume(docker_name, &labels).await?;
                    if created {
                        fresh_targets.push(v.target.to_string());
                    }
                    mounts.push(Mount::Volume {
                        name: docker_name.clone(),
                        target: v.target.to_string(),
                        read_only: v.read_only,
                    });
                }
                VolumeSource::Bind(path) => {
                    // Under the volumes root berth makes the directory; anything
                    // else (confirmed as dangerous) must exist already.
                    if path
                        .as_path()
                        .starts_with(self.options().volumes_root.clone())
                        && !path.as_path().exists()
                    {
                        std::fs::create_dir_all(path.as_path())
                            .map_err(|e| DeployError::Tool(format!("cannot create {path}: {e}")))?;
                    }
                    mounts.push(Mount::Bind {
                        source: path.to_string(),
                        target: v.target.to_string(),
                        read_only: v.read_only,
                    });
                }
            }
        }
        Ok(PreparedMounts {
            mounts,
            fresh_targets,
            count: rows.len(),
        })
    }

    fn volume_labels(&self, app: &App, volume: &VolumeName) -> BTreeMap<String, String> {
        let mut labels = self.object_labels();
        labels.extend([
            (MANAGED.to_owned(), "true".to_owned()),
            (INSTANCE.to_owned(), self.instance_id().to_owned()),
            (KIND.to_owned(), ResourceKind::App.as_str().to_owned()),
            (PROJECT.to_owned(), app.project.to_string()),
            (RESOURCE.to_owned(), app.name.to_string()),
            (SERVICE.to_owned(), app.name.to_string()),
            (APP.to_owned(), app.name.to_string()),
            (APP_ID.to_owned(), app.id.to_string()),
            (VOLUME.to_owned(), volume.to_string()),
        ]);
        labels
    }

    /// Moves the data of a container made before volumes existed into the
    /// named volumes just created for the same paths: each anonymous volume
    /// of `old` at one of `fresh_targets` is copied into `new` (created,
    /// not started). Returns what was moved, for the deployment's log.
    pub(crate) async fn adopt_anonymous_data(
        &self,
        old: &ContainerInfo,
        new_id: &str,
        fresh_targets: &[String],
    ) -> Result<Vec<String>, DeployError> {
        let mut moved = Vec::new();
        for mount in &old.mounts {
            let anonymous = mount.kind == MountKind::Volume
                && mount
                    .name
                    .as_deref()
                    .is_some_and(|n| !n.starts_with("berth_"));
            if !anonymous || !fresh_targets.contains(&mount.destination) {
                continue;
            }
            let bytes = self
                .docker()
                .copy_path(&old.id, &mount.destination, new_id)
                .await?;
            moved.push(format!(
                "moved {} of data at {} from the old container's anonymous volume into its named volume",
                crate::human_bytes(bytes),
                mount.destination
            ));
        }
        Ok(moved)
    }

    /// Removes the app's named Docker volumes (deleting the app "with its
    /// volumes"). Returns the names that could not be removed (kept).
    pub(crate) async fn remove_app_volumes(&self, volumes: &[AppVolume]) -> Vec<String> {
        let mut kept = Vec::new();
        for v in volumes {
            if let VolumeSource::Volume(name) = &v.source {
                match self.docker().remove_volume(name).await {
                    Ok(()) => tracing::info!(volume.name = %name, "volume deleted with its app"),
                    Err(err) => {
                        tracing::warn!(volume.name = %name, error = %err, "could not delete a volume; it is kept");
                        kept.push(name.clone());
                    }
                }
            }
        }
        kept
    }
}

/// `<project>/<stack>` of a volume a stack made.
fn stack_of(labels: &BTreeMap<String, String>) -> Option<String> {
    if labels.get(KIND).map(String::as_str) != Some("stack") {
        return None;
    }
    Some(format!(
        "{}/{}",
        labels.get(PROJECT)?,
        labels.get(RESOURCE)?
    ))
}

fn database_of(labels: &BTreeMap<String, String>) -> Option<String> {
    if labels.get(KIND).map(String::as_str) != Some(ResourceKind::Database.as_str()) {
        return None;
    }
    Some(format!(
        "{}/{}",
        labels.get(PROJECT)?,
        labels.get(RESOURCE)?
    ))
}

fn invalid(message: String) -> DeployError {
    DeployError::Invalid {
        field: "volumes",
        message,
    }
}

/// The path with its symlinks resolved, as far as it exists.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|n| n.to_owned()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
    let mut resolved = std::fs::canonicalize(&existing).unwrap_or(existing);
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    resolved
}
