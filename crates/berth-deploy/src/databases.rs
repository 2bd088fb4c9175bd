//! Managed databases: one container each (`berth_<project>_<db>`), on the
//! project network only with the database's name as its alias, a named
//! volume `berth_<project>_<db>_data` at the engine's data path, generated
//! credentials sealed in the store, and no host port unless asked (then on
//! 127.0.0.1 only).
//!
//! Every change recreates: stop → start a new container on the same volume
//! → the engine's own readiness check → on failure the old container runs
//! again and the reason is recorded. The major version never changes under
//! existing data (see [`berth_core::database`]).

use std::time::{Duration, Instant};

use berth_core::database::is_unpinned;
use berth_core::{
    Credentials, Database, DatabaseEngine, DatabaseName, DatabaseState, EnvFlags, EnvKey, EnvVar,
    ImageRef, Owner, ProjectName, ResourceKind,
};
use berth_docker::{
    ContainerInfo, ContainerOptions, ContainerSpec, ContainerState, Healthcheck, Mount,
    PublishedPort, RestartPolicy,
};
use berth_store::databases;
use futures_util::StreamExt;
use secrecy::SecretString;

use crate::naming::{
    INSTANCE, KIND, MANAGED, PROJECT, RESOURCE, SERVICE, VOLUME, database_container_name,
    database_volume_name, network_name,
};
use crate::{Databases, DeployError, ResourceKey, Runtime};

/// How long a database may take to pass its readiness check after a start
/// (a first start initialises the data directory).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a stop waits before Docker kills: a database flushes on SIGTERM.
const STOP_TIMEOUT_SECS: i32 = 30;
/// The variable "Use in app" adds when the user names none.
pub const DEFAULT_URL_VARIABLE: &str = "DATABASE_URL";

/// What the user asks for when creating a database (the form, or
/// `POST /api/v1/projects/{project}/databases`).
#[derive(Debug, Clone)]
pub struct DatabaseRequest {
    pub name: DatabaseName,
    pub engine: DatabaseEngine,
    /// A supported version (`None`: the engine's default).
    pub version: Option<String>,
    /// A custom image (PostGIS…); `None`: the official one.
    pub image: Option<ImageRef>,
    /// A port to publish on 127.0.0.1 (`None`: none).
    pub host_port: Option<u16>,
}

/// What an update changes (`None`: keep).
#[derive(Debug, Clone, Default)]
pub struct DatabaseUpdate {
    pub version: Option<String>,
    pub image: Option<ImageRef>,
    /// `Some(None)` stops publishing.
    pub host_port: Option<Option<u16>>,
}

/// A database with what Docker says about it.
#[derive(Debug, Clone)]
pub struct DatabaseView {
    pub database: Database,
    /// `berth_<project>_<db>`.
    pub container: String,
    /// Docker's state (`running`, `exited`…), or `missing`.
    pub state: String,
    /// The readiness check's verdict (`starting`, `healthy`, `unhealthy`).
    pub health: Option<String>,
    /// Ports published on the host (`127.0.0.1:15432->5432/tcp`).
    pub published: Vec<String>,
    /// `berth_<project>_<db>_data`.
    pub volume: String,
    /// The host apps of the project reach it at (its alias on the network).
    pub host: String,
    pub port: u16,
    /// The connection URL with the password masked.
    pub url_masked: String,
    /// The image's tag names no version: flagged in the UI.
    pub unpinned: bool,
    /// The user name and database name (no password).
    pub user: String,
    pub database_name: String,
}

/// Everything a backup or a restore of a managed database needs. `Debug`
/// never shows the password.
#[derive(Debug, Clone)]
pub struct DatabaseConnection {
    pub engine: DatabaseEngine,
    /// The major version its data is made with.
    pub version: String,
    pub image: ImageRef,
    /// The project network, where `host` resolves.
    pub network: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: SecretString,
    pub database: String,
    pub container: String,
    pub volume: String,
}

impl Databases {
    /// The project's databases with their containers' states.
    pub async fn list(&self, project: &ProjectName) -> Result<Vec<DatabaseView>, DeployError> {
        self.projects().find_project(project).await?;
        let containers = self
            .docker()
            .list_containers(&[
                (KIND, ResourceKind::Database.as_str()),
                (PROJECT, project.as_str()),
                (INSTANCE, self.instance_id()),
            ])
            .await
            .unwrap_or_default();
        let mut out = Vec::new();
        for db in databases::list(self.store(), project).await? {
            let name = database_container_name(&db.project, &db.name);
            let c = containers.iter().find(|c| c.name == name);
            out.push(self.view(db, c).await?);
        }
        Ok(out)
    }

    /// Every database of every project (the dashboard).
    pub async fn list_all(&self) -> Result<Vec<Database>, DeployError> {
        Ok(databases::list_all(self.store()).await?)
    }

    pub async fn get(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
    ) -> Result<DatabaseView, DeployError> {
        let db = databases::find(self.store(), project, name).await?;
        let c = self
            .docker()
            .inspect_container(&database_container_name(project, name))
            .await?;
        self.view(db, c.as_ref()).await
    }

    async fn view(
        &self,
        db: Database,
        c: Option<&ContainerInfo>,
    ) -> Result<DatabaseView, DeployError> {
        let creds = databases::credentials(self.store(), db.id).await?;
        let masked = Credentials {
            password: "••••••••".to_owned(),
            ..creds.clone()
        };
        Ok(DatabaseView {
            container: database_container_name(&db.project, &db.name),
            state: c.map_or_else(|| "missing".to_owned(), |c| c.state.as_str().to_owned()),
            health: c.and_then(|c| c.health.clone()),
            published: c.map(|c| c.published.clone()).unwrap_or_default(),
            volume: database_volume_name(&db.project, &db.name),
            host: db.name.to_string(),
            port: db.engine.port(),
            url_masked: masked.url(db.engine, db.name.as_str(), db.engine.port()),
            unpinned: db.unpinned(),
            user: creds.user,
            database_name: creds.database,
            database: db,
        })
    }

    /// The credentials, on purpose (the reveal button, `?reveal=true`).
    pub async fn reveal(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
    ) -> Result<Credentials, DeployError> {
        let db = databases::find(self.store(), project, name).await?;
        tracing::info!(project.name = %project, database.name = %name, "credentials revealed");
        Ok(databases::credentials(self.store(), db.id).await?)
    }

    /// The URL apps on the project network connect with (it holds the password).
    pub async fn connection_url(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
    ) -> Result<String, DeployError> {
        let db = databases::find(self.store(), project, name).await?;
        let creds = databases::credentials(self.store(), db.id).await?;
        Ok(creds.url(db.engine, db.name.as_str(), db.engine.port()))
    }

    /// What a backup or restore needs to reach the database.
    pub async fn connection(&self, db: &Database) -> Result<DatabaseConnection, DeployError> {
        let creds = databases::credentials(self.store(), db.id).await?;
        Ok(DatabaseConnection {
            engine: db.engine,
            version: db.version.clone(),
            image: db.image.clone(),
            network: network_name(&db.project),
            host: db.name.to_string(),
            port: db.engine.port(),
            user: creds.user,
            password: SecretString::from(creds.password),
            database: creds.database,
            container: database_container_name(&db.project, &db.name),
            volume: database_volume_name(&db.project, &db.name),
        })
    }

    /// The stored record (for callers that hold a name).
    pub async fn find(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
    ) -> Result<Database, DeployError> {
        Ok(databases::find(self.store(), project, name).await?)
    }

    /// Records the database and starts it in the background (its view shows
    /// `starting` until it passes its readiness check, or why it failed).
    /// Bad input, a taken name or a volume left from an earlier database of
    /// the same name are refused, and nothing is created.
    pub async fn create(
        &self,
        project: &ProjectName,
        request: DatabaseRequest,
    ) -> Result<Database, DeployError> {
        self.projects().find_project(project).await?;
        let engine = request.engine;
        let version = engine
            .version(request.version.as_deref())
            .map_err(|e| invalid("version", e.to_string()))?;
        let image = request
            .image
            .unwrap_or_else(|| engine.official_image(version));
        engine
            .check_image(&image, version)
            .map_err(|e| invalid("image", e.to_string()))?;
        check_host_port(request.host_port)?;
        let volume = database_volume_name(project, &request.name);
        if self.docker().inspect_volume(&volume).await?.is_some() {
            return Err(DeployError::Conflict(format!(
                "the volume {volume} is left from an earlier resource of that name and holds its data: \
                 delete it on the Storage page (or attach it to an app), or pick another name; nothing was created"
            )));
        }
        let creds = generate_credentials(engine, &request.name);
        let db = databases::create(
            self.store(),
            project,
            &databases::NewDatabase {
                name: &request.name,
                engine,
                version,
                image: &image,
                host_port: request.host_port,
            },
            &creds,
        )
        .await?;
        databases::set_message(self.store(), db.id, Some("starting")).await?;
        tracing::info!(project.name = %project, database.name = %db.name, database.engine = %engine, database.version = version, "database created");
        let this = self.clone();
        let id = db.id;
        tokio::spawn(async move {
            let lock = this.lock_for(ResourceKey::Database(id));
            let _one_at_a_time = lock.lock().await;
            let outcome = match databases::find_by_id(this.store(), id).await {
                Ok(db) => this.launch(&db).await,
                Err(e) => Err(e.into()),
            };
            this.settled(id, outcome.map_err(|e| format!("could not start: {e}")))
                .await;
        });
        Ok(db)
    }

    /// Changes the image, version or published port, by recreating the
    /// container on the same volume. A major version other than the data's,
    /// or an image whose tag names one, is refused while the volume holds
    /// data, with the way to move instead. Returns the database as stored.
    pub async fn update(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
        update: DatabaseUpdate,
    ) -> Result<Database, DeployError> {
        let db = databases::find(self.store(), project, name).await?;
        let lock = self.lock_for(ResourceKey::Database(db.id));
        let _one_at_a_time = lock.lock().await;
        let engine = db.engine;
        let version = engine
            .version(Some(update.version.as_deref().unwrap_or(&db.version)))
            .map_err(|e| invalid("version", e.to_string()))?;
        let volume = database_volume_name(project, name);
        let has_data = self.docker().inspect_volume(&volume).await?.is_some();
        if version != db.version && has_data {
            return Err(invalid(
                "version",
                format!(
                    "the data of {name} was made by {} {}, and {} {version} cannot start on it: berth never changes the major version under existing data. \
                     To move to {version}: back up (dump) {name}, create a new database at version {version}, restore the dump into it, then switch your apps to it (\"Use in app\"). Nothing was changed.",
                    engine.label(),
                    db.version,
                    engine.label(),
                ),
            ));
        }
        // A new version without a new image moves the official image along.
        let image = match update.image {
            Some(image) => image,
            None if version != db.version && db.image == engine.official_image(&db.version) => {
                engine.official_image(version)
            }
            None => db.image.clone(),
        };
        engine.check_image(&image, version).map_err(|e| {
            invalid(
                "image",
                format!("{e}. The data is version {version}. Nothing was changed."),
            )
        })?;
        if image != db.image && has_data && is_unpinned(&image) {
            return Err(invalid(
                "image",
                format!(
                    "{image} names no version, so berth cannot tell whether it would run another major version on the data of {name}: use a tag that starts with {version}. Nothing was changed."
                ),
            ));
        }
        let host_port = update.host_port.unwrap_or(db.host_port);
        check_host_port(host_port)?;
        let new = Database {
            version: version.to_owned(),
            image: image.clone(),
            host_port,
            ..db.clone()
        };
        if let Err(e) = self.recreate(&new).await {
            let why =
                format!("the new settings did not start ({e}); the previous container runs again");
            databases::set_message(self.store(), db.id, Some(&why)).await?;
            return Err(DeployError::Conflict(format!(
                "{why}. Nothing was changed."
            )));
        }
        databases::set_settings(
            self.store(),
            db.id,
            &databases::DatabaseSettings {
                version,
                image: &image,
                host_port,
            },
        )
        .await?;
        databases::set_message(self.store(), db.id, None).await?;
        tracing::info!(project.name = %project, database.name = %name, image = %image, "database settings changed");
        Ok(databases::find_by_id(self.store(), db.id).await?)
    }

    pub async fn start(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
    ) -> Result<(), DeployError> {
        self.run(project, name, false).await
    }

    pub async fn stop(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
    ) -> Result<(), DeployError> {
        let db = databases::find(self.store(), project, name).await?;
        let lock = self.lock_for(ResourceKey::Database(db.id));
        let _one_at_a_time = lock.lock().await;
        databases::set_desired(self.store(), db.id, DatabaseState::Stopped).await?;
        if let Some(c) = self
            .docker()
            .inspect_container(&database_container_name(project, name))
            .await?
        {
            self.docker()
                .stop_container(&c.id, STOP_TIMEOUT_SECS)
                .await?;
        }
        databases::set_message(self.store(), db.id, None).await?;
        tracing::info!(project.name = %project, database.name = %name, "database stopped");
        Ok(())
    }

    pub async fn restart(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
    ) -> Result<(), DeployError> {
        self.run(project, name, true).await
    }

    /// Start or restart: the container if it exists (a restart stops it
    /// first), else a new one on the volume; then waits until it is ready.
    async fn run(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
        restart: bool,
    ) -> Result<(), DeployError> {
        let db = databases::find(self.store(), project, name).await?;
        let lock = self.lock_for(ResourceKey::Database(db.id));
        let _one_at_a_time = lock.lock().await;
        databases::set_desired(self.store(), db.id, DatabaseState::Running).await?;
        let outcome = match self
            .docker()
            .inspect_container(&database_container_name(project, name))
            .await?
        {
            Some(c) => {
                if restart {
                    self.docker()
                        .restart_container(&c.id, STOP_TIMEOUT_SECS)
                        .await?;
                } else {
                    self.docker().start_container(&c.id).await?;
                }
                self.wait_ready(&c.id).await
            }
            None => self.launch(&db).await,
        };
        self.settled(
            db.id,
            outcome.as_ref().map(|_| ()).map_err(ToString::to_string),
        )
        .await;
        outcome
    }

    /// The last `lines` lines of the database's logs.
    pub async fn logs(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
        lines: usize,
    ) -> Result<Vec<String>, DeployError> {
        databases::find(self.store(), project, name).await?;
        match self
            .docker()
            .inspect_container(&database_container_name(project, name))
            .await?
        {
            Some(c) => Ok(self.docker().logs_tail(&c.id, lines).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Removes the database's container and record. Its volume stays
    /// (orphaned, on the Storage page, attachable) unless `delete_volume`
    /// with `confirm` the database's name. Refused while an app's variables
    /// refer to it.
    pub async fn delete(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
        delete_volume: bool,
        confirm: &str,
    ) -> Result<(), DeployError> {
        let db = databases::find(self.store(), project, name).await?;
        if delete_volume && confirm.trim() != name.as_str() {
            return Err(invalid(
                "confirm",
                format!(
                    "type the database's name ({name}) to delete it with its volume and data; nothing was deleted"
                ),
            ));
        }
        let users = self.apps_using(&db).await?;
        if !users.is_empty() {
            return Err(DeployError::Conflict(format!(
                "{} refer to ${{database.{name}}}: remove those variables first; nothing was deleted",
                users.join(", ")
            )));
        }
        let lock = self.lock_for(ResourceKey::Database(db.id));
        let _one_at_a_time = lock.lock().await;
        let docker = self.docker();
        let container = database_container_name(project, name);
        for n in [container.clone(), previous_name(&container)] {
            if let Some(c) = docker.inspect_container(&n).await? {
                docker.stop_container(&c.id, STOP_TIMEOUT_SECS).await?;
                docker.remove_container(&c.id).await?;
            }
        }
        databases::delete(self.store(), db.id).await?;
        let volume = database_volume_name(project, name);
        if delete_volume && docker.inspect_volume(&volume).await?.is_some() {
            docker.remove_volume(&volume).await?;
            tracing::info!(project.name = %project, database.name = %name, volume.name = %volume, "database deleted with its volume, on request");
        } else {
            tracing::info!(project.name = %project, database.name = %name, volume.name = %volume, "database deleted; its volume stays");
        }
        Ok(())
    }

    /// Changes the password in the server, stores it, and recreates the
    /// container. Apps that use the database by reference get the new
    /// password at their next deploy.
    pub async fn rotate_password(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
    ) -> Result<(), DeployError> {
        let db = databases::find(self.store(), project, name).await?;
        let lock = self.lock_for(ResourceKey::Database(db.id));
        let _one_at_a_time = lock.lock().await;
        let old = databases::credentials(self.store(), db.id).await?;
        let new = Credentials {
            password: generate_password(),
            ..old.clone()
        };
        if db.engine.has_users() {
            let c = self
                .docker()
                .inspect_container(&database_container_name(project, name))
                .await?
                .filter(|c| c.state.is_running())
                .ok_or_else(|| {
                    invalid(
                        "password",
                        format!("{name} is not running: start it to change its password"),
                    )
                })?;
            let (argv, env) = password_change(db.engine, &old, &new)?;
            let out = self.docker().exec(&c.id, &argv, &env).await?;
            if out.exit_code != 0 {
                return Err(DeployError::Tool(format!(
                    "changing the password failed (exit {}): {}",
                    out.exit_code,
                    out.output.trim()
                )));
            }
        }
        databases::set_credentials(self.store(), db.id, &new).await?;
        tracing::info!(project.name = %project, database.name = %name, "database password changed");
        // Redis and Valkey take the password at start; the others only at
        // initialisation, but their containers should say what is true.
        let outcome = self.recreate(&db).await;
        self.settled(
            db.id,
            outcome.as_ref().map(|_| ()).map_err(ToString::to_string),
        )
        .await;
        outcome
    }

    /// Adds `variable` (default `DATABASE_URL`) to the app's variables as a
    /// reference, `${database.<name>}`: the env store keeps the reference,
    /// and each deployment fills in the URL with the password of that day.
    /// A variable of that name with another value is refused.
    pub async fn use_in_app(
        &self,
        project: &ProjectName,
        name: &DatabaseName,
        app: &berth_core::AppName,
        variable: Option<EnvKey>,
        actor: &str,
    ) -> Result<EnvKey, DeployError> {
        databases::find(self.store(), project, name).await?;
        let (found, set) = self.env().app_env(project, app).await?;
        let key = match variable {
            Some(k) => k,
            None => EnvKey::parse(DEFAULT_URL_VARIABLE).expect("a valid name"),
        };
        let reference = format!("${{database.{name}}}");
        if let Some(existing) = set.vars.iter().find(|v| v.key == key) {
            if existing.value == reference && !existing.flags.literal {
                return Ok(key);
            }
            return Err(invalid(
                "variable",
                format!(
                    "{}/{} already has {key} with another value: pick another name, or remove it in the app's environment first; nothing was changed",
                    found.project, found.name
                ),
            ));
        }
        let mut vars = set.vars.clone();
        vars.push(EnvVar {
            key: key.clone(),
            value: reference,
            flags: EnvFlags {
                secret: false,
                build: false,
                runtime: true,
                literal: false,
            },
        });
        self.env()
            .save_app_env(project, app, Some(set.version), &vars, actor)
            .await?;
        tracing::info!(project.name = %project, database.name = %name, app.name = %app, env.key = %key, "database referenced in an app");
        Ok(key)
    }

    /// `project/app (KEY)` of every app whose variables refer to `db`.
    async fn apps_using(&self, db: &Database) -> Result<Vec<String>, DeployError> {
        let apps = berth_store::apps::list_all(self.store()).await?;
        let mut out = Vec::new();
        for app in apps.iter().filter(|a| a.project == db.project) {
            let set = berth_store::env::load(self.store(), Owner::App(app.id)).await?;
            for var in &set.vars {
                let refers = berth_core::env::references(var)
                    .unwrap_or_default()
                    .iter()
                    .any(|r| {
                        r.scope == Some(berth_core::env::Scope::Database)
                            && r.name == db.name.as_str()
                    });
                if refers {
                    out.push(format!("{}/{} ({})", app.project, app.name, var.key));
                }
            }
        }
        Ok(out)
    }
}

impl Runtime {
    /// Each database of the project with its connection URL: what
    /// `${database.NAME}` references resolve to.
    pub(crate) async fn database_urls(
        &self,
        project: &ProjectName,
    ) -> Result<Vec<(String, String)>, DeployError> {
        let mut out = Vec::new();
        for db in databases::list(self.store(), project).await? {
            let creds = databases::credentials(self.store(), db.id).await?;
            out.push((
                db.name.to_string(),
                creds.url(db.engine, db.name.as_str(), db.engine.port()),
            ));
        }
        Ok(out)
    }

    /// Records how an action ended: no message when it went well, the
    /// reason when not.
    async fn settled(&self, id: berth_core::DatabaseId, outcome: Result<(), String>) {
        let message = outcome.err();
        if let Some(why) = &message {
            tracing::warn!(database.id = %id, "database action failed: {why}");
        }
        if let Err(e) = databases::set_message(self.store(), id, message.as_deref()).await {
            tracing::warn!(database.id = %id, error = %e, "could not record a database's state");
        }
    }

    fn database_labels(&self, db: &Database) -> std::collections::BTreeMap<String, String> {
        let mut labels = self.object_labels();
        labels.extend([
            (MANAGED.to_owned(), "true".to_owned()),
            (INSTANCE.to_owned(), self.instance_id().to_owned()),
            (PROJECT.to_owned(), db.project.to_string()),
            (KIND.to_owned(), ResourceKind::Database.as_str().to_owned()),
            (RESOURCE.to_owned(), db.name.to_string()),
            (SERVICE.to_owned(), db.name.to_string()),
        ]);
        labels
    }

    async fn database_spec(&self, db: &Database) -> Result<ContainerSpec, DeployError> {
        let creds = databases::credentials(self.store(), db.id).await?;
        let engine = db.engine;
        let secs = |s: i64| s * 1_000_000_000;
        Ok(ContainerSpec {
            name: database_container_name(&db.project, &db.name),
            image: db.image.to_pullable(),
            cmd: engine.command(),
            env: engine.credential_env(&creds),
            labels: self.database_labels(db),
            network: network_name(&db.project),
            network_aliases: vec![db.name.to_string()],
            container_port: 0,
            restart: RestartPolicy::UnlessStopped,
            memory_bytes: None,
            nano_cpus: None,
            mounts: vec![Mount::Volume {
                name: database_volume_name(&db.project, &db.name),
                target: engine.data_path().to_owned(),
                read_only: false,
            }],
            options: ContainerOptions {
                publish: db
                    .host_port
                    .map(|p| PublishedPort {
                        host_ip: "127.0.0.1".to_owned(),
                        host_port: Some(p),
                        container_port: engine.port(),
                        protocol: "tcp".to_owned(),
                    })
                    .into_iter()
                    .collect(),
                healthcheck: Some(Healthcheck {
                    test: engine.readiness().iter().map(|s| (*s).to_owned()).collect(),
                    interval_ns: secs(2),
                    timeout_ns: secs(5),
                    retries: 5,
                    start_period_ns: secs(READY_TIMEOUT.as_secs() as i64),
                    start_interval_ns: 0,
                }),
                stop_timeout_secs: Some(i64::from(STOP_TIMEOUT_SECS)),
                ..Default::default()
            },
        })
    }

    /// Pulls the image when it is not here (a registry may be out of reach:
    /// the error says so).
    async fn database_image(&self, image: &ImageRef) -> Result<(), DeployError> {
        let docker = self.docker();
        let pullable = image.to_pullable();
        if docker.image_exists(&pullable).await? {
            return Ok(());
        }
        let mut pull = docker.pull_image(&pullable);
        while let Some(progress) = pull.next().await {
            progress?;
        }
        Ok(())
    }

    /// Creates the network, the volume and the container, starts it and
    /// waits for its readiness check.
    async fn launch(&self, db: &Database) -> Result<(), DeployError> {
        self.database_image(&db.image).await?;
        let docker = self.docker();
        let mut net_labels = self.object_labels();
        net_labels.extend([
            (MANAGED.to_owned(), "true".to_owned()),
            (INSTANCE.to_owned(), self.instance_id().to_owned()),
            (PROJECT.to_owned(), db.project.to_string()),
        ]);
        docker
            .ensure_network(&network_name(&db.project), &net_labels)
            .await?;
        let mut vol_labels = self.database_labels(db);
        vol_labels.insert(VOLUME.to_owned(), "data".to_owned());
        docker
            .ensure_volume(&database_volume_name(&db.project, &db.name), &vol_labels)
            .await?;
        let spec = self.database_spec(db).await?;
        let id = docker.create_container(&spec).await?;
        docker.start_container(&id).await?;
        self.wait_ready(&id).await?;
        tracing::info!(project.name = %db.project, database.name = %db.name, "database ready");
        Ok(())
    }

    /// The `recreate` strategy: stop the old container, start a new one on
    /// the same volume, check it; if it fails, remove it and start the old
    /// one again. The caller holds the database's lock.
    async fn recreate(&self, db: &Database) -> Result<(), DeployError> {
        let docker = self.docker();
        let name = database_container_name(&db.project, &db.name);
        let Some(old) = docker.inspect_container(&name).await? else {
            return self.launch(db).await;
        };
        // Before stopping anything: a missing image must not cost the old one.
        self.database_image(&db.image).await?;
        let spec = self.database_spec(db).await?;
        let prev = previous_name(&name);
        if let Some(stale) = docker.inspect_container(&prev).await? {
            docker.remove_container(&stale.id).await?;
        }
        docker.stop_container(&old.id, STOP_TIMEOUT_SECS).await?;
        docker.rename_container(&old.id, &prev).await?;
        let started = async {
            let id = docker.create_container(&spec).await?;
            docker.start_container(&id).await?;
            self.wait_ready(&id).await
        }
        .await;
        match started {
            Ok(()) => {
                docker.remove_container(&old.id).await?;
                tracing::info!(project.name = %db.project, database.name = %db.name, "database recreated");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(project.name = %db.project, database.name = %db.name, error = %e, "the new container failed; starting the old one again");
                if let Some(new) = docker.inspect_container(&name).await? {
                    docker.remove_container(&new.id).await?;
                }
                docker.rename_container(&old.id, &name).await?;
                docker.start_container(&old.id).await?;
                if let Err(again) = self.wait_ready(&old.id).await {
                    tracing::warn!(project.name = %db.project, database.name = %db.name, error = %again, "the old container did not become ready again either");
                }
                Err(e)
            }
        }
    }

    /// Waits until Docker's run of the engine's readiness check passes.
    /// Fails when the container stops, or after [`READY_TIMEOUT`].
    async fn wait_ready(&self, id: &str) -> Result<(), DeployError> {
        let started = Instant::now();
        loop {
            let Some(c) = self.docker().inspect_container(id).await? else {
                return Err(DeployError::Tool("the container vanished".to_owned()));
            };
            match (&c.state, c.health.as_deref()) {
                (ContainerState::Running, Some("healthy")) => return Ok(()),
                (ContainerState::Running | ContainerState::Created, _) => {}
                (ContainerState::Restarting, _)
                | (ContainerState::Exited, _)
                | (ContainerState::Dead, _) => {
                    let tail = self.docker().logs_tail(id, 5).await.unwrap_or_default();
                    return Err(DeployError::Tool(format!(
                        "the container stopped ({}): {}",
                        c.exit_code.map_or_else(
                            || c.state.as_str().to_owned(),
                            |code| format!("exit code {code}")
                        ),
                        tail.join(" / ")
                    )));
                }
                _ => {}
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(DeployError::Tool(format!(
                    "not ready after {} s (readiness check: {})",
                    READY_TIMEOUT.as_secs(),
                    c.health.unwrap_or_else(|| "none".to_owned())
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Reconcile's rule for a database without a container: one that
    /// should run (a first start berth did not finish before it stopped, a
    /// container removed outside berth) is launched again on its volume.
    pub(crate) async fn relaunch_databases(&self, containers: &[ContainerInfo]) {
        let all = match databases::list_all(self.store()).await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "could not list databases to reconcile");
                return;
            }
        };
        for db in all {
            let name = database_container_name(&db.project, &db.name);
            if db.desired != DatabaseState::Running || containers.iter().any(|c| c.name == name) {
                continue;
            }
            let runtime = self.clone();
            tokio::spawn(async move {
                let lock = runtime.lock_for(ResourceKey::Database(db.id));
                let _one_at_a_time = lock.lock().await;
                // Looked at again under the lock: an action may have made it meanwhile.
                if let Ok(Some(_)) = runtime.docker().inspect_container(&name).await {
                    return;
                }
                tracing::info!(project.name = %db.project, database.name = %db.name, "launching a database without a container");
                let outcome = runtime.launch(&db).await;
                runtime
                    .settled(db.id, outcome.map_err(|e| format!("could not start: {e}")))
                    .await;
            });
        }
    }

    /// Reconcile's rule for a database container: attribute it to its
    /// record (never remove it), and start it again when it stopped while
    /// the database should run.
    pub(crate) async fn database_container_seen(&self, c: &ContainerInfo) {
        let (Some(project), Some(name)) = (c.labels.get(PROJECT), c.labels.get(RESOURCE)) else {
            tracing::warn!(container.name = %c.name, "a database container without project or resource labels; left alone");
            return;
        };
        let (Ok(project), Ok(name)) = (ProjectName::parse(project), DatabaseName::parse(name))
        else {
            return;
        };
        let db = match databases::find(self.store(), &project, &name).await {
            Ok(db) => db,
            Err(e) => {
                tracing::warn!(container.name = %c.name, error = %e, "a database container berth has no record of; left alone");
                return;
            }
        };
        if c.name != database_container_name(&project, &name)
            || db.desired != DatabaseState::Running
            || !matches!(
                c.state,
                ContainerState::Exited | ContainerState::Created | ContainerState::Dead
            )
        {
            return;
        }
        // An action in progress (a recreate stops the container) decides itself.
        let lock = self.lock_for(ResourceKey::Database(db.id));
        let Ok(_idle) = lock.try_lock() else {
            return;
        };
        tracing::info!(project.name = %project, database.name = %name, exit_code = ?c.exit_code, "starting a database container that stopped");
        if let Err(e) = self.docker().start_container(&c.id).await {
            tracing::warn!(container.name = %c.name, error = %e, "could not start a stopped database container");
        }
    }
}

/// Where the old container waits during a recreate. `_` is not allowed in
/// names, and a database's name is no app's or stack's in its project, so
/// this cannot be another resource's container.
fn previous_name(container: &str) -> String {
    format!("{container}_prev")
}

fn invalid(field: &'static str, message: String) -> DeployError {
    DeployError::Invalid { field, message }
}

fn check_host_port(port: Option<u16>) -> Result<(), DeployError> {
    if port == Some(0) {
        return Err(invalid(
            "host_port",
            "the host port must be between 1 and 65535".to_owned(),
        ));
    }
    Ok(())
}

/// 32 letters and digits: URL-safe (no escaping in the connection URL) and
/// safe inside the SQL literal of a password change.
fn generate_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The user and database are the database's name with `_` for `-`
/// (identifiers every engine accepts unquoted), cut to MySQL's 32.
fn generate_credentials(engine: DatabaseEngine, name: &DatabaseName) -> Credentials {
    let mut ident: String = name.as_str().replace('-', "_");
    if ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert(0, 'd');
    }
    ident.truncate(32);
    Credentials {
        user: if engine.has_users() {
            ident.clone()
        } else {
            "default".to_owned()
        },
        password: generate_password(),
        database: if engine.has_users() {
            ident
        } else {
            "0".to_owned()
        },
        admin_password: matches!(engine, DatabaseEngine::Mysql | DatabaseEngine::Mariadb)
            .then(generate_password),
    }
}

/// Environment variables of an exec (values may be secrets).
type ExecEnv = Vec<(String, String)>;

/// The engine's password change, run inside its container: the statement
/// holds only berth's own identifiers and generated password (letters,
/// digits, `_`), never user input; the old password travels in the env.
fn password_change(
    engine: DatabaseEngine,
    old: &Credentials,
    new: &Credentials,
) -> Result<(Vec<String>, ExecEnv), DeployError> {
    let safe = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !safe(&new.user) || !safe(&new.password) {
        return Err(DeployError::Tool(
            "the credentials hold characters berth does not put into a statement".to_owned(),
        ));
    }
    let (user, pw) = (&new.user, &new.password);
    let v = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    Ok(match engine {
        DatabaseEngine::Postgres => (
            v(&[
                "psql",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                user,
                "-d",
                &new.database,
                "-c",
                &format!("ALTER USER \"{user}\" WITH PASSWORD '{pw}'"),
            ]),
            vec![("PGPASSWORD".to_owned(), old.password.clone())],
        ),
        DatabaseEngine::Mysql | DatabaseEngine::Mariadb => {
            let client = if engine == DatabaseEngine::Mysql {
                "mysql"
            } else {
                "mariadb"
            };
            (
                v(&[
                    client,
                    "-uroot",
                    "-e",
                    &format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{pw}'"),
                ]),
                vec![(
                    "MYSQL_PWD".to_owned(),
                    old.admin_password
                        .clone()
                        .unwrap_or_else(|| old.password.clone()),
                )],
            )
        }
        DatabaseEngine::Mongodb => {
            return Err(invalid(
                "password",
                "changing a MongoDB database's password is not supported yet".to_owned(),
            ));
        }
        DatabaseEngine::Redis | DatabaseEngine::Valkey => (Vec::new(), Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_are_identifiers_and_url_safe() {
        let c = generate_credentials(
            DatabaseEngine::Postgres,
            &DatabaseName::parse("9-main-db").unwrap(),
        );
        assert_eq!(c.user, "d9_main_db");
        assert_eq!(c.password.len(), 32);
        assert!(c.password.chars().all(|ch| ch.is_ascii_alphanumeric()));
        let r = generate_credentials(DatabaseEngine::Redis, &DatabaseName::parse("c").unwrap());
        assert_eq!((r.user.as_str(), r.database.as_str()), ("default", "0"));
        assert_ne!(generate_password(), generate_password());
    }

    #[test]
    fn the_old_container_name_is_no_other_resources() {
        assert_eq!(previous_name("berth_p_db"), "berth_p_db_prev");
    }
}
