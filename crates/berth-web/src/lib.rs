#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod api;
mod auth;
mod error;
mod forms;
mod pages;
mod routes;
mod stack_forms;
mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use berth_deploy::Services;
use tokio::net::TcpListener;

pub use auth::rate_limit::LoginLimiter;
pub use error::WebError;
pub use routes::{Access, RouteInfo, route_table};

/// Largest request body berth accepts (forms and JSON).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// berth-deploy's services; handlers reach them as `state.apps`, … (see `Deref`).
    services: Services,
    /// The one-time token that claims a fresh install; `None` once an admin exists.
    pub(crate) setup_token: Arc<Mutex<Option<String>>>,
    pub(crate) limiter: Arc<LoginLimiter>,
    /// The edge's certificates (TLS); `None` where berth runs without the edge.
    pub(crate) certs: Option<Arc<berth_edge::acme::CertManager>>,
    /// The secret berth's own edge sends the dashboard (`Edge::dashboard_secret`):
    /// only requests carrying it have their client address from the edge.
    pub(crate) edge_secret: Option<Arc<str>>,
    /// The collector's latest figures and the history; `None` where berth
    /// runs without it (the Monitoring page then says so).
    pub(crate) monitor: Option<berth_monitor::Monitor>,
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

impl AppState {
    pub fn new(services: Services, setup_token: Option<String>) -> AppState {
        AppState {
            services,
            setup_token: Arc::new(Mutex::new(setup_token)),
            limiter: Arc::new(LoginLimiter::default()),
            certs: None,
            edge_secret: None,
            monitor: None,
        }
    }

    /// Believes the client address (`X-Real-IP`) of requests that carry
    /// this secret, which only berth's own edge sends.
    pub fn with_edge_secret(mut self, secret: &str) -> AppState {
        self.edge_secret = Some(secret.into());
        self
    }

    /// Gives the certificates page and API the edge's certificate service.
    pub fn with_certificates(mut self, certs: Arc<berth_edge::acme::CertManager>) -> AppState {
        self.certs = Some(certs);
        self
    }

    /// Gives the Monitoring page and `/metrics` the collector.
    pub fn with_monitor(mut self, monitor: berth_monitor::Monitor) -> AppState {
        self.monitor = Some(monitor);
        self
    }

    pub(crate) fn monitor(&self) -> Result<&berth_monitor::Monitor, WebError> {
        self.monitor
            .as_ref()
            .ok_or(WebError::NotFound("monitoring"))
    }

    pub(crate) fn certs(&self) -> Result<&Arc<berth_edge::acme::CertManager>, WebError> {
        self.certs
            .as_ref()
            .ok_or(WebError::NotFound("certificates"))
    }
}

pub fn router(state: AppState) -> axum::Router {
    routes::build(state)
}

/// Serves the dashboard on an already bound listener until `shutdown` completes,
/// then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
