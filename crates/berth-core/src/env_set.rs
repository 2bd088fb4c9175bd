//! Saved sets of environment variables and who owns them.

use crate::{AppId, EnvChange, EnvVar, ProjectId};

/// Whose variables these are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    App(AppId),
    /// Shared by the apps of one project: `${project.NAME}`.
    Project(ProjectId),
    /// Shared by every app: `${global.NAME}`.
    Global,
}

impl Owner {
    /// The owner's kind as stored (`app`, `project`, `global`).
    pub fn kind(self) -> &'static str {
        match self {
            Owner::App(_) => "app",
            Owner::Project(_) => "project",
            Owner::Global => "global",
        }
    }

    /// The owner's row id as stored (0 for the global set).
    pub fn id(self) -> i64 {
        match self {
            Owner::App(id) => id.get(),
            Owner::Project(id) => id.get(),
            Owner::Global => 0,
        }
    }
}

/// An owner's variables as saved.
#[derive(Debug, Clone, Default)]
pub struct EnvSet {
    /// 0 before the first save.
    pub version: i64,
    /// The version the running container was created with, if known.
    pub deployed_version: Option<i64>,
    pub vars: Vec<EnvVar>,
}

/// The result of a save.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The version now current (unchanged when nothing changed).
    pub version: i64,
    /// Empty when the new set equals the old one: no version is recorded then.
    pub changes: Vec<EnvChange>,
}

/// One save in the history.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub version: i64,
    pub actor: String,
    pub created_at: i64,
    /// (key, "added" | "changed" | "removed")
    pub changes: Vec<(String, String)>,
    pub note: Option<String>,
}
