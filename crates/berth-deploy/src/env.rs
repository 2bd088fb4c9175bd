//! Environment variables: the service functions the dashboard and the API
//! share, and the environment a container is created with.

use berth_core::{
    App, AppName, EnvSet, EnvVar, HistoryEntry, Owner, ProjectName, Saved,
    env::{Scope, Scopes, resolve},
};
use berth_store::apps;
use berth_store::env;
use berth_store::projects;

use crate::{DeployError, Env, Runtime};

/// How many saves the history shows.
pub const HISTORY_LIMIT: i64 = 50;

/// Why a set cannot be saved or started: references that do not resolve,
/// one message each (they name variables, never values). Nothing was saved
/// or started.
#[derive(Debug, Clone)]
pub struct EnvErrors(pub Vec<String>);

impl EnvErrors {
    fn resolve(errors: Vec<berth_core::env::ResolveError>) -> EnvErrors {
        EnvErrors(errors.iter().map(ToString::to_string).collect())
    }
}

impl std::fmt::Display for EnvErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

/// Where shared variables live.
#[derive(Debug, Clone)]
pub enum SharedScope {
    Project(ProjectName),
    Global,
}

/// One shared variable and the apps whose variables reference it.
#[derive(Debug, Clone)]
pub struct SharedUse {
    pub key: String,
    /// `project/app` names.
    pub apps: Vec<String>,
}

impl Env {
    /// The app and its saved variables.
    pub async fn app_env(
        &self,
        project: &ProjectName,
        name: &AppName,
    ) -> Result<(App, EnvSet), DeployError> {
        let app = self.app(project, name).await?;
        let set = env::load(self.store(), Owner::App(app.id)).await?;
        Ok((app, set))
    }

    pub async fn app_env_history(&self, app: &App) -> Result<Vec<HistoryEntry>, DeployError> {
        Ok(env::history(self.store(), Owner::App(app.id), HISTORY_LIMIT).await?)
    }

    /// Every reference in `vars` must resolve against the app's shared variables.
    pub async fn check_app_env(
        &self,
        project: &ProjectName,
        vars: &[EnvVar],
    ) -> Result<(), DeployError> {
        let (shared, global) = self.shared_for(project).await?;
        let databases = self.database_urls(project).await?;
        let scopes = Scopes {
            owner: vars,
            project: &shared.vars,
            global: &global.vars,
            databases: &databases,
        };
        resolve(scopes, Scope::Owner)
            .map(drop)
            .map_err(|e| DeployError::Env(EnvErrors::resolve(e)))
    }

    /// Replaces the app's variables. The running container keeps its old
    /// environment until the app is redeployed: saving never restarts anything.
    pub async fn save_app_env(
        &self,
        project: &ProjectName,
        name: &AppName,
        expected_version: Option<i64>,
        vars: &[EnvVar],
        actor: &str,
    ) -> Result<Saved, DeployError> {
        let app = self.app(project, name).await?;
        self.check_app_env(project, vars).await?;
        let saved = env::save(
            self.store(),
            Owner::App(app.id),
            expected_version,
            vars,
            actor,
            None,
        )
        .await?;
        if !saved.changes.is_empty() {
            tracing::info!(project.name = %project, app.name = %name, env.version = saved.version, env.changes = saved.changes.len(), actor, "environment saved");
        }
        Ok(saved)
    }

    /// Saves the set as it was at `version` as a new version.
    pub async fn revert_app_env(
        &self,
        project: &ProjectName,
        name: &AppName,
        expected_version: Option<i64>,
        version: i64,
        actor: &str,
    ) -> Result<Saved, DeployError> {
        let app = self.app(project, name).await?;
        let vars = env::snapshot(self.store(), Owner::App(app.id), version).await?;
        self.check_app_env(project, &vars).await?;
        let note = format!("reverted to version {version}");
        let saved = env::save(
            self.store(),
            Owner::App(app.id),
            expected_version,
            &vars,
            actor,
            Some(&note),
        )
        .await?;
        tracing::info!(project.name = %project, app.name = %name, env.version = saved.version, actor, "environment reverted to version {version}");
        Ok(saved)
    }

    /// The build-time variables of the app, resolved: the build arguments
    /// of a git build.
    pub async fn app_build_args(&self, app: &App) -> Result<Vec<(String, String)>, DeployError> {
        let (_, vars) = self.resolved_env(app, |flags| flags.build).await?;
        Ok(vars)
    }

    async fn shared_owner(&self, scope: &SharedScope) -> Result<Owner, DeployError> {
        Ok(match scope {
            SharedScope::Project(name) => {
                Owner::Project(projects::find_by_name(self.store(), name).await?.id)
            }
            SharedScope::Global => Owner::Global,
        })
    }

    pub async fn shared_env(&self, scope: &SharedScope) -> Result<EnvSet, DeployError> {
        let owner = self.shared_owner(scope).await?;
        Ok(env::load(self.store(), owner).await?)
    }

    pub async fn shared_env_history(
        &self,
        scope: &SharedScope,
    ) -> Result<Vec<HistoryEntry>, DeployError> {
        let owner = self.shared_owner(scope).await?;
        Ok(env::history(self.store(), owner, HISTORY_LIMIT).await?)
    }

    /// Replaces a shared set; its own references must resolve.
    pub async fn save_shared_env(
        &self,
        scope: &SharedScope,
        expected_version: Option<i64>,
        vars: &[EnvVar],
        actor: &str,
    ) -> Result<Saved, DeployError> {
        let owner = self.shared_owner(scope).await?;
        let (scopes_project, scopes_global, which) = match scope {
            SharedScope::Project(name) => {
                let (_, global) = self.shared_for(name).await?;
                (vars.to_vec(), global.vars, Scope::Project)
            }
            SharedScope::Global => (Vec::new(), vars.to_vec(), Scope::Global),
        };
        resolve(
            Scopes {
                owner: &[],
                project: &scopes_project,
                global: &scopes_global,
                databases: &[],
            },
            which,
        )
        .map_err(|e| DeployError::Env(EnvErrors::resolve(e)))?;
        self.check_apps_still_resolve(scope, vars).await?;
        let saved = env::save(self.store(), owner, expected_version, vars, actor, None).await?;
        tracing::info!(env.scope = ?owner, env.version = saved.version, actor, "shared environment saved");
        Ok(saved)
    }

    /// A shared variable that an app refers to cannot be removed (or broken)
    /// under it: the app's next deploy would fail.
    async fn check_apps_still_resolve(
        &self,
        scope: &SharedScope,
        new_vars: &[EnvVar],
    ) -> Result<(), DeployError> {
        let all_apps = apps::list_all(self.store()).await?;
        let mut problems = Vec::new();
        for app in all_apps {
            if let SharedScope::Project(name) = scope
                && &app.project != name
            {
                continue;
            }
            let own = env::load(self.store(), Owner::App(app.id)).await?;
            if own.vars.is_empty() {
                continue;
            }
            let (shared, global) = self.shared_for(&app.project).await?;
            let databases = self.database_urls(&app.project).await?;
            let (project_vars, global_vars) = match scope {
                SharedScope::Project(_) => (new_vars.to_vec(), global.vars.clone()),
                SharedScope::Global => (shared.vars.clone(), new_vars.to_vec()),
            };
            let before = Scopes {
                owner: &own.vars,
                project: &shared.vars,
                global: &global.vars,
                databases: &databases,
            };
            let after = Scopes {
                owner: &own.vars,
                project: &project_vars,
                global: &global_vars,
                databases: &databases,
            };
            if resolve(before, Scope::Owner).is_ok()
                && let Err(errors) = resolve(after, Scope::Owner)
            {
                problems.extend(
                    errors
                        .iter()
                        .map(|e| format!("{}/{} would break: {e}", app.project, app.name)),
                );
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DeployError::Env(EnvErrors(problems)))
        }
    }

    /// Saves the shared set as it was at `version` as a new version.
    pub async fn revert_shared_env(
        &self,
        scope: &SharedScope,
        expected_version: Option<i64>,
        version: i64,
        actor: &str,
    ) -> Result<Saved, DeployError> {
        let owner = self.shared_owner(scope).await?;
        let vars = env::snapshot(self.store(), owner, version).await?;
        self.check_apps_still_resolve(scope, &vars).await?;
        let note = format!("reverted to version {version}");
        let saved = env::save(
            self.store(),
            owner,
            expected_version,
            &vars,
            actor,
            Some(&note),
        )
        .await?;
        tracing::info!(env.scope = ?owner, env.version = saved.version, actor, "shared environment reverted to version {version}");
        Ok(saved)
    }

    /// Which apps reference each shared variable of `scope`.
    pub async fn shared_env_uses(
        &self,
        scope: &SharedScope,
        vars: &[EnvVar],
    ) -> Result<Vec<SharedUse>, DeployError> {
        let all_apps = apps::list_all(self.store()).await?;
        let sets = env::all_app_sets(self.store()).await?;
        let wanted = match scope {
            SharedScope::Project(_) => Scope::Project,
            SharedScope::Global => Scope::Global,
        };
        let mut uses: Vec<SharedUse> = vars
            .iter()
            .map(|v| SharedUse {
                key: v.key.to_string(),
                apps: Vec::new(),
            })
            .collect();
        for (app_id, app_vars) in sets {
            let Some(app) = all_apps.iter().find(|a| a.id == app_id) else {
                continue;
            };
            if let SharedScope::Project(name) = scope
                && &app.project != name
            {
                continue;
            }
            let mut referenced = std::collections::BTreeSet::new();
            for var in &app_vars {
                for r in berth_core::env::references(var).unwrap_or_default() {
                    if r.scope == Some(wanted) {
                        referenced.insert(r.name);
                    }
                }
            }
            for shared in &mut uses {
                if referenced.contains(&shared.key) {
                    shared.apps.push(format!("{}/{}", app.project, app.name));
                }
            }
        }
        Ok(uses)
    }
}

impl Runtime {
    /// The shared variables an app can reference.
    async fn shared_for(&self, project: &ProjectName) -> Result<(EnvSet, EnvSet), DeployError> {
        let project = projects::find_by_name(self.store(), project).await?;
        Ok((
            env::load(self.store(), Owner::Project(project.id)).await?,
            env::load(self.store(), Owner::Global).await?,
        ))
    }

    /// The runtime variables of the app, resolved, with the version they come from.
    pub(crate) async fn runtime_env(
        &self,
        app: &App,
    ) -> Result<(i64, Vec<(String, String)>), DeployError> {
        self.resolved_env(app, |flags| flags.runtime).await
    }

    /// The app's variables whose flags `wanted` picks, with every reference
    /// filled in, and the version of the set they come from.
    async fn resolved_env(
        &self,
        app: &App,
        wanted: impl Fn(&berth_core::EnvFlags) -> bool,
    ) -> Result<(i64, Vec<(String, String)>), DeployError> {
        let set = env::load(self.store(), Owner::App(app.id)).await?;
        let (shared, global) = self.shared_for(&app.project).await?;
        // `${database.NAME}` takes the database's URL of today: a changed
        // password reaches the app at its next deploy.
        let databases = self.database_urls(&app.project).await?;
        let scopes = Scopes {
            owner: &set.vars,
            project: &shared.vars,
            global: &global.vars,
            databases: &databases,
        };
        let resolved =
            resolve(scopes, Scope::Owner).map_err(|e| DeployError::Env(EnvErrors::resolve(e)))?;
        Ok((
            set.version,
            resolved
                .into_iter()
                .filter(|(var, _)| wanted(&var.flags))
                .map(|(var, value)| (var.key.to_string(), value))
                .collect(),
        ))
    }

    pub(crate) async fn mark_env_deployed(
        &self,
        app: &App,
        version: i64,
    ) -> Result<(), DeployError> {
        Ok(env::mark_deployed(self.store(), Owner::App(app.id), version).await?)
    }
}
