#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod account;
mod command;
mod domain;
pub mod dotenv;
pub mod env;
mod ids;
mod image;
mod name;
mod port;

pub use account::{
    ApiToken, NewSession, Password, PasswordError, SessionUser, User, Username, UsernameError,
};
pub use command::{Command, CommandError};
pub use domain::{DomainError, DomainName, PathPrefix, PathPrefixError};
pub use env::{EnvChange, EnvFlags, EnvKey, EnvKeyError, EnvVar};
pub use ids::{ApiTokenId, AppId, DeploymentId, DomainId, ProjectId, UserId};
pub use image::{ImageRef, ImageRefError};
pub use name::{AppName, NameError, ProjectName};
pub use port::{Port, PortError};
mod status;
pub use status::AppStatus;
mod volume;
pub use volume::{
    AppVolume, BindRefusal, BindRules, DeployStrategy, HostPath, MountPath, PathError,
    ResourceKind, VolumeName, VolumeSource, docker_volume_name,
};
