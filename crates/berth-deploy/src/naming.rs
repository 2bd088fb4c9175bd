use berth_core::{AppName, DatabaseName, ProjectName, StackName};

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

/// A managed database's container. A database's name is no app's or
/// stack's in its project, and `_` is not allowed in names, so this is
/// never another resource's container.
pub fn database_container_name(project: &ProjectName, db: &DatabaseName) -> String {
    format!("berth_{project}_{db}")
}

/// A managed database's volume (its data).
pub fn database_volume_name(project: &ProjectName, db: &DatabaseName) -> String {
    format!("berth_{project}_{db}_data")
}

/// The name the edge knows a stack service's routes by (its error pages
/// show it, and holds go by it).
pub(crate) fn stack_route_name(project: &ProjectName, stack: &StackName, service: &str) -> String {
    format!("{project}/{stack}/{service}")
}

pub(crate) const MANAGED: &str = "berth.managed";
pub(crate) const INSTANCE: &str = "berth.instance";
pub(crate) const PROJECT: &str = "berth.project";
pub(crate) const APP: &str = "berth.app";
/// What kind of resource owns the object (`app`, `stack`, `database`, `job`):
/// reconcile treats each kind by its own rules and leaves unknown kinds alone.
pub(crate) const KIND: &str = "berth.kind";
/// Whether the app rules apply to a container: kind `app`, or no kind at all
/// (made before kinds existed). Containers of any other kind are not the
/// app service's to stop or remove, whatever other labels they carry.
pub(crate) fn is_app_kind(labels: &std::collections::BTreeMap<String, String>) -> bool {
    matches!(labels.get(KIND).map(String::as_str), None | Some("app"))
}

/// The resource (for an app: its name) and the service within it.
pub(crate) const RESOURCE: &str = "berth.resource";
pub(crate) const SERVICE: &str = "berth.service";
/// The app row a volume was made for: an app made later under the same name
/// is a different app and does not take the volume over by itself.
pub(crate) const APP_ID: &str = "berth.app-id";
/// The volume's name within its app.
pub(crate) const VOLUME: &str = "berth.volume";
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
