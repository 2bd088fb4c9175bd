//! The plan: what a stack would run, in berth's own types. The JSON form
//! (serde) is what `berth stack plan` prints; environment values never
//! appear in it, only their keys.

use std::collections::BTreeMap;

use berth_core::{DeployStrategy, ImageRef, MountPath, RestartPolicy, VolumeName};
use serde::{Serialize, Serializer};

use crate::error::Problem;
use crate::template::{Generated, Input, Metadata};

/// Where a file came from, which decides how its variables are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// berth's template: `metadata`, `inputs`, `generated`, `compose`.
    Berth,
    /// Coolify's template: a `# key: value` header and `SERVICE_*` magic.
    Coolify,
    /// A plain compose file.
    Compose,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "berth" => Some(Format::Berth),
            "coolify" => Some(Format::Coolify),
            "compose" => Some(Format::Compose),
            _ => None,
        }
    }

    /// Guesses a file's format: a berth template has top-level `metadata`
    /// and `compose`; a Coolify template opens with its `# key: value`
    /// header; anything else is a compose file.
    pub fn detect(text: &str) -> Format {
        let top = |key: &str| text.lines().any(|l| l.starts_with(key));
        if top("metadata:") && top("compose:") {
            return Format::Berth;
        }
        let header = text.lines().next().is_some_and(|l| {
            ["# documentation:", "# slogan:", "# category:", "# tags:"]
                .iter()
                .any(|k| l.starts_with(k))
        });
        if header {
            Format::Coolify
        } else {
            Format::Compose
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub name: Option<String>,
    pub metadata: Option<Metadata>,
    pub services: Vec<Service>,
    pub volumes: Vec<NamedVolume>,
    pub networks: Vec<String>,
    pub secrets: Vec<FileObject>,
    pub configs: Vec<FileObject>,
    pub routes: Vec<Route>,
    pub inputs: Vec<Input>,
    pub generated: Vec<Generated>,
    pub warnings: Vec<Warning>,
    pub errors: Vec<Problem>,
}

impl Plan {
    /// Whether the stack can be installed (possibly after confirmations).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The settings an admin must confirm before install.
    pub fn dangers(&self) -> impl Iterator<Item = &Warning> {
        self.warnings.iter().filter(|w| w.needs_confirmation())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub service: Option<String>,
    pub kind: WarningKind,
    pub message: String,
}

impl Warning {
    pub fn needs_confirmation(&self) -> bool {
        matches!(self.kind, WarningKind::Dangerous)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// `latest` or no tag: the image can change under the stack.
    UnpinnedImage,
    /// Needs an admin's confirmation per install.
    Dangerous,
    /// Accepted, but berth does it its own way (container names, `version`).
    Note,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub service: String,
    /// `None` when the file names no port (`SERVICE_URL_APP` without a
    /// suffix): the port the image exposes, as Coolify's proxy does; the
    /// runtime reads it from the image.
    pub port: Option<u16>,
    pub path: String,
    /// The variable that holds its URL with the scheme (`SERVICE_URL_APP`), if any.
    pub url_variable: Option<String>,
    /// The variable that holds its host alone (`SERVICE_FQDN_APP`), if any.
    pub host_variable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub name: String,
    pub image: Option<ImageRef>,
    pub build: Option<Build>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// Values stay in memory for the runtime; the JSON shows keys only.
    #[serde(rename = "env_keys", serialize_with = "keys_only")]
    pub environment: BTreeMap<String, String>,
    pub env_files: Vec<EnvFile>,
    pub healthcheck: Option<Healthcheck>,
    pub volumes: Vec<Mount>,
    pub tmpfs: Vec<String>,
    pub depends_on: Vec<Dependency>,
    pub restart: Option<RestartPolicy>,
    pub ports: Vec<PortMapping>,
    pub expose: Vec<u16>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub aliases: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub ulimits: BTreeMap<String, Ulimit>,
    pub shm_size: Option<u64>,
    pub stop_grace_period_ms: Option<u64>,
    pub stop_signal: Option<String>,
    pub sysctls: BTreeMap<String, String>,
    pub tty: bool,
    pub stdin_open: bool,
    pub init: bool,
    pub read_only: bool,
    pub privileged: bool,
    pub network_mode: Option<String>,
    pub pid: Option<String>,
    pub platform: Option<String>,
    pub logging: Option<Logging>,
    pub security_opt: Vec<String>,
    pub devices: Vec<String>,
    pub limits: Limits,
    pub secrets: Vec<FileMount>,
    pub configs: Vec<FileMount>,
    /// Accepted and ignored: berth names containers itself.
    pub container_name: Option<String>,
    /// Coolify's `exclude_from_hc`: left out of the stack's health summary.
    pub exclude_from_health: bool,
    pub strategy: DeployStrategy,
}

fn is_some<S: Serializer>(content: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(content.is_some())
}

fn keys_only<S: Serializer>(env: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(env.keys())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Build {
    pub context: String,
    pub dockerfile: Option<String>,
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvFile {
    pub path: String,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// Docker's form: `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u64>,
    pub start_period_ms: Option<u64>,
    pub start_interval_ms: Option<u64>,
    pub disable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    pub source: MountSource,
    pub target: MountPath,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MountSource {
    /// A named volume of the stack: its compose name and berth's name.
    Volume {
        name: String,
        volume: VolumeName,
    },
    /// A volume with no name (`- /data`): berth names it after the path.
    Anonymous {
        volume: VolumeName,
    },
    /// A host path: relative ones live in the stack's directory under the
    /// volumes root; absolute ones outside it need a confirmation.
    Bind {
        path: String,
        /// Coolify's `content:`: written as a file (never a directory)
        /// before the service starts. It may hold interpolated secrets, so
        /// the JSON only says whether there is one.
        #[serde(serialize_with = "is_some")]
        content: Option<String>,
        /// File mode for `content` (`"0755"` for a script).
        mode: Option<u32>,
        is_directory: bool,
    },
    Tmpfs {
        size: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    pub restart: bool,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortMapping {
    pub host_ip: Option<String>,
    pub published: Option<String>,
    pub target: u16,
    /// Last port of a range (`9000-9010`), equal to `target` otherwise.
    pub target_end: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Logging {
    pub driver: Option<String>,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Limits {
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub pids: Option<i64>,
}

/// A secret or config mounted into a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileMount {
    pub source: String,
    pub target: String,
    pub mode: Option<u32>,
    pub uid: Option<String>,
    pub gid: Option<String>,
}

/// A top-level volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedVolume {
    pub name: String,
    pub volume: VolumeName,
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config and where its content comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileObject {
    pub name: String,
    pub source: FileSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileSource {
    /// A file relative to the stack's directory.
    File(String),
    /// The value of a variable.
    Environment(String),
    /// Inline content (configs only); it may hold interpolated secrets,
    /// so the JSON leaves it out.
    Content {
        #[serde(skip)]
        text: String,
    },
}
