//! The route table: every route with its access class, in one place.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, delete, get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

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
    pub path: &'static str,
    pub access: Access,
}

struct Table {
    public: Router<AppState>,
    session: Router<AppState>,
    bearer: Router<AppState>,
    list: Vec<RouteInfo>,
}

impl Table {
    fn add(
        &mut self,
        access: Access,
        method: Method,
        path: &'static str,
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
            path,
            access,
        });
    }

    fn get<H: Handler<T, AppState>, T: 'static>(
        &mut self,
        access: Access,
        path: &'static str,
        h: H,
    ) {
        self.add(access, Method::GET, path, get(h));
    }

    fn post<H: Handler<T, AppState>, T: 'static>(
        &mut self,
        access: Access,
        path: &'static str,
        h: H,
    ) {
        self.add(access, Method::POST, path, post(h));
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(
        &mut self,
        access: Access,
        path: &'static str,
        h: H,
    ) {
        self.add(access, Method::DELETE, path, delete(h));
    }
}

fn declare() -> Table {
    use Access::*;
    let mut t = Table {
        public: Router::new(),
        session: Router::new(),
        bearer: Router::new(),
        list: Vec::new(),
    };
    t.get(Public, "/healthz", pages::health::healthz);
    t.get(Public, "/static/{file}", pages::assets::static_file);
    t.get(Public, "/setup", pages::setup::show);
    t.post(Public, "/setup", pages::setup::submit);
    t.get(Public, "/login", pages::login::show);
    t.post(Public, "/login", pages::login::submit);

    t.post(Session, "/logout", pages::login::logout);
    t.get(Session, "/", pages::dashboard::show);
    t.get(Session, "/apps", pages::apps::list);
    t.post(Session, "/projects", pages::projects::create);
    t.get(Session, "/projects/{project}", pages::projects::show);
    t.post(
        Session,
        "/projects/{project}/delete",
        pages::projects::delete,
    );
    t.post(Session, "/projects/{project}/apps", pages::apps::create);
    t.get(Session, "/projects/{project}/apps/{app}", pages::apps::show);
    t.post(
        Session,
        "/projects/{project}/apps/{app}/start",
        pages::apps::start,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/stop",
        pages::apps::stop,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/restart",
        pages::apps::restart,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/delete",
        pages::apps::delete,
    );

    t.get(Bearer, "/api/v1/openapi.json", api::openapi_json);
    t.get(Bearer, "/api/v1/engine", api::engine::get_engine);
    t.get(Bearer, "/api/v1/projects", api::projects::list_projects);
    t.post(Bearer, "/api/v1/projects", api::projects::create_project);
    t.get(
        Bearer,
        "/api/v1/projects/{project}",
        api::projects::get_project,
    );
    t.delete(
        Bearer,
        "/api/v1/projects/{project}",
        api::projects::delete_project,
    );
    t.get(Bearer, "/api/v1/apps", api::apps::list_all_apps);
    t.get(
        Bearer,
        "/api/v1/projects/{project}/apps",
        api::apps::list_apps,
    );
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps",
        api::apps::create_app,
    );
    t.get(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}",
        api::apps::get_app,
    );
    t.delete(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}",
        api::apps::delete_app,
    );
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/start",
        api::apps::start_app,
    );
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/stop",
        api::apps::stop_app,
    );
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/restart",
        api::apps::restart_app,
    );
    t.get(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/logs",
        api::apps::get_app_logs,
    );
    t
}

/// Every route berth serves, for tests and docs.
pub fn route_table() -> Vec<RouteInfo> {
    declare().list
}

pub fn build(state: AppState) -> Router {
    let t = declare();
    let session = t
        .session
        .route_layer(from_fn_with_state(state.clone(), require_session));
    let bearer = t
        .bearer
        .route_layer(from_fn_with_state(state.clone(), require_bearer));
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    Router::new()
        .merge(t.public)
        .merge(session)
        .merge(bearer)
        .fallback(pages::not_found)
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
