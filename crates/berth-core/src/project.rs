//! Projects group apps.

use crate::{ProjectId, ProjectName};

/// A project: apps that share a network and shared variables.
#[derive(Debug, Clone)]
pub struct Project {
    pub id: ProjectId,
    pub name: ProjectName,
    pub created_at: i64,
}

/// A project with how many apps it holds, for lists.
#[derive(Debug, Clone)]
pub struct ProjectSummary {
    pub project: Project,
    pub app_count: i64,
}
