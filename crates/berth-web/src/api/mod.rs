//! `/api/v1`: the JSON API for scripts. Each handler calls the same engine
//! function as its dashboard form. Described by `/api/v1/openapi.json`.

pub mod apps;
pub mod backups;
pub mod certificates;
pub mod databases;
pub mod deployments;
pub mod domains;
pub mod engine;
pub mod env;
pub mod metrics;
pub mod projects;
pub mod stacks;
pub mod volumes;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use utoipa::OpenApi;
use utoipa::openapi::path::Paths;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};

use crate::WebError;
use crate::error::{ApiError, ErrorBody};
use crate::forms::FieldErrors;
use crate::routes::{Access, Table};

/// The document's frame; the paths and their schemas come from the routes
/// (`Table::api`).
#[derive(OpenApi)]
#[openapi(
    info(title = "berth API", description = "Deploy and manage apps and stacks on a berth server. Authenticate with `Authorization: Bearer <token>` (create one with `berth token create --name NAME`)."),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

pub(crate) fn routes(t: &mut Table) {
    engine::routes(t);
    projects::routes(t);
    apps::routes(t);
    certificates::routes(t);
    domains::routes(t);
    env::routes(t);
    deployments::routes(t);
    volumes::routes(t);
    stacks::routes(t);
    metrics::routes(t);
    databases::routes(t);
    backups::routes(t);
    // Last: the document describes every API route declared above.
    let json = Bytes::from(
        document(t.take_api_doc())
            .to_pretty_json()
            .unwrap_or_default(),
    );
    t.get(Access::Bearer, "/api/v1/openapi.json", move || async move {
        ([(CONTENT_TYPE, "application/json")], json)
    });
}

fn document((paths, schemas): (Paths, Vec<(String, RefOr<Schema>)>)) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.paths = paths;
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(schemas);
    doc
}

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

/// A JSON body whose rejection (bad JSON, wrong type, too large) is a JSON
/// error too, under the field at fault when there is one.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut errors = FieldErrors::default();
        // axum checks the content type, the size and the syntax; the types
        // are checked here, where the path to a wrong value is known.
        match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(value)) => match serde_path_to_error::deserialize(value) {
                Ok(value) => return Ok(ApiJson(value)),
                Err(err) => {
                    let path = err.path();
                    match path.iter().next() {
                        Some(Segment::Map { key }) if path.iter().count() == 1 => {
                            errors.add(key.clone(), err.inner());
                        }
                        Some(Segment::Map { key }) => {
                            errors.add(key.clone(), format!("{path}: {}", err.inner()));
                        }
                        _ => errors.add("body", err.inner()),
                    }
                }
            },
            Err(rejection) => errors.add("body", rejection.body_text()),
        }
        Err(ApiError(WebError::Invalid(errors)))
    }
}
