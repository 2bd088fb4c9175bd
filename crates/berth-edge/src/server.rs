//! The HTTP and HTTPS listeners and the one request path they share:
//! ACME HTTP-01 answers (plain HTTP only, before routing) → route lookup →
//! redirect to HTTPS, static files or the proxy (after waiting, while the
//! app is held for a recreate deploy, for its release).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn::{Activity, Connections, Counted, Tracked};

use crate::hold::{HoldGuard, Holds, Ramp};
use crate::proxy::{self, Affinity, Body, InFlight, Limits, RequestInfo, UpstreamClient, full};
use crate::routes::{Route, RouteTable, Target, normalize_host};
use crate::statics;
use crate::tls::{ACME_TLS_ALPN, CertResolver, Http01Challenges, server_config};

/// How long open connections get to finish when berth stops (or, when
/// closed for idleness, to finish a request that arrived just then).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The edge: its route table, the upstream connection pool and the TLS state.
/// One per process, shared behind an `Arc`.
pub struct Edge {
    routes: ArcSwap<RouteTable>,
    client: UpstreamClient,
    limits: Limits,
    certs: Arc<CertResolver>,
    challenges: Arc<Http01Challenges>,
    statics: statics::Cache,
    /// The HTTPS port redirects point at (443 unless the listener is elsewhere).
    https_port: AtomicU16,
    /// The HTTP port, for links the dashboard shows (80 unless elsewhere).
    http_port: AtomicU16,
    in_flight: Arc<InFlight>,
    /// Apps whose requests wait for a recreate deploy ([`Edge::hold`]).
    holds: Arc<Holds>,
    /// Open client connections, for the caps in `limits`.
    connections: Arc<Connections>,
    /// The dashboard's listener, whose requests carry `secret`.
    dashboard: OnceLock<SocketAddr>,
    secret: HeaderValue,
}

impl Edge {
    pub fn new(
        certs: Arc<CertResolver>,
        challenges: Arc<Http01Challenges>,
        limits: Limits,
    ) -> Arc<Edge> {
        Arc::new(Edge {
            routes: ArcSwap::from_pointee(RouteTable::default()),
            client: proxy::client(&limits),
            limits,
            certs,
            challenges,
            statics: statics::Cache::default(),
            https_port: AtomicU16::new(443),
            http_port: AtomicU16::new(80),
            in_flight: Arc::new(InFlight::default()),
            holds: Arc::new(Holds::default()),
            connections: Arc::new(Connections::default()),
            dashboard: OnceLock::new(),
            secret: new_secret(),
        })
    }

    /// Names the dashboard's own listener: requests the edge forwards there
    /// carry [`Edge::dashboard_secret`] in [`proxy::DASHBOARD_SECRET_HEADER`],
    /// so the dashboard can believe the client address the edge gives it.
    /// Set once; later calls are ignored.
    pub fn set_dashboard(&self, upstream: SocketAddr) {
        let _ = self.dashboard.set(upstream);
    }

    /// The secret (made at start, never stored) that marks the dashboard's
    /// requests as coming through this edge.
    pub fn dashboard_secret(&self) -> &str {
        self.secret.to_str().expect("the secret is hex")
    }

    /// Client connections open now (WebSocket tunnels included).
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    /// Replaces the whole route table at once. Requests already routed keep
    /// the table they started with, so they finish against their upstream.
    pub fn set_routes(&self, routes: impl IntoIterator<Item = Route>) {
        self.routes.store(Arc::new(RouteTable::new(routes)));
    }

    /// Requests (and WebSocket tunnels) now under way to `upstream`.
    pub fn in_flight(&self, upstream: SocketAddr) -> usize {
        self.in_flight.count(upstream)
    }

    /// Waits until nothing is under way to `upstream` any more (call it after
    /// a new table stopped routing there), at most `max`. True when drained.
    pub async fn drain(&self, upstream: SocketAddr, max: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let idle = self.in_flight.idle().notified();
            tokio::pin!(idle);
            // Registered before the count is read, so a wake between the two is not lost.
            idle.as_mut().enable();
            if self.in_flight.count(upstream) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return false;
            }
        }
    }

    /// Holds the requests for the app `app` while its container is swapped
    /// (a recreate deploy), until the guard is dropped or released; then they
    /// read the route table again and go on to what it says. A request that
    /// has waited `limit` gets a 503 page naming the app, with `Retry-After: 5`.
    ///
    /// Held are the requests whose route goes to `upstream` (the old
    /// container; any app name), and those whose route names the app `app`
    /// and has no upstream (the old container is stopped and the new one not
    /// published yet). A route of `app` with another upstream is not held:
    /// publish the new container once it serves, then release. Holds may
    /// overlap; a request waits until every one that covers it is released,
    /// at most the longest of their limits (the app's deploy settings hold
    /// it 10 s unless the user changes that).
    pub fn hold(&self, app: &str, upstream: Option<SocketAddr>, limit: Duration) -> HoldGuard {
        self.holds.hold(app, upstream, limit)
    }

    /// Requests waiting now for a hold to be released.
    pub fn held(&self) -> usize {
        self.holds.waiting()
    }

    /// The current table.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    pub fn certs(&self) -> &Arc<CertResolver> {
        &self.certs
    }

    pub fn challenges(&self) -> &Arc<Http01Challenges> {
        &self.challenges
    }

    /// Sets the ports redirects and links name (the listeners' ports).
    pub fn set_ports(&self, http: u16, https: u16) {
        self.http_port.store(http, Ordering::Relaxed);
        self.https_port.store(https, Ordering::Relaxed);
    }

    /// `http://host/` with the edge's port when it is not 80: where a site
    /// on this edge can be opened.
    pub fn site_url(&self, host: &str, path: &str) -> String {
        match self.http_port.load(Ordering::Relaxed) {
            80 => format!("http://{host}{path}"),
            port => format!("http://{host}:{port}{path}"),
        }
    }

    /// Answers one request from a client connection.
    pub(crate) async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        https: bool,
        affinity: &Affinity,
    ) -> Response<Body> {
        let host_header = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let host = host_header
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .map(normalize_host)
            .unwrap_or_default();
        let path = req.uri().path();

        if !https && let Some(token) = path.strip_prefix(ACME_CHALLENGE_PATH) {
            return match self.challenges.answer(token) {
                Some(key_authorization) => Response::builder()
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body(full(key_authorization))
                    .expect("a text response is valid"),
                None => proxy::not_found(),
            };
        }

        // `localhost` and its subdomains are loopback by definition (RFC 6761):
        // such a Host from anywhere else is never a browser on this machine.
        if is_localhost(&host) && !peer.ip().to_canonical().is_loopback() {
            return proxy::not_found();
        }

        let mut table = self.routes.load_full();
        let mut ramp = None;
        // While nothing is held, this is one relaxed atomic load.
        if self.holds.any() {
            (table, ramp) = match self.wait_while_held(table, &host, path, https).await {
                Ok(held) => held,
                Err(unavailable) => return unavailable,
            };
        }
        let Some(route) = table.lookup(&host, path) else {
            return proxy::not_found();
        };

        if self.redirects(route, &host, https) {
            return self.redirect_to_https(&host, &req);
        }

        let mut response = match &route.target {
            Target::App {
                name,
                upstream: None,
            } => proxy::bad_gateway(name),
            Target::App {
                name,
                upstream: Some(addr),
            } => {
                let info = RequestInfo {
                    peer,
                    https,
                    host_header,
                    in_flight: self.in_flight.start(*addr),
                    affinity,
                    ramp: ramp.as_deref(),
                    dashboard_secret: (self.dashboard.get() == Some(addr))
                        .then(|| self.secret.clone()),
                };
                proxy::forward(&self.client, &self.limits, req, route, name, *addr, info).await
            }
            Target::Static { dir, spa_fallback } => {
                let (parts, _) = req.into_parts();
                let rel = if route.strip_prefix {
                    route.upstream_path(parts.uri.path()).into_owned()
                } else {
                    parts.uri.path().to_owned()
                };
                statics::serve(&self.statics, &parts, dir, *spa_fallback, &rel).await
            }
        };
        if https && route.hsts {
            response.headers_mut().insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
        }
        response
    }

    /// Whether a request on this route gets a redirect to HTTPS instead of an answer.
    fn redirects(&self, route: &Route, host: &str, https: bool) -> bool {
        !https && route.redirect_https && self.certs.has_certificate(host)
    }

    /// Waits while the request's route is held, then returns the route table
    /// as it is at the release (the deploy has put the new upstream in), to
    /// look the route up again, and the ramp that paces the released
    /// requests (`None` when it was not held). Another hold may cover the new
    /// route: it waits for that too, within the same limit. `Err` is the 503
    /// page once the limit has passed.
    async fn wait_while_held(
        &self,
        mut table: Arc<RouteTable>,
        host: &str,
        path: &str,
        https: bool,
    ) -> Result<(Arc<RouteTable>, Option<Arc<Ramp>>), Response<Body>> {
        let mut waiting = None;
        let mut limit = Duration::ZERO;
        let mut ramp = None;
        loop {
            let Some(route) = table.lookup(host, path) else {
                return Ok((table, ramp));
            };
            let Target::App { name, upstream } = &route.target else {
                return Ok((table, ramp));
            };
            if self.redirects(route, host, https) {
                return Ok((table, ramp));
            }
            let Some(wait) = self.holds.covering(name, *upstream) else {
                return Ok((table, ramp));
            };
            let waiting = waiting.get_or_insert_with(|| self.holds.start_waiting());
            limit = limit.max(wait.limit);
            ramp = Some(wait.ramp.clone());
            if !wait.released_by(waiting.since() + limit).await {
                tracing::debug!(app.name = %name, "a held request waited its limit");
                return Err(proxy::held_too_long(name));
            }
            table = self.routes.load_full();
        }
    }

    fn redirect_to_https(&self, host: &str, req: &Request<Incoming>) -> Response<Body> {
        let port = match self.https_port.load(Ordering::Relaxed) {
            443 => String::new(),
            p => format!(":{p}"),
        };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        Response::builder()
            .status(StatusCode::PERMANENT_REDIRECT)
            .header(header::LOCATION, format!("https://{host}{port}{path}"))
            .body(proxy::empty())
            .expect("a redirect is valid")
    }
}

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("cannot listen for {what} on {addr}: {reason}; {fix}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        reason: String,
        fix: String,
    },
}

/// The two bound listeners, before serving: binding first lets `berth serve`
/// fail with a clear message and print the real addresses (port 0 in tests).
pub struct Listeners {
    http: TcpListener,
    https: TcpListener,
}

impl Listeners {
    /// Binds both ports. `http_flag` and `https_flag` name the settings the
    /// error message should suggest (e.g. `--http-listen / BERTH_HTTP_LISTEN`).
    pub async fn bind(
        http: SocketAddr,
        https: SocketAddr,
        http_flag: &str,
        https_flag: &str,
    ) -> Result<Listeners, EdgeError> {
        Ok(Listeners {
            http: bind_one("HTTP", http, http_flag).await?,
            https: bind_one("HTTPS", https, https_flag).await?,
        })
    }

    /// Listeners bound by the caller (e.g. one socket served from several
    /// runtimes through `try_clone`). Must be called inside a tokio runtime.
    pub fn from_std(
        http: std::net::TcpListener,
        https: std::net::TcpListener,
    ) -> std::io::Result<Listeners> {
        http.set_nonblocking(true)?;
        https.set_nonblocking(true)?;
        Ok(Listeners {
            http: TcpListener::from_std(http)?,
            https: TcpListener::from_std(https)?,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.https
            .local_addr()
            .expect("a bound listener has an address")
    }
}

async fn bind_one(
    what: &'static str,
    addr: SocketAddr,
    flag: &str,
) -> Result<TcpListener, EdgeError> {
    TcpListener::bind(addr).await.map_err(|err| {
        let fix = match err.kind() {
            std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
                "ports below 1024 need root or the CAP_NET_BIND_SERVICE capability (sudo setcap cap_net_bind_service=+ep $(command -v berth)), or choose another address with {flag}"
            ),
            std::io::ErrorKind::AddrInUse => format!(
                "another program already listens there (another web server such as nginx, apache or caddy?): stop it, or choose another address with {flag}"
            ),
            _ => format!("choose another address with {flag}"),
        };
        EdgeError::Bind {
            what,
            addr,
            reason: err.to_string(),
            fix,
        }
    })
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.ping_interval)
        .keep_alive_timeout(limits.ping_interval)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

fn is_localhost(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost")
}

/// 32 random bytes, hex.
fn new_secret() -> HeaderValue {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&hex).expect("hex is a valid header")
}

/// Serves both listeners until `shutdown` completes, then gives open
/// connections a grace period to finish.
pub async fn serve(edge: Arc<Edge>, listeners: Listeners, shutdown: impl Future<Output = ()>) {
    edge.set_ports(listeners.http_addr().port(), listeners.https_addr().port());
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(edge.certs.clone()));
    let builder = Arc::new(builder(&edge.limits));
    let stopping = CancellationToken::new();
    let tasks = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer, https) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listeners.http.accept() => match accepted_or_pause(accepted).await {
                Some((stream, peer)) => (stream, peer, false),
                None => continue,
            },
            accepted = listeners.https.accept() => match accepted_or_pause(accepted).await {
                Some((stream, peer)) => (stream, peer, true),
                None => continue,
            },
        };
        let accepted = tokio::time::Instant::now();
        // Over the cap: closed at once, before any work or buffer.
        let Some(place) = edge.connections.admit(peer.ip(), &edge.limits) else {
            tracing::debug!(peer = %peer, "connection refused: too many open");
            continue;
        };
        let io = Counted {
            io: stream,
            _place: place,
        };
        let (edge, builder, stopping) = (edge.clone(), builder.clone(), stopping.clone());
        if !https {
            tasks.spawn(serve_connection(
                edge, builder, io, peer, false, accepted, stopping,
            ));
            continue;
        }
        let acceptor = acceptor.clone();
        tasks.spawn(async move {
            // Within the head deadline too: it counts from accept.
            let deadline = accepted
                + edge
                    .limits
                    .handshake_timeout
                    .min(edge.limits.header_read_timeout);
            let tls = tokio::select! {
                tls = tokio::time::timeout_at(deadline, acceptor.accept(io)) => match tls {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => {
                        tracing::debug!(peer = %peer, error = %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                () = stopping.cancelled() => return,
            };
            // A TLS-ALPN-01 validation: the handshake was the whole answer.
            if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
                return;
            }
            serve_connection(edge, builder, tls, peer, true, accepted, stopping).await;
        });
    }
    drop(listeners);
    stopping.cancel();
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("edge connections still open after the grace period; closing them");
    }
}

/// Serves one client connection until it ends, outlives its deadlines
/// (no complete head in time, idle too long) or berth stops.
async fn serve_connection<I>(
    edge: Arc<Edge>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    io: I,
    peer: SocketAddr,
    https: bool,
    accepted: tokio::time::Instant,
    stopping: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new(accepted);
    let (head, idle) = (edge.limits.header_read_timeout, edge.limits.idle_timeout);
    let conn = builder.serve_connection_with_upgrades(
        TokioIo::new(io),
        service(edge.clone(), peer, https, activity.clone()),
    );
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = activity.expired(head, idle) => {}
        () = stopping.cancelled() => {}
    }
    // Nothing to finish before a first request; dropping closes the socket
    // (hyper-util's sniffing would not notice a shutdown on a silent one).
    if !activity.any_request() {
        tracing::debug!(peer = %peer, "closed before a complete request head");
        return;
    }
    // HTTP/1 closes now (no request is under way), HTTP/2 says GOAWAY and
    // finishes the streams that raced with it.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
}

/// An accepted connection, or `None` after a short pause when accepting
/// failed (out of file descriptors): retrying at once would spin.
async fn accepted_or_pause(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
) -> Option<(TcpStream, SocketAddr)> {
    match accepted {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(err) => {
            tracing::warn!(error = %err, "edge could not accept a connection");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// The service of one client connection, with the upstream connection it keeps.
fn service(
    edge: Arc<Edge>,
    peer: SocketAddr,
    https: bool,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Tracked>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Tracked>, Infallible>> + Send,
> + Clone {
    let affinity = Arc::new(Affinity::default());
    service_fn(move |req| {
        let edge = edge.clone();
        let affinity = affinity.clone();
        // Under way from its head until its response body ends.
        let request = activity.begin();
        async move {
            let response = edge.handle(req, peer, https, &affinity).await;
            Ok::<_, Infallible>(response.map(|body| Tracked::new(body, request)))
        }
    })
}
