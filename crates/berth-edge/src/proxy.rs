//! Forwarding a request to an app's upstream: X-Forwarded-*, hop-by-hop
//! headers, WebSocket (and any HTTP/1.1 upgrade) tunnels, streaming bodies
//! (passed on frame by frame, so SSE arrives as it is written), limits and
//! timeouts, and berth's own 404/502/503/504 pages.

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::hold::Ramp;
use crate::routes::Route;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response the edge sends.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Limits and timeouts of the edge. The defaults suit a small server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line plus headers; more gets 431.
    pub max_header_bytes: usize,
    /// Request body; a larger declared length gets 413, a longer stream is cut.
    pub max_body_bytes: u64,
    /// Connecting to an upstream on 127.0.0.1.
    pub connect_timeout: Duration,
    /// From sending the request until the upstream's response headers arrive;
    /// the body may then stream for as long as it likes (SSE, downloads).
    pub response_timeout: Duration,
    /// From accept to a complete request head, TLS handshake included: a
    /// client that sends nothing, or too little, is closed (slowloris).
    pub header_read_timeout: Duration,
    /// A TLS handshake must complete within this time (and within the above).
    pub handshake_timeout: Duration,
    /// A connection with no request under way is closed after this long
    /// (HTTP/1 keep-alive, HTTP/2 without open streams).
    pub idle_timeout: Duration,
    /// HTTP/2 pings this often; a client that does not answer one within
    /// the same time is gone and its connection closed, streams and all.
    pub ping_interval: Duration,
    /// A WebSocket (any upgraded tunnel) with nothing passing either way
    /// for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// Client connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Client connections open at once from one address (IPv6: one /64).
    pub max_connections_per_client: usize,
    /// Peers whose forwarded headers are believed (a CDN or load balancer
    /// in front of berth); they count only in the total connection cap.
    pub trusted_proxies: Vec<crate::forwarded::Cidr>,
    /// A request body must arrive whole within this long of its head, or
    /// the request is ended with 408: a body trickled in byte by byte does
    /// not hold a connection and an app's worker for ever.
    pub body_timeout: Duration,
    /// ...and with no gap longer than this between two of its parts.
    pub body_idle_timeout: Duration,
    /// New connections one client address (IPv6: one /64) may open per
    /// second, on average; 0 turns the limit off. Trusted proxies are exempt.
    pub new_connections_per_sec: u32,
    /// How many new connections a client may open at once before the rate
    /// above applies (a browser opening its parallel connections, a reload).
    pub new_connections_burst: u32,
}

impl Limits {
    pub(crate) fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        crate::forwarded::is_trusted(&self.trusted_proxies, ip)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_body_bytes: 100 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(30),
            tunnel_idle_timeout: Duration::from_secs(600),
            max_connections: 8192,
            max_connections_per_client: 256,
            trusted_proxies: Vec::new(),
            body_timeout: Duration::from_secs(15 * 60),
            body_idle_timeout: Duration::from_secs(30),
            new_connections_per_sec: 50,
            new_connections_burst: 200,
        }
    }
}

pub(crate) type UpstreamClient = Client<HttpConnector, Body>;

/// One pooled HTTP/1.1 client for every upstream: keep-alive to the apps
/// saves a connect per request.
pub(crate) fn client(limits: &Limits) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(limits.connect_timeout));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// The upstream connection one client connection keeps for its own requests:
/// a keep-alive client's requests go straight to its app over it, without
/// the shared pool's checkout and the task the pool spawns per request to
/// take the connection back. Upgrades, and HTTP/2 streams while the kept
/// connection is busy, go through the shared pool instead. The connection
/// closes when the client connection does.
#[derive(Default)]
pub(crate) struct Affinity {
    kept: std::sync::Mutex<Kept>,
}

#[derive(Default)]
enum Kept {
    #[default]
    None,
    Idle {
        upstream: SocketAddr,
        sender: http1::SendRequest<Body>,
    },
    /// Lent to a request under way.
    Busy,
}

/// The kept connection lent to one request. Dropped with its sender put
/// back, the connection stays kept; without (failure, timeout, a cancelled
/// request) the slot is left empty and the connection closes.
struct Lease<'a> {
    affinity: &'a Affinity,
    upstream: SocketAddr,
    sender: Option<http1::SendRequest<Body>>,
}

impl Affinity {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A lease on the kept connection for a request to `upstream`: with the
    /// connection when it is ready, empty when there is none yet (or it was
    /// closed, or went to an upstream a deploy replaced). `None` while it is
    /// busy with another request (HTTP/2 streams side by side).
    fn lease(&self, upstream: SocketAddr) -> Option<Lease<'_>> {
        let mut kept = self.lock();
        let sender = match std::mem::replace(&mut *kept, Kept::Busy) {
            Kept::Busy => return None,
            Kept::None => None,
            Kept::Idle {
                upstream: to,
                sender,
            } if to == upstream && sender.is_ready() => Some(sender),
            Kept::Idle {
                upstream: to,
                sender,
            } if to == upstream && !sender.is_closed() => {
                // Still finishing its last answer.
                *kept = Kept::Idle {
                    upstream: to,
                    sender,
                };
                return None;
            }
            Kept::Idle { .. } => None,
        };
        Some(Lease {
            affinity: self,
            upstream,
            sender,
        })
    }

    /// Opens a connection to `upstream`, served by a task of its own.
    async fn connect(
        upstream: SocketAddr,
        timeout: Duration,
    ) -> Result<http1::SendRequest<Body>, BoxError> {
        let stream = connect_retrying(upstream, timeout).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// How long one connect attempt may wait for the upstream's answer before
/// a new one is sent. On a container an answer takes well under a
/// millisecond; no answer means the server's accept queue was full and the
/// kernel dropped the SYN, which it would resend only after a second.
const CONNECT_ATTEMPT: Duration = Duration::from_millis(200);

/// Connects to `upstream` within `timeout`, sending a fresh SYN every
/// [`CONNECT_ATTEMPT`] while there is no answer (a refusal fails at once).
async fn connect_retrying(
    upstream: SocketAddr,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, BoxError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err("connecting to the upstream timed out".into());
        }
        let attempt = left.min(CONNECT_ATTEMPT);
        match tokio::time::timeout(attempt, tokio::net::TcpStream::connect(upstream)).await {
            Ok(result) => return Ok(result?),
            Err(_) => continue,
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        *self.affinity.lock() = match self.sender.take() {
            Some(sender) => Kept::Idle {
                upstream: self.upstream,
                sender,
            },
            None => Kept::None,
        };
    }
}

/// Sends `request` (origin-form) over the client connection's kept upstream
/// connection, opening it first if need be, or through the shared pool when
/// the kept one is busy or turns out to have closed before the request left.
/// A request released from a hold that has no ready connection of its own
/// waits for a slot of the hold's `ramp` first.
async fn send(
    client: &UpstreamClient,
    affinity: &Affinity,
    limits: &Limits,
    upstream: SocketAddr,
    request: Request<Body>,
    ramp: Option<&Ramp>,
) -> Result<Response<Incoming>, BoxError> {
    let Some(mut lease) = affinity.lease(upstream) else {
        return paced(ramp, send_pooled(client, upstream, request)).await;
    };
    match lease.sender.take() {
        Some(sender) => send_kept(client, &mut lease, sender, request).await,
        None => {
            let opened = async {
                let sender = Affinity::connect(upstream, limits.connect_timeout).await?;
                send_kept(client, &mut lease, sender, request).await
            };
            paced(ramp, opened).await
        }
    }
}

/// Sends over the lease's connection and keeps it for the next request.
async fn send_kept(
    client: &UpstreamClient,
    lease: &mut Lease<'_>,
    mut sender: http1::SendRequest<Body>,
    request: Request<Body>,
) -> Result<Response<Incoming>, BoxError> {
    match sender.try_send_request(request).await {
        Ok(response) => {
            lease.sender = Some(sender);
            Ok(response)
        }
        Err(mut err) => match err.take_message() {
            Some(request) => send_pooled(client, lease.upstream, request).await,
            None => Err(err.into_error().into()),
        },
    }
}

/// Runs `send` in a slot of `ramp`, if there is one.
async fn paced(
    ramp: Option<&Ramp>,
    send: impl Future<Output = Result<Response<Incoming>, BoxError>>,
) -> Result<Response<Incoming>, BoxError> {
    match ramp {
        Some(ramp) => ramp.paced(send).await,
        None => send.await,
    }
}

/// Sends through the shared pool, which wants the absolute form `http://upstream/path`.
async fn send_pooled(
    client: &UpstreamClient,
    upstream: SocketAddr,
    mut request: Request<Body>,
) -> Result<Response<Incoming>, BoxError> {
    let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = format!("http://{upstream}{path_and_query}").parse()?;
    Ok(client.request(request).await?)
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

#[derive(Template)]
#[template(path = "edge/page.html")]
struct Page<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

/// One of berth's own pages (HTML, never cached).
pub(crate) fn page(status: StatusCode, title: &str, message: &str) -> Response<Body> {
    let html = Page {
        status: status.as_u16(),
        title,
        message,
    }
    .render()
    .unwrap_or_else(|_| title.to_owned());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(full(html))
        .expect("a static response is valid")
}

/// The answer for a host or path no route covers: it names no app.
pub(crate) fn not_found() -> Response<Body> {
    page(
        StatusCode::NOT_FOUND,
        "Nothing here",
        "No site on this server answers to this address.",
    )
}

pub(crate) fn bad_gateway(app: &str) -> Response<Body> {
    page(
        StatusCode::BAD_GATEWAY,
        &format!("{app} is not answering"),
        &format!(
            "The app {app} is not running or did not answer. If it was just deployed or restarted, try again in a moment."
        ),
    )
}

/// The answer to a request held for a recreate deploy ([`crate::Edge::hold`])
/// that outlasted its limit: the app's new version did not come up in time.
pub(crate) fn held_too_long(app: &str) -> Response<Body> {
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("{app} is restarting"),
        &format!("The app {app} is being redeployed and is not back yet. Try again in a moment."),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

fn gateway_timeout(app: &str) -> Response<Body> {
    page(
        StatusCode::GATEWAY_TIMEOUT,
        &format!("{app} took too long"),
        &format!("The app {app} did not answer in time."),
    )
}

/// The answer when sending failed because the client's body did (a broken
/// chunk, an HTTP/2 length that does not match, more than the limit): the
/// client's fault, not the app's. The app got a cut message it discards.
fn client_body_failed(err: &(dyn std::error::Error + 'static)) -> Option<Response<Body>> {
    type Cause<'a> = &'a (dyn std::error::Error + 'static);
    fn chain(e: Cause<'_>) -> impl Iterator<Item = Cause<'_>> {
        std::iter::successors(Some(e), |e| e.source())
    }
    // The client's body failed where hyper reports a user error: its causes say how.
    let refused = |cause: Cause<'_>| {
        if cause.is::<crate::conn::BodyTimeout>() {
            Some(page(
                StatusCode::REQUEST_TIMEOUT,
                "Request timeout",
                "The request body did not arrive in time.",
            ))
        } else if cause.is::<http_body_util::LengthLimitError>() {
            Some(page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request too large",
                "The request body is larger than this server accepts.",
            ))
        } else if cause.is::<hyper::Error>() {
            Some(page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The request body was not valid.",
            ))
        } else {
            None
        }
    };
    chain(err)
        .filter(|e| {
            e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_user)
        })
        .find_map(|user| chain(user).skip(1).find_map(&refused))
}

/// Requests and tunnels under way per upstream, so a deploy can wait for
/// the old container's to finish (drain) instead of guessing a duration.
#[derive(Default)]
pub(crate) struct InFlight {
    counts: std::sync::Mutex<std::collections::HashMap<SocketAddr, usize>>,
    idle: tokio::sync::Notify,
}

impl InFlight {
    pub(crate) fn start(self: &std::sync::Arc<Self>, upstream: SocketAddr) -> InFlightGuard {
        *self.lock().entry(upstream).or_default() += 1;
        InFlightGuard {
            tracker: self.clone(),
            upstream,
        }
    }

    pub(crate) fn count(&self, upstream: SocketAddr) -> usize {
        self.lock().get(&upstream).copied().unwrap_or(0)
    }

    pub(crate) fn idle(&self) -> &tokio::sync::Notify {
        &self.idle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<SocketAddr, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One request (with its streamed body) or tunnel to an upstream; counted until dropped.
pub(crate) struct InFlightGuard {
    tracker: std::sync::Arc<InFlight>,
    upstream: SocketAddr,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = self.tracker.lock();
        if let Some(n) = counts.get_mut(&self.upstream) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.upstream);
                drop(counts);
                self.tracker.idle.notify_waiters();
            }
        }
    }
}

/// What the listener knows about the request beyond the request itself.
pub(crate) struct RequestInfo<'a> {
    pub peer: SocketAddr,
    pub https: bool,
    /// The host as the client sent it (with a port, if any).
    pub host_header: Option<HeaderValue>,
    /// Held until the response body ends or the tunnel closes.
    pub in_flight: InFlightGuard,
    /// The client connection's own upstream connection.
    pub affinity: &'a Affinity,
    /// Paces the request when a hold released it.
    pub ramp: Option<&'a Ramp>,
    /// The edge's secret, when the upstream is the dashboard's listener.
    pub dashboard_secret: Option<HeaderValue>,
}

/// The header that tells the dashboard a request came through this
/// process's edge (its value is a secret made at start), so its
/// `X-Real-IP` is the client's address. Any other local process that
/// connects to the dashboard is just a loopback peer.
pub const DASHBOARD_SECRET_HEADER: HeaderName = HeaderName::from_static("x-berth-edge-secret");

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them (or only `Connection`): one walk over
    // the names, instead of a hashed removal for each of the seven, was a
    // tenth of the edge's own instructions per request (docs/edge-performance.md).
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // `keep-alive` (the usual token) is removed below anyway.
        .filter(|name| {
            !HOP_BY_HOP
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h.as_str()))
        })
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Sends the request to `upstream` and the answer back.
pub(crate) async fn forward(
    client: &UpstreamClient,
    limits: &Limits,
    mut req: Request<Incoming>,
    route: &Route,
    app: &str,
    upstream: SocketAddr,
    info: RequestInfo<'_>,
) -> Response<Body> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes) {
        return page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request too large",
            "The request body is larger than this server accepts.",
        );
    }
    let upgrade = wants_upgrade(req.headers()).then(|| {
        (
            req.headers().get(header::UPGRADE).cloned(),
            hyper::upgrade::on(&mut req),
        )
    });
    let (mut parts, body) = req.into_parts();

    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match route.upstream_path(path_and_query).parse() {
        Ok(uri) => uri,
        Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The address is not valid.",
            );
        }
    };
    remove_hop_by_hop(&mut parts.headers);
    if let Some((Some(protocol), _)) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol.clone());
    }
    // HTTP/2 clients send the host as :authority; the app speaks HTTP/1.1 and wants Host.
    match &info.host_header {
        Some(host) => {
            parts.headers.insert(header::HOST, host.clone());
        }
        None => {
            // HTTP/1.0 without Host: the upstream still needs one.
            if let Ok(host) = HeaderValue::from_str(&upstream.to_string()) {
                parts.headers.insert(header::HOST, host);
            }
        }
    }
    crate::forwarded::set(
        &mut parts.headers,
        info.peer.ip(),
        info.https,
        info.host_header.as_ref(),
        &limits.trusted_proxies,
    );
    // Only the dashboard gets the edge's secret: it then believes X-Real-IP.
    match info.dashboard_secret {
        Some(secret) => parts.headers.insert(DASHBOARD_SECRET_HEADER, secret),
        None => parts.headers.remove(DASHBOARD_SECRET_HEADER),
    };
    parts.version = Version::HTTP_11;
    let body = Limited::new(body, limits.max_body_bytes as usize);
    // Most requests have no body: they need no timers.
    let body = if hyper::body::Body::is_end_stream(&body) {
        body.boxed_unsync()
    } else {
        crate::conn::Deadlined::new(body, limits.body_timeout, limits.body_idle_timeout)
            .boxed_unsync()
    };
    let request = Request::from_parts(parts, body);

    let sent = async {
        if upgrade.is_some() {
            // A tunnel takes the upstream socket over: the pool's
            // connections are the ones that can hand it on.
            paced(info.ramp, send_pooled(client, upstream, request)).await
        } else {
            send(client, info.affinity, limits, upstream, request, info.ramp).await
        }
    };
    let result = tokio::time::timeout(limits.response_timeout, sent).await;
    let mut response = match result {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            if let Some(refused) = client_body_failed(&*err) {
                tracing::debug!(app.name = %app, error = %err, "the client's request body was refused");
                return refused;
            }
            tracing::debug!(app.name = %app, upstream = %upstream, error = %err, "upstream failed");
            return bad_gateway(app);
        }
        Err(_) => {
            tracing::debug!(app.name = %app, upstream = %upstream, "upstream timed out");
            return gateway_timeout(app);
        }
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some((_, client_side)) = upgrade {
            let upstream_side = hyper::upgrade::on(&mut response);
            let app = app.to_owned();
            let in_flight = info.in_flight;
            let idle = limits.tunnel_idle_timeout;
            tokio::spawn(async move {
                let _in_flight = in_flight;
                let (Ok(client_io), Ok(upstream_io)) = (client_side.await, upstream_side.await)
                else {
                    tracing::debug!(app.name = %app, "an upgrade was not completed");
                    return;
                };
                crate::conn::tunnel(TokioIo::new(client_io), TokioIo::new(upstream_io), idle).await;
            });
        }
        return response.map(|b| b.map_err(BoxError::from).boxed_unsync());
    }
    remove_hop_by_hop(response.headers_mut());
    let in_flight = info.in_flight;
    response.map(|b| {
        b.map_err(BoxError::from)
            .map_frame(move |frame| {
                // The body owns the guard: the request counts until its last frame.
                let _ = &in_flight;
                frame
            })
            .boxed_unsync()
    })
}
