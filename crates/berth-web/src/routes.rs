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

pub(crate) struct Table {
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

    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(
        &mut self,
        access: Access,
        path: &'static str,
        h: H,
    ) {
        self.add(access, Method::GET, path, get(h));
    }

    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(
        &mut self,
        access: Access,
        path: &'static str,
        h: H,
    ) {
        self.add(access, Method::POST, path, post(h));
    }

    pub(crate) fn delete<H: Handler<T, AppState>, T: 'static>(
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
    t.get(Session, "/settings", pages::settings::show);
    t.post(
        Session,
        "/settings/dashboard-domain",
        pages::settings::set_dashboard_domain,
    );
    t.get(Session, "/certificates", pages::certificates::list);
    t.post(Session, "/certificates/upload", pages::certificates::upload);
    t.post(
        Session,
        "/certificates/settings",
        pages::certificates::save_settings,
    );
    t.post(
        Session,
        "/certificates/{id}/renew",
        pages::certificates::renew,
    );
    t.post(
        Session,
        "/certificates/{id}/delete",
        pages::certificates::delete,
    );
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
    t.get(
        Session,
        "/projects/{project}/apps/{app}/domains",
        pages::domains::show,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/domains",
        pages::domains::add,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/domains/delete",
        pages::domains::remove,
    );
    // Environment variables: the same pages for an app, a project's shared
    // variables and the global ones (the handlers read the target from the path).
    for [show, edit, review, save, history, revert, export] in ENV_PAGES {
        t.get(Session, show, pages::env::show);
        t.post(Session, edit, pages::env::edit);
        t.post(Session, review, pages::env::review);
        t.post(Session, save, pages::env::save);
        t.get(Session, history, pages::env::history);
        t.post(Session, revert, pages::env::revert);
        t.get(Session, export, pages::env::export);
    }
    t.post(
        Session,
        "/projects/{project}/apps/{app}/env/redeploy",
        pages::env::redeploy,
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
        "/api/v1/certificates",
        api::certificates::list_certificates,
    );
    t.post(
        Bearer,
        "/api/v1/certificates",
        api::certificates::upload_certificate,
    );
    t.get(
        Bearer,
        "/api/v1/certificates/{id}",
        api::certificates::get_certificate,
    );
    t.delete(
        Bearer,
        "/api/v1/certificates/{id}",
        api::certificates::delete_certificate,
    );
    t.post(
        Bearer,
        "/api/v1/certificates/{id}/renew",
        api::certificates::renew_certificate,
    );
    t.get(Bearer, "/api/v1/acme", api::certificates::get_acme_settings);
    t.post(
        Bearer,
        "/api/v1/acme",
        api::certificates::save_acme_settings,
    );
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
    t.get(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/domains",
        api::domains::list_domains,
    );
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/domains",
        api::domains::add_domain,
    );
    t.delete(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/domains/{domain}",
        api::domains::delete_domain,
    );
    t.get(
        Bearer,
        "/api/v1/settings/dashboard-domain",
        api::domains::get_dashboard_domain,
    );
    t.post(
        Bearer,
        "/api/v1/settings/dashboard-domain",
        api::domains::set_dashboard_domain,
    );
    t.get(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/env",
        api::env::get_app_env,
    );
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/env",
        api::env::set_app_env,
    );
    t.delete(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/env/{key}",
        api::env::delete_app_env_var,
    );
    deployment_routes(&mut t);
    pages::storage::routes(&mut t);
    api::volumes::routes(&mut t);
    t
}

/// Largest webhook body: push payloads with many commits outgrow the forms' limit.
const MAX_WEBHOOK_BYTES: usize = 2 * 1024 * 1024;

/// Deployments (issue 4): pages, API, and the deploy webhooks, which are
/// public routes whose credential is the app's secret (in the URL, or as
/// the key of the provider's signature).
fn deployment_routes(t: &mut Table) {
    use Access::*;
    t.get(
        Session,
        "/projects/{project}/apps/{app}/deployments",
        pages::deployments::list,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/deploy",
        pages::deployments::deploy,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/redeploy",
        pages::deployments::redeploy,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/deploy-settings",
        pages::deployments::save_settings,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/webhook/regenerate",
        pages::deployments::regenerate_webhook,
    );
    t.get(
        Session,
        "/projects/{project}/apps/{app}/deployments/{number}",
        pages::deployments::show,
    );
    t.get(
        Session,
        "/projects/{project}/apps/{app}/deployments/{number}/events",
        pages::deployments::events,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/deployments/{number}/rollback",
        pages::deployments::rollback,
    );
    t.post(
        Session,
        "/projects/{project}/apps/{app}/deployments/{number}/cancel",
        pages::deployments::cancel,
    );
    for (path, handler) in [
        (
            "/hooks/{project}/{app}/{secret}",
            post(pages::webhooks::with_secret),
        ),
        ("/hooks/{project}/{app}", post(pages::webhooks::signed)),
    ] {
        t.add(
            Public,
            Method::POST,
            path,
            handler.layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
        );
    }
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/deploy",
        api::deployments::deploy_app,
    );
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/redeploy",
        api::deployments::redeploy_app,
    );
    t.get(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/deployments",
        api::deployments::list_deployments,
    );
    t.get(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/deployments/{number}",
        api::deployments::get_deployment,
    );
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/deployments/{number}/rollback",
        api::deployments::rollback_deployment,
    );
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/deployments/{number}/cancel",
        api::deployments::cancel_deployment,
    );
    t.get(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/deploy-settings",
        api::deployments::get_deploy_settings,
    );
    t.post(
        Bearer,
        "/api/v1/projects/{project}/apps/{app}/deploy-settings",
        api::deployments::set_deploy_settings,
    );
}

/// The environment editor's routes per target: show, edit, review, save,
/// history, revert, export.
const ENV_PAGES: [[&str; 7]; 3] = [
    [
        "/projects/{project}/apps/{app}/env",
        "/projects/{project}/apps/{app}/env/edit",
        "/projects/{project}/apps/{app}/env/review",
        "/projects/{project}/apps/{app}/env/save",
        "/projects/{project}/apps/{app}/env/history",
        "/projects/{project}/apps/{app}/env/revert",
        "/projects/{project}/apps/{app}/env/export",
    ],
    [
        "/projects/{project}/env",
        "/projects/{project}/env/edit",
        "/projects/{project}/env/review",
        "/projects/{project}/env/save",
        "/projects/{project}/env/history",
        "/projects/{project}/env/revert",
        "/projects/{project}/env/export",
    ],
    [
        "/env",
        "/env/edit",
        "/env/review",
        "/env/save",
        "/env/history",
        "/env/revert",
        "/env/export",
    ],
];

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
