//! A stack: the services of one compose file (a template, a file the user
//! pasted, or one in a git repository), installed and updated together.

use serde::{Deserialize, Serialize};

use crate::{ProjectName, StackId, StackName};

/// Where a stack's compose file comes from. Its JSON form is part of a
/// stack's stored state (`{"kind": "template", "id": …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StackSource {
    /// A template of the catalogue, by id (`gitea`).
    Template { id: String },
    /// A compose file (berth, Coolify or plain compose format) given as text.
    Compose { text: String },
    /// A compose file in a git repository; `build:` contexts are read there.
    Git {
        url: String,
        branch: String,
        path: String,
    },
}

impl StackSource {
    /// `template`, `compose` or `git`, as stored and shown.
    pub fn kind(&self) -> &'static str {
        match self {
            StackSource::Template { .. } => "template",
            StackSource::Compose { .. } => "compose",
            StackSource::Git { .. } => "git",
        }
    }
}

/// Where a stack is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackStatus {
    /// Being brought up (volumes, network, services in depends_on order).
    Installing,
    /// Recreating the services an update changed.
    Updating,
    /// Every service is up (or done, for one-shot services).
    Running,
    /// Bringing it up failed: the message says which service and why.
    Failed,
}

impl StackStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StackStatus::Installing => "installing",
            StackStatus::Updating => "updating",
            StackStatus::Running => "running",
            StackStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<StackStatus> {
        match s {
            "installing" => Some(StackStatus::Installing),
            "updating" => Some(StackStatus::Updating),
            "running" => Some(StackStatus::Running),
            "failed" => Some(StackStatus::Failed),
            _ => None,
        }
    }
}

/// A stack as stored.
#[derive(Debug, Clone)]
pub struct Stack {
    pub id: StackId,
    pub project: ProjectName,
    pub name: StackName,
    /// `template`, `compose` or `git` (see [`StackSource::kind`]).
    pub source_kind: String,
    /// The catalogue id, for stacks from a template.
    pub template: Option<String>,
    pub status: StackStatus,
    /// Why it failed, or what it is doing.
    pub message: Option<String>,
    /// The admin confirmed the plan's dangerous settings at install.
    pub dangerous_confirmed: bool,
    pub created_at: i64,
    pub updated_at: i64,
}
