//! Server-rendered dashboard pages, one module per resource.

pub mod apps;
pub mod assets;
pub mod certificates;
pub mod dashboard;
pub mod deployments;
pub mod domains;
pub mod env;
pub mod health;
pub mod login;
pub mod projects;
pub mod settings;
pub mod setup;
pub mod storage;
pub mod webhooks;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::WebError;
use crate::routes::Table;

pub(crate) fn routes(t: &mut Table) {
    health::routes(t);
    assets::routes(t);
    setup::routes(t);
    login::routes(t);
    dashboard::routes(t);
    settings::routes(t);
    certificates::routes(t);
    projects::routes(t);
    apps::routes(t);
    domains::routes(t);
    env::routes(t);
    deployments::routes(t);
    webhooks::routes(t);
    storage::routes(t);
}

pub async fn not_found() -> WebError {
    WebError::NotFound("page")
}

/// The peer address, for throttling logins. Unknown (tests calling the router
/// directly) counts as one shared address.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        // Through berth's edge (the dashboard's domain) every request comes
        // from loopback; the edge appends the real peer as the last
        // X-Forwarded-For entry, so that one is trusted, and only from loopback.
        let forwarded = ip
            .is_loopback()
            .then(|| parts.headers.get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok());
        Ok(ClientIp(forwarded.unwrap_or(ip)))
    }
}

/// Names in a URL that do not parse cannot name anything that exists.
pub fn parse_path<T, E>(
    parse: impl FnOnce(&str) -> Result<T, E>,
    value: &str,
    what: &'static str,
) -> Result<T, WebError> {
    parse(value).map_err(|_| WebError::NotFound(what))
}
