#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod account;
mod app;
pub mod certificate;
mod command;
pub mod database;
pub mod deployment;
mod domain;
pub mod dotenv;
pub mod env;
mod env_set;
mod ids;
mod image;
mod name;
mod port;
mod project;
mod route;
mod stack;

pub use account::{
    ApiToken, NewSession, Password, PasswordError, REDACTED, SessionUser, TokenScope, User,
    Username, UsernameError,
};
pub use app::{App, DesiredState, NewApp};
pub use command::{Command, CommandError};
pub use database::{Credentials, Database, DatabaseEngine, DatabaseError, DatabaseState};
pub use deployment::{
    DeploySettings, Deployment, DeploymentStatus, GitSource, HealthCheck, RestartPolicy,
    redact_url_credentials, url_has_masked_credentials,
};
pub use domain::{DomainError, DomainName, PathPrefix, PathPrefixError};
pub use env::{EnvChange, EnvFlags, EnvKey, EnvKeyError, EnvVar};
pub use env_set::{EnvSet, HistoryEntry, Owner, Saved};
pub use ids::{ApiTokenId, AppId, DatabaseId, DeploymentId, DomainId, ProjectId, StackId, UserId};
pub use image::{ImageRef, ImageRefError};
pub use name::{AppName, DatabaseName, NameError, ProjectName, StackName};
pub use port::{Port, PortError};
pub use project::{Project, ProjectSummary};
pub use route::{Domain, DomainTarget, NewDomain, TlsMode};
pub use stack::{Stack, StackSource, StackStatus};
mod status;
pub use status::AppStatus;
mod volume;
pub use volume::{
    AppVolume, BindRefusal, BindRules, DeployStrategy, HostPath, MountPath, OwnedVolume, PathError,
    ResourceKind, VolumeName, VolumeSource, docker_volume_name,
};

/// Seconds since the Unix epoch: the one clock stored times use.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
