//! An app: one image (or one git build) serving from one container at a time.

use crate::{AppId, AppName, AppStatus, Command, ImageRef, Port, ProjectName};

/// What the user asked for when creating an app from an image.
#[derive(Debug, Clone)]
pub struct NewApp {
    pub name: AppName,
    pub image: ImageRef,
    pub container_port: Port,
    pub command: Option<Command>,
    /// The admin confirmed bind mounts that berth refuses by default.
    pub dangerous_mounts: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Running => "running",
            DesiredState::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct App {
    pub id: AppId,
    pub project: ProjectName,
    pub name: AppName,
    pub image: ImageRef,
    pub container_port: Port,
    pub command: Option<Command>,
    pub desired_state: DesiredState,
    pub status: AppStatus,
    /// Progress, an error from Docker, or an exit code: shown beside the status.
    pub status_detail: Option<String>,
    pub container_id: Option<String>,
    /// The port published on 127.0.0.1 for the current container (only
    /// where the host cannot reach Docker's networks).
    pub host_port: Option<u16>,
    /// Where the edge reaches the current container: its address on the
    /// project network and the app's port.
    pub upstream: Option<std::net::SocketAddr>,
    /// The admin confirmed bind mounts that berth refuses by default.
    pub dangerous_mounts: bool,
    pub created_at: i64,
    pub updated_at: i64,
}
