//! Server-rendered dashboard pages, one module per resource.

pub mod apps;
pub mod assets;
pub mod backups;
pub mod catalogue;
pub mod certificates;
pub mod dashboard;
pub mod databases;
pub mod deployments;
pub mod domains;
pub mod env;
pub mod health;
pub mod login;
pub mod monitoring;
pub mod projects;
pub mod resources;
pub mod settings;
pub mod setup;
pub mod stacks;
pub mod storage;
pub mod tokens;
pub mod webhooks;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::routes::Table;
use crate::{AppState, WebError};

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
    catalogue::routes(t);
    stacks::routes(t);
    databases::routes(t);
    tokens::routes(t);
    monitoring::routes(t);
    backups::routes(t);
}

pub async fn not_found() -> WebError {
    WebError::NotFound("page")
}

/// The client's address, for throttling logins: the TCP peer, or, for a
/// request that came through berth's own edge (it carries the edge's
/// secret), the address the edge gave in `X-Real-IP`. Another process on
/// this machine is only a loopback peer, whatever headers it sends.
/// Unknown (tests calling the router directly) counts as one shared address.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let forwarded = crate::auth::from_edge(state, &parts.headers)
            .then(|| parts.headers.get("x-real-ip"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        Ok(ClientIp(forwarded.unwrap_or(peer)))
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn state() -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().unwrap();
        let store = berth_store::Store::open(dir.path()).await.unwrap();
        let docker =
            berth_docker::DockerClient::connect(Some("unix:///nonexistent/berth-ip.sock")).unwrap();
        let runtime = berth_deploy::Runtime::new(store, docker).await.unwrap();
        (dir, AppState::new(runtime.services(), None))
    }

    async fn client_ip(state: &AppState, peer: &str, headers: &[(&str, &str)]) -> String {
        let mut request = axum::http::Request::builder().uri("/login");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        let ClientIp(ip) = ClientIp::from_request_parts(&mut parts, state)
            .await
            .unwrap();
        ip.to_string()
    }

    #[tokio::test]
    async fn only_the_edge_names_the_client_and_a_local_process_is_just_loopback() {
        let (_dir, state) = state().await;
        let state = state.with_edge_secret("the-edges-secret");
        let spoofed = [("x-forwarded-for", "10.0.0.1"), ("x-real-ip", "10.0.0.2")];
        assert_eq!(
            client_ip(&state, "127.0.0.1:5000", &spoofed).await,
            "127.0.0.1"
        );
        let guessed = [("x-berth-edge-secret", "guess"), ("x-real-ip", "10.0.0.2")];
        assert_eq!(
            client_ip(&state, "127.0.0.1:5000", &guessed).await,
            "127.0.0.1"
        );
        let from_edge = [
            ("x-berth-edge-secret", "the-edges-secret"),
            ("x-real-ip", "203.0.113.7"),
        ];
        assert_eq!(
            client_ip(&state, "127.0.0.1:5000", &from_edge).await,
            "203.0.113.7"
        );
        assert_eq!(
            client_ip(&state, "198.51.100.2:5000", &spoofed).await,
            "198.51.100.2"
        );
    }

    #[tokio::test]
    async fn without_an_edge_no_header_names_the_client() {
        let (_dir, state) = state().await;
        let headers = [("x-berth-edge-secret", ""), ("x-real-ip", "10.0.0.2")];
        assert_eq!(
            client_ip(&state, "127.0.0.1:5000", &headers).await,
            "127.0.0.1"
        );
    }
}
