//! An edge served on fresh ports of one address, for the edge's tests.

use std::net::SocketAddr;
use std::sync::Arc;

use berth_edge::tls::{CertResolver, Http01Challenges};
use berth_edge::{Edge, Limits, Listeners, Route};
use tokio::sync::oneshot;

/// A running edge; it stops when `stop` is sent or dropped.
pub struct Serving {
    pub edge: Arc<Edge>,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub stop: oneshot::Sender<()>,
}

/// Serves `routes` on free HTTP and HTTPS ports of `ip`.
pub async fn serve_edge(ip: &str, routes: Vec<Route>, limits: Limits) -> Serving {
    let edge = Edge::new(
        Arc::new(CertResolver::new()),
        Arc::new(Http01Challenges::new()),
        limits,
    );
    edge.set_routes(routes);
    let any: SocketAddr = format!("{ip}:0").parse().unwrap();
    let listeners = Listeners::bind(any, any, "--http-listen", "--https-listen")
        .await
        .unwrap();
    let (http, https) = (listeners.http_addr(), listeners.https_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(berth_edge::serve(edge.clone(), listeners, async {
        let _ = stopped.await;
    }));
    Serving {
        edge,
        http,
        https,
        stop,
    }
}
