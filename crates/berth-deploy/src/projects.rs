use berth_core::{Project, ProjectName, ProjectSummary};
use berth_store::projects;

use crate::{DeployError, Projects, network_name};

impl Projects {
    pub async fn create_project(&self, name: &ProjectName) -> Result<Project, DeployError> {
        let project = projects::create(self.store(), name).await?;
        tracing::info!(project.name = %name, "project created");
        Ok(project)
    }

    pub async fn list_projects(&self) -> Result<Vec<ProjectSummary>, DeployError> {
        Ok(projects::list_with_app_counts(self.store()).await?)
    }

    pub async fn find_project(&self, name: &ProjectName) -> Result<Project, DeployError> {
        Ok(projects::find_by_name(self.store(), name).await?)
    }

    /// Deletes an empty project and its network.
    pub async fn delete_project(&self, name: &ProjectName) -> Result<(), DeployError> {
        projects::delete_empty(self.store(), name).await?;
        if let Err(err) = self.docker().remove_network(&network_name(name)).await {
            tracing::warn!(project.name = %name, error = %err, "could not remove the project network");
        }
        tracing::info!(project.name = %name, "project deleted");
        Ok(())
    }
}
