//! An app's environment variables for scripts: list (secrets masked unless
//! `?reveal=true`), set (merge, or replace the whole set; JSON or a `.env`
//! text), delete one. Saves go through the same engine function as the
//! dashboard, with the same history and optimistic version check.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_core::{App, AppName, EnvFlags, EnvKey, EnvSet, EnvVar, ProjectName};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use super::projects::project_name;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::forms::FieldErrors;
use crate::routes::Table;
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.api(__path_get_app_env, get_app_env);
    t.api(__path_set_app_env, set_app_env);
    t.api(__path_delete_app_env_var, delete_app_env_var);
}

#[derive(Serialize, ToSchema)]
pub struct EnvVarOut {
    pub key: String,
    /// Null for a secret unless `?reveal=true`.
    pub value: Option<String>,
    pub secret: bool,
    /// Passed as a build argument.
    pub build: bool,
    /// Set in the running container.
    pub runtime: bool,
    /// No `${}` interpolation.
    pub literal: bool,
}

#[derive(Serialize, ToSchema)]
pub struct EnvOut {
    /// Goes up by one with every save; send it back as `version` to refuse
    /// overwriting someone else's change.
    pub version: i64,
    /// The version the running container was created with.
    pub deployed_version: Option<i64>,
    /// True when the running container does not have the saved values yet.
    pub redeploy_needed: bool,
    pub vars: Vec<EnvVarOut>,
}

#[derive(Serialize, ToSchema)]
pub struct ChangeOut {
    pub key: String,
    /// `added`, `changed` or `removed`.
    pub change: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnvSavedOut {
    /// Empty when the set was already like this (no new version then).
    pub changes: Vec<ChangeOut>,
    pub redeployed: bool,
    /// With `redeploy`: the deployment queued (it runs in the background).
    pub deployment: Option<i64>,
    /// Where to follow it.
    pub deployment_url: Option<String>,
    pub env: EnvOut,
}

#[derive(Deserialize, IntoParams)]
pub struct EnvQuery {
    /// Include the values of secrets.
    #[serde(default)]
    pub reveal: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct EnvVarIn {
    pub key: String,
    pub value: String,
    /// Default: unchanged for an existing key; for a new key, true when the name looks like a credential.
    pub secret: Option<bool>,
    /// Default: unchanged, or false.
    pub build: Option<bool>,
    /// Default: unchanged, or true.
    pub runtime: Option<bool>,
    /// Default: unchanged, or false.
    pub literal: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
pub struct EnvSetIn {
    /// Variables to set.
    #[serde(default)]
    pub vars: Vec<EnvVarIn>,
    /// Or a whole `.env` text to import (single-quoted values become literal).
    pub dotenv: Option<String>,
    /// Replace the whole set with these variables instead of merging.
    #[serde(default)]
    pub replace: bool,
    /// The version this change is based on; a different current version is a 409.
    pub version: Option<i64>,
    /// Recreate the app's container with the new values.
    #[serde(default)]
    pub redeploy: bool,
}

#[derive(Deserialize, IntoParams)]
pub struct DeleteQuery {
    /// The version this change is based on; a different current version is a 409.
    pub version: Option<i64>,
}

fn names(project: &str, app: &str) -> Result<(ProjectName, AppName), ApiError> {
    Ok((
        project_name(project)?,
        AppName::parse(app).map_err(|_| ApiError(WebError::NotFound("app")))?,
    ))
}

fn env_out(app: &App, set: &EnvSet, reveal: bool) -> EnvOut {
    EnvOut {
        version: set.version,
        deployed_version: set.deployed_version,
        redeploy_needed: app.container_id.is_some()
            && set.deployed_version != Some(set.version)
            && set.version > 0,
        vars: set
            .vars
            .iter()
            .map(|v| EnvVarOut {
                key: v.key.to_string(),
                value: (!v.flags.secret || reveal).then(|| v.value.clone()),
                secret: v.flags.secret,
                build: v.flags.build,
                runtime: v.flags.runtime,
                literal: v.flags.literal,
            })
            .collect(),
    }
}

fn invalid(field: &'static str, message: impl std::fmt::Display) -> ApiError {
    let mut errors = FieldErrors::default();
    errors.add(field, message);
    ApiError(WebError::Invalid(errors))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/apps/{app}/env", tag = "env",
    params(("project" = String, Path), ("app" = String, Path), EnvQuery),
    responses((status = 200, body = EnvOut), (status = 404, body = ErrorBody)))]
pub async fn get_app_env(
    State(state): State<AppState>,
    Path((project, app)): Path<(String, String)>,
    Query(query): Query<EnvQuery>,
) -> Result<Json<EnvOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let (app, set) = state.env.app_env(&project, &name).await?;
    Ok(Json(env_out(&app, &set, query.reveal)))
}

/// Sets variables (merged into the saved set unless `replace`). Nothing is
/// restarted unless `redeploy` is true.
#[utoipa::path(post, path = "/api/v1/projects/{project}/apps/{app}/env", tag = "env",
    params(("project" = String, Path), ("app" = String, Path)), request_body = EnvSetIn,
    responses((status = 200, body = EnvSavedOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_app_env(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((project, app)): Path<(String, String)>,
    ApiJson(input): ApiJson<EnvSetIn>,
) -> Result<Json<EnvSavedOut>, ApiError> {
    let (project, name) = names(&project, &app)?;
    let (_, saved) = state.env.app_env(&project, &name).await?;
    let mut given: Vec<EnvVar> = Vec::new();
    if let Some(text) = &input.dotenv {
        let entries = berth_core::dotenv::parse(text).map_err(|lines| {
            let all: Vec<String> = lines.iter().map(ToString::to_string).collect();
            invalid("dotenv", all.join("; "))
        })?;
        for entry in entries {
            let old = saved.vars.iter().find(|v| v.key == entry.key);
            let mut flags = old.map_or_else(|| EnvFlags::default_for(&entry.key), |v| v.flags);
            flags.literal = entry.literal;
            given.push(EnvVar {
                key: entry.key,
                value: entry.value,
                flags,
            });
        }
    }
    for (i, var) in input.vars.iter().enumerate() {
        let key =
            EnvKey::parse(&var.key).map_err(|e| invalid("vars", format!("vars[{i}].key: {e}")))?;
        berth_core::env::check_value(&var.value)
            .map_err(|e| invalid("vars", format!("vars[{i}].value: {e}")))?;
        let old = saved.vars.iter().find(|v| v.key == key);
        let base = old.map_or_else(|| EnvFlags::default_for(&key), |v| v.flags);
        let flags = EnvFlags {
            secret: var.secret.unwrap_or(base.secret),
            build: var.build.unwrap_or(base.build),
            runtime: var.runtime.unwrap_or(base.runtime),
            literal: var.literal.unwrap_or(base.literal),
        };
        if !flags.build && !flags.runtime {
            return Err(invalid(
                "vars",
                format!("vars[{i}]: build and runtime cannot both be false"),
            ));
        }
        given.retain(|v| v.key != key);
        given.push(EnvVar {
            key,
            value: var.value.clone(),
            flags,
        });
    }
    let vars = if input.replace {
        given
    } else {
        let mut merged = saved.vars.clone();
        let mut by_key: HashMap<EnvKey, EnvVar> =
            given.iter().map(|v| (v.key.clone(), v.clone())).collect();
        for var in &mut merged {
            if let Some(new) = by_key.remove(&var.key) {
                *var = new;
            }
        }
        merged.extend(given.into_iter().filter(|v| by_key.contains_key(&v.key)));
        merged
    };
    let expected = Some(input.version.unwrap_or(saved.version));
    let result = state
        .env
        .save_app_env(&project, &name, expected, &vars, &caller.0)
        .await?;
    let deployment = if input.redeploy {
        Some(
            state
                .deployments
                .redeploy_app(&project, &name, "api env redeploy")
                .await?
                .number,
        )
    } else {
        None
    };
    let (app, set) = state.env.app_env(&project, &name).await?;
    Ok(Json(EnvSavedOut {
        changes: result
            .changes
            .iter()
            .map(|c| ChangeOut {
                key: c.key().to_string(),
                change: c.kind().to_owned(),
            })
            .collect(),
        redeployed: input.redeploy,
        deployment,
        deployment_url: deployment
            .map(|n| format!("/api/v1/projects/{project}/apps/{name}/deployments/{n}")),
        env: env_out(&app, &set, false),
    }))
}

#[utoipa::path(delete, path = "/api/v1/projects/{project}/apps/{app}/env/{key}", tag = "env",
    params(("project" = String, Path), ("app" = String, Path), ("key" = String, Path), DeleteQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_app_env_var(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((project, app, key)): Path<(String, String, String)>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let (project, name) = names(&project, &app)?;
    let (_, saved) = state.env.app_env(&project, &name).await?;
    if !saved.vars.iter().any(|v| v.key.as_str() == key) {
        return Err(ApiError(WebError::NotFound("variable")));
    }
    let vars: Vec<EnvVar> = saved
        .vars
        .iter()
        .filter(|v| v.key.as_str() != key)
        .cloned()
        .collect();
    let expected = Some(query.version.unwrap_or(saved.version));
    state
        .env
        .save_app_env(&project, &name, expected, &vars, &caller.0)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
