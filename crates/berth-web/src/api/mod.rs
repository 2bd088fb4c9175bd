//! `/api/v1`: the JSON API for scripts. Each handler calls the same engine
//! function as its dashboard form. Described by `/api/v1/openapi.json`.

pub mod apps;
pub mod certificates;
pub mod deployments;
pub mod domains;
pub mod engine;
pub mod env;
pub mod projects;
pub mod volumes;

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::WebError;
use crate::error::{ApiError, ErrorBody};
use crate::forms::FieldErrors;

#[derive(OpenApi)]
#[openapi(
    info(title = "berth API", description = "Deploy and manage apps on a berth server. Authenticate with `Authorization: Bearer <token>` (create one with `berth token create --name NAME`)."),
    paths(
        engine::get_engine,
        projects::list_projects, projects::create_project, projects::get_project, projects::delete_project,
        apps::list_all_apps, apps::list_apps, apps::create_app, apps::get_app, apps::delete_app,
        apps::start_app, apps::stop_app, apps::restart_app, apps::get_app_logs,
        domains::list_domains, domains::add_domain, domains::delete_domain,
        domains::get_dashboard_domain, domains::set_dashboard_domain,
        certificates::list_certificates, certificates::get_certificate, certificates::upload_certificate,
        certificates::renew_certificate, certificates::delete_certificate,
        certificates::get_acme_settings, certificates::save_acme_settings,
        env::get_app_env, env::set_app_env, env::delete_app_env_var,
        deployments::deploy_app, deployments::redeploy_app, deployments::list_deployments,
        deployments::get_deployment, deployments::rollback_deployment, deployments::cancel_deployment,
        deployments::get_deploy_settings, deployments::set_deploy_settings,
        volumes::list_volumes, volumes::delete_volume, volumes::attach_volume,
        volumes::list_app_volumes, volumes::add_app_volume, volumes::detach_app_volume,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn openapi_json() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_pretty_json().unwrap_or_default(),
    )
}

/// A JSON body whose rejection (bad JSON, wrong type, too large) is a JSON error too.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                let mut errors = FieldErrors::default();
                errors.add("body", rejection.body_text());
                Err(ApiError(WebError::Invalid(errors)))
            }
        }
    }
}
