//! Server-rendered dashboard pages, one module per resource.

pub mod apps;
pub mod assets;
pub mod dashboard;
pub mod health;
pub mod login;
pub mod projects;
pub mod setup;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::WebError;

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
        Ok(ClientIp(ip))
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
