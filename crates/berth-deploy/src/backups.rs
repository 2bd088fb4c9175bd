//! Backups of database services: back up now (a job), scheduled backups,
//! retention, restore into the same database, destinations and their test.
//!
//! A backup's subject is a [`BackupSubject`]: today a database service
//! inside an installed stack; a managed database is one more arm. One
//! function, [`Runtime::resolve_subject`], turns a subject into what a dump
//! needs (engine, image, network, host, port, credentials); the rest does
//! not care which kind it is.
//!
//! The dump runs in a sidecar container of the database's own image on its
//! network (Docker cannot kill an exec; a container can be removed, so a
//! cancel or a time-out really ends the dump), labelled `berth.kind=job`
//! and `berth.backup=<id>`, and its stdout streams through berth-backup's
//! pipeline to every destination at once.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use berth_backup::destination::S3Destination;
use berth_backup::{
    ArtifactKey, Checksum, Connection, DbIdent, DecryptionKey, Destination, DumpSource, Encryption,
    Engine, LocalDir, PipelineError, PipelineOptions, S3Config, Schedule, SecretString, Target,
};
use berth_core::{ProjectName, Stack, StackId, StackName};
use berth_docker::SidecarSpec;
use berth_jobs::{BoxFuture, Enqueue, Handler, Job, JobError, Outcome, Policy, Runner, StoredJob};
use berth_store::backups::{
    BackupOutcome, BackupRow, DestinationRow, DestinationTarget, NewCopy, ScheduleRow, SubjectKey,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::naming::{INSTANCE, KIND, MANAGED, PROJECT, RESOURCE, SERVICE};
use crate::{Backups, DeployError, Runtime};

/// The job kinds this module registers with the runner.
const BACKUP_JOB: &str = "backup";
const RESTORE_JOB: &str = "restore";

/// The label naming the backup a job container works for, so the cleanup
/// after a crash finds it.
const BACKUP_LABEL: &str = "berth.backup";

/// How long one dump may run before it is stopped.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// What a backup is of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackupSubject {
    /// A database service of an installed stack.
    StackService { stack: StackId, service: String },
    /// A managed database.
    Database { id: i64 },
}

impl BackupSubject {
    pub(crate) fn key(&self) -> SubjectKey {
        match self {
            Self::StackService { stack, service } => SubjectKey {
                kind: "stack_service",
                id: stack.get(),
                service: service.clone(),
            },
            Self::Database { id } => SubjectKey {
                kind: "database",
                id: *id,
                service: String::new(),
            },
        }
    }

    pub(crate) fn from_key(key: &SubjectKey) -> Self {
        match key.kind {
            "database" => Self::Database { id: key.id },
            _ => Self::StackService {
                stack: StackId::new(key.id),
                service: key.service.clone(),
            },
        }
    }

    /// No two backups or restores of one subject at once: the jobs share this key.
    fn dedup_key(&self) -> String {
        let k = self.key();
        format!("backup:{}:{}:{}", k.kind, k.id, k.service)
    }
}

/// Everything a dump or a restore of one subject needs. Its `Debug` hides the password.
#[derive(Clone)]
pub struct ResolvedSubject {
    pub engine: Engine,
    pub image: String,
    pub network: String,
    /// The database's container (its name resolves on `network`).
    pub container: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: SecretString,
    pub database: Option<String>,
    /// The name the user types to confirm a restore.
    pub name: String,
    /// Where its artifacts go under each destination (`stacks/<project>/<stack>/<service>`).
    pub key_prefix: String,
    /// `berth.project` / `berth.resource` / `berth.service` of the job containers.
    pub labels: Vec<(String, String)>,
}

impl std::fmt::Debug for ResolvedSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedSubject")
            .field("engine", &self.engine)
            .field("image", &self.image)
            .field("network", &self.network)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"[REDACTED]")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl ResolvedSubject {
    fn connection(&self) -> Result<Connection, DeployError> {
        let ident = |field: &'static str, v: &str| {
            DbIdent::parse(v).map_err(|e| DeployError::Invalid {
                field,
                message: e.to_string(),
            })
        };
        Ok(Connection {
            host: self.host.clone(),
            port: self.port,
            user: ident("user", &self.user)?,
            password: self.password.clone(),
            database: self
                .database
                .as_deref()
                .map(|d| ident("database", d))
                .transpose()?,
        })
    }
}

/// The dump engine of a managed database's engine.
fn backup_engine(engine: berth_core::DatabaseEngine) -> Engine {
    use berth_core::DatabaseEngine as E;
    match engine {
        E::Postgres => Engine::Postgres,
        E::Mysql => Engine::MySql,
        E::Mariadb => Engine::MariaDb,
        E::Redis => Engine::Redis,
        E::Valkey => Engine::Valkey,
        E::Mongodb => Engine::MongoDb,
    }
}

/// The engine a service's image is, by its name (`postgres:16`,
/// `bitnami/postgresql`, `berth-test/postgres`, `mariadb`…), or as the
/// service's `berth.engine` label says.
pub fn engine_of(
    image: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Option<Engine> {
    let by_name = |name: &str| match name {
        "postgres" | "postgresql" => Some(Engine::Postgres),
        "mariadb" => Some(Engine::MariaDb),
        "mysql" => Some(Engine::MySql),
        "redis" => Some(Engine::Redis),
        "valkey" => Some(Engine::Valkey),
        "mongo" | "mongodb" => Some(Engine::MongoDb),
        _ => None,
    };
    if let Some(e) = labels.get("berth.engine") {
        return by_name(e.as_str());
    }
    let path = image.split(['@']).next().unwrap_or(image);
    let last = path.rsplit('/').next().unwrap_or(path);
    let repo = last.split(':').next().unwrap_or(last);
    by_name(repo).or(match repo {
        "postgis" | "timescaledb" | "pgvector" => Some(Engine::Postgres),
        _ => None,
    })
}

pub fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Postgres => "postgres",
        Engine::MariaDb => "mariadb",
        Engine::MySql => "mysql",
        Engine::Redis => "redis",
        Engine::Valkey => "valkey",
        Engine::MongoDb => "mongodb",
    }
}

fn extension(e: Engine) -> &'static str {
    match e {
        Engine::Postgres => "dump",
        Engine::MariaDb | Engine::MySql => "sql",
        Engine::Redis | Engine::Valkey => "rdb",
        Engine::MongoDb => "archive",
    }
}

/// Live progress of a running backup (SSE sends it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupProgress {
    pub backup_id: i64,
    /// Dump bytes read so far.
    pub bytes: u64,
    /// Bytes per second over the whole run so far.
    pub rate: u64,
    /// `queued`, `running`, then the backup's final status.
    pub status: String,
    pub done: bool,
}

/// What runs in this process for backups: the job runner and the progress channels.
#[derive(Default)]
pub(crate) struct BackupState {
    runner: std::sync::OnceLock<Arc<Runner>>,
    progress: Mutex<HashMap<i64, watch::Sender<BackupProgress>>>,
}

/// A destination as the form and the API give it.
#[derive(Clone, Deserialize)]
pub struct DestinationRequest {
    pub name: String,
    /// `local` or `s3`.
    pub kind: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "yes")]
    pub path_style: bool,
    #[serde(default)]
    pub access_key_id: String,
    /// Empty on an update keeps the stored key.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub keep_last: Option<i64>,
    #[serde(default)]
    pub max_age_days: Option<i64>,
    #[serde(default)]
    pub max_total_bytes: Option<i64>,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for DestinationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationRequest")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[REDACTED]"),
            )
            .finish_non_exhaustive()
    }
}

/// A schedule as the form and the API give it.
#[derive(Clone, Deserialize)]
pub struct ScheduleRequest {
    /// Five-field cron or `@daily`-style.
    pub cron: String,
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Destination ids; empty: every destination.
    #[serde(default)]
    pub destinations: Vec<i64>,
    #[serde(default)]
    pub passphrase: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn utc() -> String {
    "UTC".to_owned()
}

impl std::fmt::Debug for ScheduleRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduleRequest")
            .field("cron", &self.cron)
            .field("time_zone", &self.time_zone)
            .field("destinations", &self.destinations)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// "Back up now" options.
#[derive(Clone, Default, Deserialize)]
pub struct BackupNowRequest {
    /// Destination ids; empty: every destination.
    #[serde(default)]
    pub destinations: Vec<i64>,
    #[serde(default)]
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for BackupNowRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupNowRequest")
            .field("destinations", &self.destinations)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// A schedule with its next runs in its own time zone.
#[derive(Debug, Clone)]
pub struct ScheduleView {
    pub row: ScheduleRow,
    pub next_runs: Vec<String>,
}

/// The job payloads.
#[derive(Debug, Serialize, Deserialize)]
struct BackupJob {
    backup_id: i64,
    destinations: Vec<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RestoreJob {
    restore_id: i64,
    backup_id: i64,
}

/// A restore's record.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreStatus {
    pub id: i64,
    pub backup_id: i64,
    pub safety_backup_id: Option<i64>,
    pub status: String,
    pub error: Option<String>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> DeployError {
    DeployError::Invalid {
        field,
        message: message.into(),
    }
}

fn job_error(e: JobError) -> DeployError {
    match e {
        JobError::Duplicate { .. } => DeployError::Conflict(
            "a backup or restore of this database is already queued or running".to_owned(),
        ),
        JobError::Store(e) => e.into(),
        JobError::UnknownKind(k) => DeployError::Tool(format!("no job handler for {k}")),
    }
}

impl Runtime {
    /// Everything a backup of `subject` needs; refuses a service that is
    /// not a known database engine, or whose credentials cannot be found.
    pub async fn resolve_subject(
        &self,
        subject: &BackupSubject,
    ) -> Result<ResolvedSubject, DeployError> {
        match subject {
            BackupSubject::StackService { stack, service } => {
                let stack = berth_store::stacks::find_by_id(self.store(), *stack).await?;
                self.resolve_stack_service(&stack, service).await
            }
            BackupSubject::Database { id } => {
                let db = berth_store::databases::find_by_id(
                    self.store(),
                    berth_core::DatabaseId::new(*id),
                )
                .await?;
                self.resolve_database(&db).await
            }
        }
    }

    /// A managed database: its own credentials, on its project's network.
    async fn resolve_database(
        &self,
        db: &berth_core::Database,
    ) -> Result<ResolvedSubject, DeployError> {
        let conn = self.databases().connection(db).await?;
        let engine = backup_engine(conn.engine);
        Ok(ResolvedSubject {
            engine,
            image: conn.image.to_string(),
            network: conn.network,
            container: conn.container,
            host: conn.host,
            port: conn.port,
            user: conn.user,
            password: conn.password,
            // Redis and Valkey have one keyspace, not named databases.
            database: match engine {
                Engine::Redis | Engine::Valkey => None,
                _ => Some(conn.database),
            },
            name: db.name.to_string(),
            key_prefix: format!("databases/{}/{}", db.project, db.name),
            labels: vec![
                (PROJECT.to_owned(), db.project.to_string()),
                (RESOURCE.to_owned(), db.name.to_string()),
                (SERVICE.to_owned(), db.name.to_string()),
            ],
        })
    }

    async fn resolve_stack_service(
        &self,
        stack: &Stack,
        service: &str,
    ) -> Result<ResolvedSubject, DeployError> {
        let (plan, network, container) = self.stack_service_plan(stack, service).await?;
        let image = plan
            .image
            .as_ref()
            .map(ToString::to_string)
            .ok_or_else(|| {
                invalid(
                    "service",
                    format!(
                        "{service} is built from source: it is not a database berth can back up"
                    ),
                )
            })?;
        let engine = engine_of(&image, &plan.labels).ok_or_else(|| {
            invalid(
                "service",
                format!("{service} ({image}) is not a database berth knows (PostgreSQL, MySQL, MariaDB, Redis, Valkey, MongoDB)"),
            )
        })?;
        let env = &plan.environment;
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let (user, password, database, port) = match engine {
            Engine::Postgres => {
                let user = get("POSTGRES_USER").unwrap_or_else(|| "postgres".to_owned());
                let db = get("POSTGRES_DB").unwrap_or_else(|| user.clone());
                (user, get("POSTGRES_PASSWORD"), Some(db), 5432)
            }
            Engine::MariaDb | Engine::MySql => {
                let root = get("MARIADB_ROOT_PASSWORD").or_else(|| get("MYSQL_ROOT_PASSWORD"));
                let db = get("MARIADB_DATABASE").or_else(|| get("MYSQL_DATABASE"));
                match root {
                    Some(pw) => ("root".to_owned(), Some(pw), db, 3306),
                    None => (
                        get("MARIADB_USER")
                            .or_else(|| get("MYSQL_USER"))
                            .unwrap_or_else(|| "root".to_owned()),
                        get("MARIADB_PASSWORD").or_else(|| get("MYSQL_PASSWORD")),
                        db,
                        3306,
                    ),
                }
            }
            Engine::Redis | Engine::Valkey => (
                "default".to_owned(),
                get("REDIS_PASSWORD").or_else(|| get("VALKEY_PASSWORD")),
                None,
                6379,
            ),
            Engine::MongoDb => (
                get("MONGO_INITDB_ROOT_USERNAME").unwrap_or_else(|| "root".to_owned()),
                get("MONGO_INITDB_ROOT_PASSWORD"),
                None,
                27017,
            ),
        };
        let password = password.ok_or_else(|| {
            invalid(
                "service",
                format!("{service}: berth found no password in its environment (POSTGRES_PASSWORD, MARIADB_ROOT_PASSWORD, …)"),
            )
        })?;
        Ok(ResolvedSubject {
            engine,
            image,
            network,
            host: container.clone(),
            container,
            port,
            user,
            password: SecretString::from(password),
            database,
            name: service.to_owned(),
            key_prefix: format!("stacks/{}/{}/{service}", stack.project, stack.name),
            labels: vec![
                (PROJECT.to_owned(), stack.project.to_string()),
                (RESOURCE.to_owned(), stack.name.to_string()),
                (SERVICE.to_owned(), service.to_owned()),
            ],
        })
    }

    fn runner(&self) -> Result<&Arc<Runner>, DeployError> {
        self.inner
            .backups
            .runner
            .get()
            .ok_or_else(|| DeployError::Tool("the job runner is not started".to_owned()))
    }

    /// Starts the job runner (backups, restores) and the backup scheduler.
    /// Call once at start: jobs that were running when berth died are
    /// marked interrupted and cleaned up first (their job containers
    /// removed, partial files deleted), and a scheduled run missed while
    /// berth was down runs once.
    pub async fn start_jobs(&self, shutdown: CancellationToken) -> Result<(), DeployError> {
        let handler = Arc::new(JobHandler {
            runtime: self.clone(),
        });
        let runner = Runner::builder(self.store().clone())
            .register(
                BACKUP_JOB,
                Policy {
                    // A failed backup is recorded as failed; the next schedule runs anew.
                    max_attempts: 1,
                    retry_interrupted: false,
                    ..Policy::default()
                },
                handler.clone(),
            )
            .register(
                RESTORE_JOB,
                Policy {
                    // A restore is never repeated without the user asking.
                    max_attempts: 1,
                    retry_interrupted: false,
                    ..Policy::default()
                },
                handler,
            )
            .concurrency(2)
            .build();
        if self.inner.backups.runner.set(runner.clone()).is_err() {
            return Ok(());
        }
        let recovered = runner.recover().await.map_err(job_error)?;
        if !recovered.is_empty() {
            tracing::warn!(
                jobs = recovered.len(),
                "cleaned up after jobs interrupted by berth's stop"
            );
        }
        self.remove_orphan_partials().await;
        berth_store::backups::ensure_default_local(self.store()).await?;
        runner.start(shutdown.clone());
        let scheduler = self.clone();
        tokio::spawn(async move { scheduler.run_scheduler(shutdown).await });
        Ok(())
    }

    /// Local destinations' temp files that no running write owns (none runs at start).
    async fn remove_orphan_partials(&self) {
        let Ok(dests) = berth_store::backups::list_destinations(self.store()).await else {
            return;
        };
        for d in dests {
            if let DestinationTarget::Local { path } = &d.target {
                let dir = self.local_root(path.as_deref());
                match LocalDir::new(&d.name, dir).remove_stale_partials().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(destination = %d.name, removed = n, "removed partial backup files")
                    }
                    Err(e) => {
                        tracing::warn!(destination = %d.name, error = %e, "could not remove partial backup files")
                    }
                }
            }
        }
    }

    fn local_root(&self, path: Option<&str>) -> std::path::PathBuf {
        path.map_or_else(|| self.data_dir().join("backups"), std::path::PathBuf::from)
    }

    /// A destination as berth-backup uses it.
    async fn open_destination(&self, d: &DestinationRow) -> Result<Destination, DeployError> {
        Ok(match &d.target {
            DestinationTarget::Local { path } => {
                Destination::Local(LocalDir::new(&d.name, self.local_root(path.as_deref())))
            }
            DestinationTarget::S3 {
                endpoint,
                region,
                bucket,
                prefix,
                path_style,
                access_key_id,
            } => {
                let secret = berth_store::backups::destination_secret(self.store(), d.id)
                    .await?
                    .unwrap_or_default();
                let mut config = S3Config::new(
                    &d.name,
                    endpoint,
                    region,
                    bucket,
                    access_key_id,
                    SecretString::from(secret),
                );
                config.prefix = prefix.trim_end_matches('/').to_owned();
                config.path_style = *path_style;
                Destination::S3(
                    S3Destination::new(config)
                        .map_err(|e| invalid("endpoint", format!("destination {}: {e}", d.name)))?,
                )
            }
        })
    }

    fn progress_sender(&self, backup_id: i64) -> watch::Sender<BackupProgress> {
        let mut map = self
            .inner
            .backups
            .progress
            .lock()
            .expect("progress poisoned");
        map.entry(backup_id)
            .or_insert_with(|| {
                watch::channel(BackupProgress {
                    backup_id,
                    status: "queued".to_owned(),
                    ..Default::default()
                })
                .0
            })
            .clone()
    }

    fn progress_done(&self, backup_id: i64, status: &str, bytes: u64) {
        let tx = self.progress_sender(backup_id);
        tx.send_modify(|p| {
            p.status = status.to_owned();
            p.bytes = bytes.max(p.bytes);
            p.done = true;
        });
        // Late subscribers read the row; the channel goes after a grace period.
        let runtime = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            runtime
                .inner
                .backups
                .progress
                .lock()
                .expect("progress poisoned")
                .remove(&backup_id);
        });
    }

    /// Queues a backup of `subject`; returns its id at once.
    async fn queue_backup(
        &self,
        subject: &BackupSubject,
        trigger: &str,
        schedule_id: Option<i64>,
        destinations: Vec<i64>,
        passphrase: Option<&str>,
    ) -> Result<i64, DeployError> {
        let runner = self.runner()?.clone();
        let key = subject.dedup_key();
        if runner.find_active(&key).await.map_err(job_error)?.is_some() {
            return Err(job_error(JobError::Duplicate { key, existing: 0 }));
        }
        let destinations = self.pick_destinations(&destinations).await?;
        let backup_id = berth_store::backups::create_backup(
            self.store(),
            &subject.key(),
            trigger,
            schedule_id,
            passphrase,
        )
        .await?;
        self.progress_sender(backup_id);
        let payload = serde_json::to_string(&BackupJob {
            backup_id,
            destinations: destinations.iter().map(|d| d.id).collect(),
        })
        .expect("payload serializes");
        match runner
            .enqueue(
                BACKUP_JOB,
                &payload,
                Enqueue {
                    dedup_key: Some(key),
                    run_at: None,
                },
            )
            .await
        {
            Ok(_) => Ok(backup_id),
            Err(e) => {
                let message = job_error(e);
                berth_store::backups::finish_backup(
                    self.store(),
                    backup_id,
                    &BackupOutcome {
                        status: "cancelled",
                        error: Some(&message.to_string()),
                        ..Default::default()
                    },
                )
                .await?;
                self.progress_done(backup_id, "cancelled", 0);
                Err(message)
            }
        }
    }

    /// The destinations with these ids (all when empty), checked to exist.
    async fn pick_destinations(&self, ids: &[i64]) -> Result<Vec<DestinationRow>, DeployError> {
        let all = berth_store::backups::list_destinations(self.store()).await?;
        if ids.is_empty() {
            if all.is_empty() {
                return Ok(vec![
                    berth_store::backups::ensure_default_local(self.store()).await?,
                ]);
            }
            return Ok(all);
        }
        ids.iter()
            .map(|id| {
                all.iter()
                    .find(|d| d.id == *id)
                    .cloned()
                    .ok_or_else(|| invalid("destinations", format!("there is no destination {id}")))
            })
            .collect()
    }

    /// Runs one backup to the end: the sidecar's dump through the pipeline
    /// to every destination, each destination's result recorded, retention
    /// after a success. Returns the backup's final status.
    async fn run_backup(
        &self,
        backup_id: i64,
        destination_ids: &[i64],
        cancel: CancellationToken,
    ) -> Result<String, DeployError> {
        let backup = berth_store::backups::get_backup(self.store(), backup_id).await?;
        if backup.status != "queued" {
            return Ok(backup.status);
        }
        let subject = BackupSubject::from_key(&backup.subject);
        let resolved = match self.resolve_subject(&subject).await {
            Ok(r) => r,
            Err(e) => {
                self.fail_backup(backup_id, &e.to_string()).await?;
                return Ok("failed".to_owned());
            }
        };
        berth_store::backups::mark_backup_running(
            self.store(),
            backup_id,
            engine_name(resolved.engine),
        )
        .await?;
        let progress = self.progress_sender(backup_id);
        progress.send_modify(|p| p.status = "running".to_owned());

        let mut rows = Vec::new();
        for id in destination_ids {
            match berth_store::backups::find_destination(self.store(), *id).await {
                Ok(d) => rows.push(d),
                Err(e) => {
                    tracing::warn!(backup.id = backup_id, destination.id = id, error = %e, "a destination of the backup is gone")
                }
            }
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let mut name = format!(
            "{}/{stamp}-{backup_id}.{}.zst",
            resolved.key_prefix,
            extension(resolved.engine)
        );
        let passphrase = berth_store::backups::backup_passphrase(self.store(), backup_id).await?;
        if passphrase.is_some() {
            name.push_str(".age");
        }
        let key = ArtifactKey::parse(&name).map_err(|e| invalid("key", e.to_string()))?;
        let mut targets = Vec::new();
        let mut target_ids = Vec::new();
        for d in &rows {
            match self.open_destination(d).await {
                Ok(destination) => {
                    targets.push(Target {
                        destination,
                        key: key.clone(),
                    });
                    target_ids.push(d.id);
                }
                Err(e) => {
                    berth_store::backups::add_copy(
                        self.store(),
                        backup_id,
                        &NewCopy {
                            destination_id: d.id,
                            key: key.as_str(),
                            location: "",
                            size: 0,
                            duration_ms: 0,
                            sha256: None,
                            error: Some(&e.to_string()),
                        },
                    )
                    .await?;
                }
            }
        }

        let conn = resolved.connection()?;
        let cmd = resolved.engine.dump_command(&conn);
        let spec = self.job_container(
            &resolved,
            backup_id,
            "backup",
            cmd.argv.clone(),
            cmd.env_strings(),
            false,
        );
        let sidecar = match self.docker().run_sidecar(&spec).await {
            Ok(s) => s,
            Err(e) => {
                let message = if e.is_not_found() {
                    format!(
                        "cannot start the dump: {e} (is the image {} present?)",
                        resolved.image
                    )
                } else {
                    format!("cannot start the dump: {e}")
                };
                self.fail_backup(backup_id, &message).await?;
                return Ok("failed".to_owned());
            }
        };
        let sidecar_id = sidecar.id.clone();
        let stderr = sidecar.stderr();
        // Cancel and time-out stop the container: Docker cannot kill an exec.
        let stop = cancel.child_token();
        let killer = {
            let docker = self.docker().clone();
            let stop = stop.clone();
            let id = sidecar_id.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                let _ = docker.remove_sidecar(&id).await;
            })
        };
        let counted = Arc::new(AtomicU64::new(0));
        let reader = Counting {
            inner: sidecar.stdout,
            count: counted.clone(),
        };
        let ticker = {
            let counted = counted.clone();
            let progress = progress.clone();
            let started = Instant::now();
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                    let bytes = counted.load(Ordering::Relaxed);
                    let millis = u64::try_from(started.elapsed().as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1);
                    progress.send_modify(|p| {
                        p.bytes = bytes;
                        p.rate = bytes.saturating_mul(1000) / millis;
                    });
                }
            })
        };
        let options = PipelineOptions {
            encryption: passphrase.map(|p| Encryption::Passphrase {
                passphrase: SecretString::from(p),
                work_factor: None,
            }),
            timeout: Some(BACKUP_TIMEOUT),
            ..Default::default()
        };
        let report = berth_backup::run_backup_cancellable(
            DumpSource {
                reader,
                exit: sidecar.exit,
                marker: cmd.marker.unwrap_or(resolved.engine.marker()),
            },
            &options,
            &targets,
            stop.clone(),
        )
        .await;
        stop.cancel();
        let _ = killer.await;
        ticker.abort();
        if let Err(e) = self.docker().remove_sidecar(&sidecar_id).await {
            tracing::warn!(backup.id = backup_id, error = %e, "could not remove the dump's container");
        }

        for (result, dest_id) in report.destinations.iter().zip(&target_ids) {
            let sha = result.sha256.map(|c| c.to_hex());
            let error = result.error.as_ref().map(|e| with_causes(e));
            berth_store::backups::add_copy(
                self.store(),
                backup_id,
                &NewCopy {
                    destination_id: *dest_id,
                    key: key.as_str(),
                    location: &result.location,
                    size: i64::try_from(result.size).unwrap_or(i64::MAX),
                    duration_ms: i64::try_from(result.duration.as_millis()).unwrap_or(i64::MAX),
                    sha256: sha.as_deref(),
                    // A pipeline failure leaves nothing anywhere: say so per destination.
                    error: error
                        .as_deref()
                        .or(report.error.as_ref().map(|_| "not kept: the backup failed")),
                },
            )
            .await?;
        }
        let failed_copies = rows.len() > target_ids.len();
        let status = match &report.error {
            Some(PipelineError::Cancelled) => "cancelled",
            Some(_) => "failed",
            None if report.fully_succeeded() && !failed_copies => "succeeded",
            None if report.succeeded() => "partial",
            None => "failed",
        };
        let error = report.error.as_ref().map(|e| {
            let tail = stderr.text();
            if tail.is_empty() {
                e.to_string()
            } else {
                format!("{e}: {tail}")
            }
        });
        let error = error.or_else(|| {
            (status != "succeeded").then(|| {
                report
                    .destinations
                    .iter()
                    .filter_map(|d| d.error.as_ref().map(|e| format!("{}: {e}", d.label)))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        });
        let sha = report.sha256.map(|c| c.to_hex());
        berth_store::backups::finish_backup(
            self.store(),
            backup_id,
            &BackupOutcome {
                status,
                dump_bytes: Some(i64::try_from(report.dump_bytes).unwrap_or(i64::MAX)),
                stored_bytes: Some(i64::try_from(report.stored_bytes).unwrap_or(i64::MAX)),
                sha256: if report.error.is_none() {
                    sha.as_deref()
                } else {
                    None
                },
                error: error.as_deref().filter(|e| !e.is_empty()),
            },
        )
        .await?;
        tracing::info!(
            backup.id = backup_id,
            backup.status = status,
            dump_bytes = report.dump_bytes,
            "backup ended"
        );
        self.progress_done(backup_id, status, report.dump_bytes);
        if matches!(status, "succeeded" | "partial") && backup.trigger != "safety" {
            self.apply_retention(&backup.subject, &target_ids).await;
        }
        Ok(status.to_owned())
    }

    async fn fail_backup(&self, backup_id: i64, message: &str) -> Result<(), DeployError> {
        berth_store::backups::finish_backup(
            self.store(),
            backup_id,
            &BackupOutcome {
                status: "failed",
                error: Some(message),
                ..Default::default()
            },
        )
        .await?;
        self.progress_done(backup_id, "failed", 0);
        Ok(())
    }

    /// A job container for one backup or restore of `resolved`.
    fn job_container(
        &self,
        resolved: &ResolvedSubject,
        backup_id: i64,
        what: &str,
        argv: Vec<String>,
        env: Vec<String>,
        stdin: bool,
    ) -> SidecarSpec {
        let mut labels = self.object_labels();
        labels.extend([
            (MANAGED.to_owned(), "true".to_owned()),
            (INSTANCE.to_owned(), self.instance_id().to_owned()),
            (KIND.to_owned(), "job".to_owned()),
            (BACKUP_LABEL.to_owned(), backup_id.to_string()),
        ]);
        labels.extend(resolved.labels.iter().cloned());
        let suffix: u32 = rand::random();
        SidecarSpec {
            name: format!("berth-job-{what}-{backup_id}-{suffix:08x}"),
            image: resolved.image.clone(),
            network: resolved.network.clone(),
            argv,
            env,
            labels,
            stdin,
        }
    }

    /// Deletes, per destination, what its retention says, from berth's
    /// records (never the newest good backup: [`berth_backup::plan_deletions`]).
    async fn apply_retention(&self, subject: &SubjectKey, destination_ids: &[i64]) {
        for id in destination_ids {
            if let Err(e) = self.retain(subject, *id).await {
                tracing::warn!(destination.id = id, error = %e, "retention failed");
            }
        }
    }

    async fn retain(&self, subject: &SubjectKey, destination_id: i64) -> Result<(), DeployError> {
        let d = berth_store::backups::find_destination(self.store(), destination_id).await?;
        let r = d.retention;
        if r.keep_last.is_none() && r.max_age_days.is_none() && r.max_total_bytes.is_none() {
            return Ok(());
        }
        let policy = berth_backup::RetentionPolicy {
            keep_last: r.keep_last.and_then(|n| usize::try_from(n).ok()),
            max_age: r.max_age_days.map(chrono::Duration::days),
            max_total_bytes: r.max_total_bytes.and_then(|n| u64::try_from(n).ok()),
        };
        let copies =
            berth_store::backups::live_copies(self.store(), destination_id, subject).await?;
        let records: Vec<berth_backup::BackupRecord<i64>> = copies
            .iter()
            .map(|c| berth_backup::BackupRecord {
                id: c.copy_id,
                created_at: chrono::DateTime::from_timestamp(c.created_at, 0).unwrap_or_default(),
                size: u64::try_from(c.size).unwrap_or(0),
                good: c.good,
            })
            .collect();
        let doomed = berth_backup::plan_deletions(&records, &policy, chrono::Utc::now());
        if doomed.is_empty() {
            return Ok(());
        }
        let destination = self.open_destination(&d).await?;
        for copy_id in doomed {
            let Some(c) = copies.iter().find(|c| c.copy_id == copy_id) else {
                continue;
            };
            let key = ArtifactKey::parse(&c.key).map_err(|e| invalid("key", e.to_string()))?;
            match destination.delete(&key).await {
                Ok(()) => {
                    berth_store::backups::mark_copy_deleted(self.store(), copy_id).await?;
                    tracing::info!(backup.id = c.backup_id, destination = %d.name, "retention deleted a backup");
                }
                Err(e) => {
                    tracing::warn!(backup.id = c.backup_id, destination = %d.name, error = %e, "retention could not delete a backup")
                }
            }
        }
        Ok(())
    }

    /// Restores one backup into its own database: a safety backup first;
    /// if the restore fails, the safety backup is restored.
    async fn run_restore(
        &self,
        restore_id: i64,
        backup_id: i64,
        cancel: CancellationToken,
    ) -> Result<(), DeployError> {
        let backup = berth_store::backups::get_backup(self.store(), backup_id).await?;
        let subject = BackupSubject::from_key(&backup.subject);
        let resolved = self.resolve_subject(&subject).await?;
        // The safety backup: to the default local directory only.
        let local = berth_store::backups::ensure_default_local(self.store()).await?;
        let safety_id = berth_store::backups::create_backup(
            self.store(),
            &backup.subject,
            "safety",
            None,
            None,
        )
        .await?;
        let safety_status = self
            .run_backup(safety_id, &[local.id], cancel.clone())
            .await?;
        if safety_status != "succeeded" {
            let safety = berth_store::backups::get_backup(self.store(), safety_id).await?;
            let message = format!(
                "the safety backup failed, so nothing was restored: {}",
                safety.error.unwrap_or_default()
            );
            berth_store::backups::finish_restore(
                self.store(),
                restore_id,
                Some(safety_id),
                "failed",
                Some(&message),
            )
            .await?;
            return Ok(());
        }
        match self.restore_into(&backup, &resolved, cancel.clone()).await {
            Ok(()) => {
                berth_store::backups::finish_restore(
                    self.store(),
                    restore_id,
                    Some(safety_id),
                    "succeeded",
                    None,
                )
                .await?;
                tracing::info!(backup.id = backup_id, "restore succeeded");
            }
            Err(e) => {
                tracing::warn!(backup.id = backup_id, error = %e, "restore failed; restoring the safety backup");
                let safety = berth_store::backups::get_backup(self.store(), safety_id).await?;
                let (status, message) = match self
                    .restore_into(&safety, &resolved, CancellationToken::new())
                    .await
                {
                    Ok(()) => (
                        "rolled_back",
                        format!(
                            "{e}; the database was put back as it was before (safety backup {safety_id})"
                        ),
                    ),
                    Err(e2) => (
                        "failed",
                        format!("{e}; restoring the safety backup {safety_id} failed too: {e2}"),
                    ),
                };
                berth_store::backups::finish_restore(
                    self.store(),
                    restore_id,
                    Some(safety_id),
                    status,
                    Some(&message),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Streams one backup into the database: its checksum checked first,
    /// then decrypted and decompressed into the restore tool's stdin.
    async fn restore_into(
        &self,
        backup: &BackupRow,
        resolved: &ResolvedSubject,
        cancel: CancellationToken,
    ) -> Result<(), DeployError> {
        let expected = backup
            .sha256
            .as_deref()
            .and_then(Checksum::parse_hex)
            .ok_or_else(|| {
                invalid(
                    "backup",
                    format!("backup {} has no checksum: it did not succeed", backup.id),
                )
            })?;
        // Prefer a local copy: no download.
        let mut copies: Vec<_> = backup
            .copies
            .iter()
            .filter(|c| c.error.is_none() && c.deleted_at.is_none())
            .collect();
        let mut opened = Vec::new();
        for c in copies.drain(..) {
            let d = berth_store::backups::find_destination(self.store(), c.destination_id).await?;
            let local = matches!(d.target, DestinationTarget::Local { .. });
            opened.push((local, c, d));
        }
        opened.sort_by_key(|(local, ..)| !*local);
        let mut last_error = format!("backup {} has no copy left at any destination", backup.id);
        for (_, copy, d) in opened {
            let destination = self.open_destination(&d).await?;
            let key = ArtifactKey::parse(&copy.key).map_err(|e| invalid("key", e.to_string()))?;
            if let Err(e) = berth_backup::verify_checksum(&destination, &key, expected).await {
                last_error = format!("{}: {e}", d.name);
                continue;
            }
            return self
                .stream_restore(backup, resolved, &destination, &key, expected, cancel)
                .await;
        }
        Err(DeployError::Tool(last_error))
    }

    async fn stream_restore(
        &self,
        backup: &BackupRow,
        resolved: &ResolvedSubject,
        destination: &Destination,
        key: &ArtifactKey,
        expected: Checksum,
        cancel: CancellationToken,
    ) -> Result<(), DeployError> {
        let conn = resolved.connection()?;
        let cmd = resolved.engine.restore_command(&conn).ok_or_else(|| {
            invalid(
                "backup",
                format!(
                    "berth cannot restore {} backups into a running database yet",
                    engine_name(resolved.engine)
                ),
            )
        })?;
        let spec = self.job_container(
            resolved,
            backup.id,
            "restore",
            cmd.argv.clone(),
            cmd.env_strings(),
            true,
        );
        let mut sidecar = self.docker().run_sidecar(&spec).await?;
        let id = sidecar.id.clone();
        let stderr = sidecar.stderr();
        let stdin = sidecar
            .stdin
            .take()
            .expect("the restore container has stdin");
        // Drain stdout so the container never blocks on a full pipe.
        let mut stdout = sidecar.stdout;
        let drain = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await;
        });
        let decryption = berth_store::backups::backup_passphrase(self.store(), backup.id)
            .await?
            .map(|p| DecryptionKey::Passphrase(SecretString::from(p)));
        let outcome = async {
            let streamed = tokio::select! {
                r = berth_backup::restore(destination, key, Some(expected), decryption, stdin) => r.map(|_| ()).map_err(|e| e.to_string()),
                () = cancel.cancelled() => Err("cancelled".to_owned()),
            };
            streamed?;
            let code = tokio::time::timeout(BACKUP_TIMEOUT, sidecar.exit)
                .await
                .map_err(|_| "the restore timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            if code == 0 {
                Ok(())
            } else {
                Err(format!("the restore tool exited with {code}: {}", stderr.text()))
            }
        }
        .await;
        let _ = self.docker().remove_sidecar(&id).await;
        drain.abort();
        outcome.map_err(DeployError::Tool)
    }

    /// The scheduler: queues each enabled schedule's backup when it is due;
    /// one whose run was missed while berth was down runs once now.
    async fn run_scheduler(&self, shutdown: CancellationToken) {
        loop {
            let wait = match self.schedule_tick().await {
                Ok(Some(next)) => (next - berth_store::now()).clamp(1, 30),
                Ok(None) => 30,
                Err(e) => {
                    tracing::warn!(error = %e, "the backup scheduler failed a pass");
                    30
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(u64::try_from(wait).unwrap_or(30))) => {}
            }
        }
    }

    /// One pass: returns when the next schedule is due.
    async fn schedule_tick(&self) -> Result<Option<i64>, DeployError> {
        let now = berth_store::now();
        let mut soonest: Option<i64> = None;
        for s in berth_store::backups::enabled_schedules(self.store()).await? {
            let Ok(schedule) = Schedule::parse(&s.cron, &s.time_zone) else {
                continue;
            };
            let next_after = |t: i64| {
                schedule
                    .next_after(chrono::DateTime::from_timestamp(t, 0).unwrap_or_default())
                    .ok()
                    .map(|d| d.timestamp())
            };
            let next = match s.next_run_at {
                Some(due) if due <= now => {
                    let subject = BackupSubject::from_key(&s.subject);
                    let passphrase =
                        berth_store::backups::schedule_passphrase(self.store(), s.id).await?;
                    match self
                        .queue_backup(
                            &subject,
                            "schedule",
                            Some(s.id),
                            s.destinations.clone(),
                            passphrase.as_deref(),
                        )
                        .await
                    {
                        Ok(id) => tracing::info!(
                            schedule.id = s.id,
                            backup.id = id,
                            "scheduled backup queued"
                        ),
                        Err(e) => {
                            tracing::warn!(schedule.id = s.id, error = %e, "scheduled backup not queued")
                        }
                    }
                    // Missed runs collapse into this one: the next is after now.
                    let next = next_after(now);
                    berth_store::backups::set_schedule_runs(self.store(), s.id, Some(now), next)
                        .await?;
                    next
                }
                Some(due) => Some(due),
                None => {
                    let next = next_after(now);
                    berth_store::backups::set_schedule_runs(self.store(), s.id, None, next).await?;
                    next
                }
            };
            if let Some(n) = next {
                soonest = Some(soonest.map_or(n, |s| s.min(n)));
            }
        }
        Ok(soonest)
    }

    /// The cleanup of an interrupted backup or restore job: its containers
    /// removed and its backup marked interrupted (the partial files go with
    /// [`Runtime::remove_orphan_partials`]; S3 multipart uploads that were
    /// never completed hold no object).
    async fn clean_interrupted(&self, job: &StoredJob) {
        let backup_id = match job.kind.as_str() {
            BACKUP_JOB => serde_json::from_str::<BackupJob>(&job.payload)
                .ok()
                .map(|j| j.backup_id),
            RESTORE_JOB => {
                match serde_json::from_str::<RestoreJob>(&job.payload) {
                    Ok(j) => {
                        let _ = berth_store::backups::finish_restore(
                        self.store(),
                        j.restore_id,
                        None,
                        "failed",
                        Some("interrupted: berth stopped while the restore ran; check the database"),
                    )
                    .await;
                        Some(j.backup_id)
                    }
                    Err(_) => None,
                }
            }
            _ => None,
        };
        let Some(backup_id) = backup_id else { return };
        let id = backup_id.to_string();
        match self
            .docker()
            .list_containers(&[(KIND, "job"), (BACKUP_LABEL, &id)])
            .await
        {
            Ok(list) => {
                for c in list {
                    if let Err(e) = self.docker().remove_sidecar(&c.id).await {
                        tracing::warn!(container.name = %c.name, error = %e, "could not remove an interrupted job's container");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list an interrupted job's containers"),
        }
        if job.kind == BACKUP_JOB {
            let _ = berth_store::backups::mark_backup_interrupted(self.store(), backup_id).await;
        }
        // Recovery runs before the runner starts, so a backup still `running`
        // died with berth; so did a `queued` safety backup (it runs inside its
        // restore's job). Other `queued` backups still have their job queued
        // and run once the runner starts: they are left alone.
        if let Ok(list) = berth_store::backups::list_backups(self.store(), None, 50).await {
            for b in list.iter().filter(|b| {
                b.status == "running" || (b.status == "queued" && b.trigger == "safety")
            }) {
                let _ = berth_store::backups::mark_backup_interrupted(self.store(), b.id).await;
                let bid = b.id.to_string();
                if let Ok(list) = self
                    .docker()
                    .list_containers(&[(KIND, "job"), (BACKUP_LABEL, &bid)])
                    .await
                {
                    for c in list {
                        let _ = self.docker().remove_sidecar(&c.id).await;
                    }
                }
            }
        }
    }
}

/// An error with its causes (`… error sending request: tcp connect error:
/// Connection refused`): the S3 client's top line alone does not say why.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// The runner's handler for backups and restores.
struct JobHandler {
    runtime: Runtime,
}

impl Handler for JobHandler {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let runtime = self.runtime.clone();
        Box::pin(async move {
            let result = match job.kind.as_str() {
                BACKUP_JOB => match serde_json::from_str::<BackupJob>(&job.payload) {
                    Ok(p) => runtime
                        .run_backup(p.backup_id, &p.destinations, job.cancel.clone())
                        .await
                        .map(|status| match status.as_str() {
                            "succeeded" | "partial" => Outcome::Done,
                            "cancelled" => Outcome::Cancelled,
                            other => Outcome::Failed(format!("backup {}: {other}", p.backup_id)),
                        }),
                    Err(e) => Ok(Outcome::Failed(format!("bad payload: {e}"))),
                },
                RESTORE_JOB => match serde_json::from_str::<RestoreJob>(&job.payload) {
                    Ok(p) => {
                        let r = runtime
                            .run_restore(p.restore_id, p.backup_id, job.cancel.clone())
                            .await;
                        if let Err(e) = &r {
                            let _ = berth_store::backups::finish_restore(
                                runtime.store(),
                                p.restore_id,
                                None,
                                "failed",
                                Some(&e.to_string()),
                            )
                            .await;
                        }
                        r.map(|()| Outcome::Done)
                    }
                    Err(e) => Ok(Outcome::Failed(format!("bad payload: {e}"))),
                },
                other => Ok(Outcome::Failed(format!("unknown job kind {other}"))),
            };
            result.unwrap_or_else(|e| Outcome::Failed(e.to_string()))
        })
    }

    fn cleanup(&self, job: StoredJob) -> BoxFuture<()> {
        let runtime = self.runtime.clone();
        Box::pin(async move { runtime.clean_interrupted(&job).await })
    }
}

/// Counts what is read through it (the progress of a dump).
struct Counting {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    count: Arc<AtomicU64>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner.as_mut().poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        polled
    }
}

impl Backups {
    /// The subject of a stack's service, checked to be a database.
    pub async fn stack_subject(
        &self,
        project: &ProjectName,
        stack: &StackName,
        service: &str,
    ) -> Result<(BackupSubject, ResolvedSubject), DeployError> {
        let found = berth_store::stacks::find(self.store(), project, stack).await?;
        let subject = BackupSubject::StackService {
            stack: found.id,
            service: service.to_owned(),
        };
        let resolved = self.resolve_stack_service(&found, service).await?;
        Ok((subject, resolved))
    }

    /// A managed database's subject, found by its project and name.
    pub async fn database_subject(
        &self,
        project: &ProjectName,
        name: &berth_core::DatabaseName,
    ) -> Result<(BackupSubject, ResolvedSubject), DeployError> {
        let db = berth_store::databases::find(self.store(), project, name).await?;
        let subject = BackupSubject::Database { id: db.id.get() };
        let resolved = self.resolve_database(&db).await?;
        Ok((subject, resolved))
    }

    /// Whether a stack's service is a database berth can back up (for the stack page).
    pub async fn is_database_service(&self, stack: &Stack, service: &str) -> bool {
        self.resolve_stack_service(stack, service).await.is_ok()
    }

    /// "Back up now": returns the backup's id at once; the backup runs as a job.
    pub async fn back_up_now(
        &self,
        subject: &BackupSubject,
        request: &BackupNowRequest,
    ) -> Result<i64, DeployError> {
        self.resolve_subject(subject).await?;
        self.queue_backup(
            subject,
            "manual",
            None,
            request.destinations.clone(),
            request.passphrase.as_deref().filter(|p| !p.is_empty()),
        )
        .await
    }

    pub async fn list(
        &self,
        subject: &BackupSubject,
        limit: i64,
    ) -> Result<Vec<BackupRow>, DeployError> {
        Ok(berth_store::backups::list_backups(self.store(), Some(&subject.key()), limit).await?)
    }

    pub async fn list_all(&self, limit: i64) -> Result<Vec<BackupRow>, DeployError> {
        Ok(berth_store::backups::list_backups(self.store(), None, limit).await?)
    }

    pub async fn get(&self, id: i64) -> Result<BackupRow, DeployError> {
        Ok(berth_store::backups::get_backup(self.store(), id).await?)
    }

    /// A human name for a backup's subject (`project/stack/service`).
    pub async fn subject_label(&self, subject: &SubjectKey) -> String {
        match BackupSubject::from_key(subject) {
            BackupSubject::StackService { stack, service } => {
                match berth_store::stacks::find_by_id(self.store(), stack).await {
                    Ok(s) => format!("{}/{}/{service}", s.project, s.name),
                    Err(_) => format!("(removed stack)/{service}"),
                }
            }
            BackupSubject::Database { id } => {
                match berth_store::databases::find_by_id(
                    self.store(),
                    berth_core::DatabaseId::new(id),
                )
                .await
                {
                    Ok(db) => format!("{}/{}", db.project, db.name),
                    Err(_) => format!("(removed database {id})"),
                }
            }
        }
    }

    /// Live progress of a backup; `None` once it ended long enough ago.
    pub fn progress(&self, id: i64) -> Option<watch::Receiver<BackupProgress>> {
        self.inner
            .backups
            .progress
            .lock()
            .expect("progress poisoned")
            .get(&id)
            .map(watch::Sender::subscribe)
    }

    /// Cancels a queued or running backup (its dump container is removed).
    pub async fn cancel(&self, id: i64) -> Result<bool, DeployError> {
        let backup = berth_store::backups::get_backup(self.store(), id).await?;
        if !matches!(backup.status.as_str(), "queued" | "running") {
            return Ok(false);
        }
        let runner = self.runner()?.clone();
        let key = BackupSubject::from_key(&backup.subject).dedup_key();
        let Some(job) = runner.find_active(&key).await.map_err(job_error)? else {
            return Ok(false);
        };
        let done = runner.cancel(job.id).await.map_err(job_error)?;
        if done && backup.status == "queued" {
            berth_store::backups::finish_backup(
                self.store(),
                id,
                &BackupOutcome {
                    status: "cancelled",
                    error: Some("cancelled before it started"),
                    ..Default::default()
                },
            )
            .await?;
            self.progress_done(id, "cancelled", 0);
        }
        Ok(done)
    }

    /// Restores a backup into the database it was taken of. `confirm` must
    /// be that database's name; `target` must be `same` (a stack's service
    /// has no "new database beside it"). Returns the restore's id; it runs
    /// as a job.
    pub async fn restore(&self, id: i64, target: &str, confirm: &str) -> Result<i64, DeployError> {
        let backup = berth_store::backups::get_backup(self.store(), id).await?;
        if target != "same" {
            return Err(invalid(
                "target",
                "only \"same\" is possible for a database inside a stack: the backup is restored into the database it was taken of",
            ));
        }
        if !matches!(backup.status.as_str(), "succeeded" | "partial") {
            return Err(invalid(
                "backup",
                format!(
                    "backup {id} did not succeed ({}): it cannot be restored",
                    backup.status
                ),
            ));
        }
        let subject = BackupSubject::from_key(&backup.subject);
        let resolved = self.resolve_subject(&subject).await?;
        if confirm != resolved.name {
            return Err(invalid(
                "confirm",
                format!(
                    "type the database's name, {}, to confirm the restore",
                    resolved.name
                ),
            ));
        }
        match self.docker().inspect_container(&resolved.container).await? {
            Some(c) if c.state.is_running() => {}
            _ => {
                return Err(DeployError::Conflict(format!(
                    "{} is not running: start it, then restore",
                    resolved.name
                )));
            }
        }
        let runner = self.runner()?.clone();
        let key = subject.dedup_key();
        if runner.find_active(&key).await.map_err(job_error)?.is_some() {
            return Err(job_error(JobError::Duplicate { key, existing: 0 }));
        }
        let restore_id = berth_store::backups::create_restore(self.store(), id).await?;
        let payload = serde_json::to_string(&RestoreJob {
            restore_id,
            backup_id: id,
        })
        .expect("payload serializes");
        if let Err(e) = runner
            .enqueue(
                RESTORE_JOB,
                &payload,
                Enqueue {
                    dedup_key: Some(key),
                    run_at: None,
                },
            )
            .await
        {
            let e = job_error(e);
            berth_store::backups::finish_restore(
                self.store(),
                restore_id,
                None,
                "failed",
                Some(&e.to_string()),
            )
            .await?;
            return Err(e);
        }
        Ok(restore_id)
    }

    pub async fn restore_status(&self, id: i64) -> Result<RestoreStatus, DeployError> {
        let r = berth_store::backups::get_restore(self.store(), id).await?;
        Ok(RestoreStatus {
            id: r.id,
            backup_id: r.backup_id,
            safety_backup_id: r.safety_backup_id,
            status: r.status,
            error: r.error,
        })
    }

    // ------------------------------------------------------------ destinations

    pub async fn destinations(&self) -> Result<Vec<DestinationRow>, DeployError> {
        berth_store::backups::ensure_default_local(self.store()).await?;
        Ok(berth_store::backups::list_destinations(self.store()).await?)
    }

    pub async fn destination(&self, id: i64) -> Result<DestinationRow, DeployError> {
        Ok(berth_store::backups::find_destination(self.store(), id).await?)
    }

    fn destination_target(request: &DestinationRequest) -> Result<DestinationTarget, DeployError> {
        let name = request.name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "name",
                "a destination's name is 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        for (field, v) in [
            ("keep_last", request.keep_last),
            ("max_age_days", request.max_age_days),
            ("max_total_bytes", request.max_total_bytes),
        ] {
            if v.is_some_and(|v| v < 1) {
                return Err(invalid(
                    field,
                    format!("{field} must be at least 1 (leave it empty for no limit)"),
                ));
            }
        }
        match request.kind.as_str() {
            "local" => {
                let path = request
                    .path
                    .as_deref()
                    .map(str::trim)
                    .filter(|p| !p.is_empty());
                if let Some(p) = path
                    && !p.starts_with('/')
                {
                    return Err(invalid("path", "the directory must be an absolute path"));
                }
                Ok(DestinationTarget::Local {
                    path: path.map(str::to_owned),
                })
            }
            "s3" => {
                let endpoint = request.endpoint.trim();
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return Err(invalid(
                        "endpoint",
                        "the endpoint is a URL: https://s3.eu-central-1.amazonaws.com, http://127.0.0.1:9000…",
                    ));
                }
                if request.bucket.trim().is_empty() {
                    return Err(invalid("bucket", "the bucket is required"));
                }
                if request.access_key_id.trim().is_empty() {
                    return Err(invalid("access_key_id", "the access key id is required"));
                }
                let prefix = request.prefix.trim().trim_matches('/');
                if !prefix.is_empty() && ArtifactKey::parse(prefix).is_err() {
                    return Err(invalid(
                        "prefix",
                        "the prefix is letters, digits, '-', '_', '.' and '/' between parts",
                    ));
                }
                Ok(DestinationTarget::S3 {
                    endpoint: endpoint.trim_end_matches('/').to_owned(),
                    region: if request.region.trim().is_empty() {
                        "us-east-1".to_owned()
                    } else {
                        request.region.trim().to_owned()
                    },
                    bucket: request.bucket.trim().to_owned(),
                    prefix: prefix.to_owned(),
                    path_style: request.path_style,
                    access_key_id: request.access_key_id.trim().to_owned(),
                })
            }
            other => Err(invalid(
                "kind",
                format!("unknown destination kind {other:?}: local or s3"),
            )),
        }
    }

    pub async fn create_destination(
        &self,
        request: &DestinationRequest,
    ) -> Result<DestinationRow, DeployError> {
        let target = Self::destination_target(request)?;
        let secret = request
            .secret_access_key
            .as_deref()
            .filter(|s| !s.is_empty());
        if matches!(target, DestinationTarget::S3 { .. }) && secret.is_none() {
            return Err(invalid(
                "secret_access_key",
                "the secret access key is required",
            ));
        }
        Ok(berth_store::backups::create_destination(
            self.store(),
            &berth_store::backups::DestinationInput {
                name: request.name.trim(),
                target: &target,
                secret,
                retention: berth_store::backups::Retention {
                    keep_last: request.keep_last,
                    max_age_days: request.max_age_days,
                    max_total_bytes: request.max_total_bytes,
                },
            },
        )
        .await?)
    }

    pub async fn update_destination(
        &self,
        id: i64,
        request: &DestinationRequest,
    ) -> Result<DestinationRow, DeployError> {
        let target = Self::destination_target(request)?;
        Ok(berth_store::backups::update_destination(
            self.store(),
            id,
            &berth_store::backups::DestinationInput {
                name: request.name.trim(),
                target: &target,
                secret: request
                    .secret_access_key
                    .as_deref()
                    .filter(|s| !s.is_empty()),
                retention: berth_store::backups::Retention {
                    keep_last: request.keep_last,
                    max_age_days: request.max_age_days,
                    max_total_bytes: request.max_total_bytes,
                },
            },
        )
        .await?)
    }

    /// Removes a destination that holds no backup; never deletes a file.
    pub async fn delete_destination(&self, id: i64) -> Result<(), DeployError> {
        Ok(berth_store::backups::delete_destination(self.store(), id).await?)
    }

    /// "Test": writes a small object, reads it back, deletes it.
    pub async fn test_destination(&self, id: i64) -> Result<(), DeployError> {
        let d = berth_store::backups::find_destination(self.store(), id).await?;
        match self.open_destination(&d).await? {
            Destination::S3(s3) => s3
                .test()
                .await
                .map_err(|e| DeployError::Tool(e.to_string())),
            Destination::Local(local) => {
                let root = local.root().to_owned();
                let result: std::io::Result<()> = async {
                    tokio::fs::create_dir_all(&root).await?;
                    let probe = root.join(format!(".berth-test-{:016x}", rand::random::<u64>()));
                    let body = b"berth destination test";
                    tokio::fs::write(&probe, body).await?;
                    let back = tokio::fs::read(&probe).await;
                    tokio::fs::remove_file(&probe).await?;
                    if back? != body {
                        return Err(std::io::Error::other(
                            "what was read back differs from what was written",
                        ));
                    }
                    Ok(())
                }
                .await;
                result.map_err(|e| DeployError::Tool(format!("{}: {e}", root.display())))
            }
        }
    }

    // ------------------------------------------------------------ schedules

    pub async fn schedules(
        &self,
        subject: &BackupSubject,
    ) -> Result<Vec<ScheduleView>, DeployError> {
        let rows = berth_store::backups::list_schedules(self.store(), &subject.key()).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let next_runs = Schedule::parse(&row.cron, &row.time_zone)
                    .and_then(|s| s.next_runs(chrono::Utc::now(), 5))
                    .map(|runs| {
                        runs.iter()
                            .map(|t| t.format("%Y-%m-%d %H:%M %Z").to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                ScheduleView { row, next_runs }
            })
            .collect())
    }

    pub async fn create_schedule(
        &self,
        subject: &BackupSubject,
        request: &ScheduleRequest,
    ) -> Result<ScheduleRow, DeployError> {
        self.resolve_subject(subject).await?;
        // No zone given (an empty form field, an API body without one): UTC.
        let zone = match request.time_zone.trim() {
            "" => "UTC",
            zone => zone,
        };
        let schedule =
            Schedule::parse(&request.cron, zone).map_err(|e| invalid("cron", e.to_string()))?;
        let destinations: Vec<i64> = self
            .pick_destinations(&request.destinations)
            .await?
            .iter()
            .map(|d| d.id)
            .collect();
        let next = schedule
            .next_after(chrono::Utc::now())
            .ok()
            .map(|d| d.timestamp());
        Ok(berth_store::backups::create_schedule(
            self.store(),
            &berth_store::backups::ScheduleInput {
                subject: &subject.key(),
                cron: request.cron.trim(),
                time_zone: schedule.zone().name(),
                destinations: &destinations,
                passphrase: request.passphrase.as_deref().filter(|p| !p.is_empty()),
                enabled: request.enabled,
                next_run_at: next,
            },
        )
        .await?)
    }

    pub async fn delete_schedule(&self, id: i64) -> Result<(), DeployError> {
        Ok(berth_store::backups::delete_schedule(self.store(), id).await?)
    }

    pub async fn set_schedule_enabled(&self, id: i64, enabled: bool) -> Result<(), DeployError> {
        Ok(berth_store::backups::set_schedule_enabled(self.store(), id, enabled).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_images_are_known_by_their_name_and_others_are_not() {
        let none = std::collections::BTreeMap::new();
        for (image, engine) in [
            ("postgres:16", Some(Engine::Postgres)),
            (
                "docker.io/library/postgres:16.2-alpine",
                Some(Engine::Postgres),
            ),
            ("berth-test/postgres:latest", Some(Engine::Postgres)),
            ("postgis/postgis:16-3.4", Some(Engine::Postgres)),
            ("mariadb:11", Some(Engine::MariaDb)),
            ("redis:7@sha256:abc", Some(Engine::Redis)),
            ("mongo:7", Some(Engine::MongoDb)),
            ("nginx:1.27", None),
            ("ghcr.io/postgres-exporter:1", None),
        ] {
            assert_eq!(engine_of(image, &none), engine, "{image}");
        }
        let labelled =
            std::collections::BTreeMap::from([("berth.engine".to_owned(), "postgres".to_owned())]);
        assert_eq!(engine_of("my/db:1", &labelled), Some(Engine::Postgres));
    }
}
