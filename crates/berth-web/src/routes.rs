//! The route table. Each `pages/<resource>` and `api/<resource>` module
//! declares its routes in `routes(t: &mut Table)`, each with its access
//! class; an API route is declared by its `#[utoipa::path]`, which also
//! describes it in `/api/v1/openapi.json`.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, get, on, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
// Hidden in utoipa's docs but what its own utoipa-axum uses to collect a
// path's schemas; the route test fails if a referenced schema goes missing.
use utoipa::__dev::SchemaReferences;
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::{RefOr, Schema};

use crate::auth::{require_bearer, require_session};
use crate::{AppState, MAX_BODY_BYTES, api, pages};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Login, setup, `/healthz` and static assets: nothing else.
    Public,
    /// Dashboard pages: a browser session (cookie).
    Session,
    /// `/api/v1`: an API token (`Authorization: Bearer`).
    Bearer,
}

#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    pub path: String,
    pub access: Access,
}

/// Routes as each `pages`/`api` module declares them in its `routes(t)`,
/// with the OpenAPI description of every API route gathered on the way.
#[derive(Default)]
pub(crate) struct Table {
    public: Router<AppState>,
    session: Router<AppState>,
    bearer: Router<AppState>,
    list: Vec<RouteInfo>,
    api_paths: Paths,
    api_schemas: Vec<(String, RefOr<Schema>)>,
}

impl Table {
    pub(crate) fn add(
        &mut self,
        access: Access,
        method: Method,
        path: &str,
        route: MethodRouter<AppState>,
    ) {
        let router = match access {
            Access::Public => &mut self.public,
            Access::Session => &mut self.session,
            Access::Bearer => &mut self.bearer,
        };
        *router = std::mem::take(router).route(path, route);
        self.list.push(RouteInfo {
            method,
            path: path.to_owned(),
            access,
        });
    }

    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(
        &mut self,
        access: Access,
        path: &str,
        h: H,
    ) {
        self.add(access, Method::GET, path, get(h));
    }

    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(
        &mut self,
        access: Access,
        path: &str,
        h: H,
    ) {
        self.add(access, Method::POST, path, post(h));
    }

    /// An API route (bearer token), declared by its handler's
    /// `#[utoipa::path]` alone: the method and path come from `doc` (the
    /// `__path_<handler>` type the macro generates), and its operation and
    /// schemas go into the OpenAPI document, so the two cannot differ.
    pub(crate) fn api<P, H, T>(&mut self, _doc: P, h: H)
    where
        P: utoipa::Path + SchemaReferences,
        H: Handler<T, AppState>,
        T: 'static,
    {
        let operation = P::operation();
        // `doc` and `h` are named separately (no macro can join
        // `__path_` and a handler's name without a proc-macro crate);
        // utoipa's operation id is the handler's function name, so a pair
        // that does not belong together fails here, at startup and in the
        // route tests.
        let handler = std::any::type_name::<H>();
        assert!(
            operation
                .operation_id
                .as_deref()
                .is_some_and(|id| handler.ends_with(&format!("::{id}"))),
            "{handler} is declared with the OpenAPI path of {:?}",
            operation.operation_id
        );
        let path = P::path();
        let methods = P::methods();
        for method in &methods {
            let (method, filter) = http_method(method);
            self.add(Access::Bearer, method, &path, on(filter, h.clone()));
        }
        self.api_paths.add_path_operation(&path, methods, operation);
        P::schemas(&mut self.api_schemas);
    }

    /// Takes what the API routes declared so far describe: paths and schemas.
    pub(crate) fn take_api_doc(&mut self) -> (Paths, Vec<(String, RefOr<Schema>)>) {
        (
            std::mem::take(&mut self.api_paths),
            std::mem::take(&mut self.api_schemas),
        )
    }
}

fn http_method(method: &HttpMethod) -> (Method, MethodFilter) {
    match method {
        HttpMethod::Get => (Method::GET, MethodFilter::GET),
        HttpMethod::Post => (Method::POST, MethodFilter::POST),
        HttpMethod::Put => (Method::PUT, MethodFilter::PUT),
        HttpMethod::Delete => (Method::DELETE, MethodFilter::DELETE),
        HttpMethod::Options => (Method::OPTIONS, MethodFilter::OPTIONS),
        HttpMethod::Head => (Method::HEAD, MethodFilter::HEAD),
        HttpMethod::Patch => (Method::PATCH, MethodFilter::PATCH),
        HttpMethod::Trace => (Method::TRACE, MethodFilter::TRACE),
    }
}

fn declare() -> Table {
    let mut t = Table::default();
    pages::routes(&mut t);
    api::routes(&mut t);
    t
}

/// Every route berth serves, for tests and docs.
pub fn route_table() -> Vec<RouteInfo> {
    declare().list
}

pub fn build(state: AppState) -> Router {
    let t = declare();
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    // Whatever a logged-in page or an API answer shows (revealed values,
    // deploy keys, tokens) stays out of browser and proxy caches.
    let session = t
        .session
        .route_layer(from_fn_with_state(state.clone(), require_session))
        .layer(header("cache-control", "no-store"));
    let bearer = t
        .bearer
        .route_layer(from_fn_with_state(state.clone(), require_bearer))
        .layer(header("cache-control", "no-store"));
    Router::new()
        .merge(t.public)
        .merge(session)
        .merge(bearer)
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(crate::auth::refuse_plain_http))
        .layer(from_fn_with_state(
            state.clone(),
            crate::auth::mark_transport,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(header("x-frame-options", "DENY"))
        .layer(header("x-content-type-options", "nosniff"))
        .layer(header("referrer-policy", "same-origin"))
        .layer(header(
            "content-security-policy",
            "default-src 'self'; frame-ancestors 'none'",
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
