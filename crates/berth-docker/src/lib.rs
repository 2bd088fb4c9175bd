#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Where the engine is, lazy connection and API version negotiation.
mod client;
/// Create, start, stop, inspect, list containers and their mounts; read their logs.
mod containers;
/// The one error enum and the mapping from bollard's errors.
mod error;
/// Container events, filtered by label.
mod events;
/// Short commands run inside a running container.
mod exec;
/// Pull, build, inspect and remove images.
mod images;
/// Per-project bridge networks.
mod networks;
/// One-shot job containers: a dump or a restore with its stdout and stdin as streams.
mod sidecar;
/// Monitoring's questions: container list, runtime facts, one-shot stats, processes.
mod stats;
/// Engine version, counts and disk usage.
mod system;
/// Named, labelled volumes that outlive containers; moving data between them.
mod volumes;

pub use client::{DEFAULT_DOCKER_HOST, DockerClient};
pub use containers::{
    ContainerInfo, ContainerOptions, ContainerSpec, ContainerState, Healthcheck, Mount, MountInfo,
    MountKind, PublishedPort, RestartPolicy,
};
pub use error::DockerError;
pub use events::ContainerEvent;
pub use exec::ExecOutput;
pub use images::{BuildContext, BuildProgress, BuildSpec, ImageInfo, PullProgress};
pub use networks::NetworkInfo;
pub use sidecar::{Sidecar, SidecarSpec, StderrTail};
pub use stats::{ContainerRuntime, ContainerSummary, OneShotStats, ProcessInfo};
pub use system::{DiskUsage, EngineInfo};
pub use volumes::{VolumeInfo, VolumeUsage};
