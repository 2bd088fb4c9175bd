use berth_core::{AppName, ProjectName};

/// The project's private Docker network.
pub fn network_name(project: &ProjectName) -> String {
    format!("berth_{project}")
}

/// The app's container. `_` is not allowed in names, so the mapping is one to one.
pub fn container_name(project: &ProjectName, app: &AppName) -> String {
    format!("berth_{project}_{app}")
}

/// The container of one deployment of the app: a new name per deployment,
/// so the new container can start beside the one still serving.
pub fn deployment_container_name(project: &ProjectName, app: &AppName, number: i64) -> String {
    format!("berth_{project}_{app}_{number}")
}

pub(crate) const MANAGED: &str = "berth.managed";
pub(crate) const INSTANCE: &str = "berth.instance";
pub(crate) const PROJECT: &str = "berth.project";
pub(crate) const APP: &str = "berth.app";
/// The deployment number a container runs (absent on containers made before deployments).
pub(crate) const DEPLOYMENT: &str = "berth.deployment";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names_keep_projects_and_apps_apart() {
        let a = container_name(
            &ProjectName::parse("a-b").unwrap(),
            &AppName::parse("c").unwrap(),
        );
        let b = container_name(
            &ProjectName::parse("a").unwrap(),
            &AppName::parse("b-c").unwrap(),
        );
        assert_ne!(a, b);
        assert_eq!(
            network_name(&ProjectName::parse("demo").unwrap()),
            "berth_demo"
        );
    }
}
