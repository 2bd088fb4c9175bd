//! Client connections: how many the edge keeps, from whom, and for how long.
//!
//! Every accepted socket first takes a place ([`Connections::admit`]): in
//! total and per client address (an IPv6 client counts per /64, which one
//! subscriber usually holds whole). Without a place it is closed at once, so
//! a flood of sockets costs the edge no file descriptors the dashboard needs.
//! The place goes with the socket ([`Counted`]), also into a WebSocket
//! tunnel, and is given back when the socket closes.
//!
//! Each connection then lives under [`Activity`]: a complete request head
//! must arrive within the head deadline counted from accept (TLS handshake
//! and hyper-util's HTTP/1-or-2 sniffing included, which have no timer of
//! their own), and a connection with no request under way is closed after
//! the idle time-out (HTTP/1 keep-alive, HTTP/2 without streams). Tunnels
//! close after their own idle time-out ([`tunnel`]).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::proxy::{Body, BoxError, Limits};

/// File descriptors kept out of the edge's share: the dashboard, SQLite,
/// Docker, logs, certificates.
const RESERVED_FDS: u64 = 128;

/// Raises this process's soft limit on open files to its hard limit (the
/// soft one is often 1024, too few for an edge) and returns the limit now
/// in force. On failure the old limit stays, and is returned.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let old = getrlimit(Resource::Nofile);
    // "Unlimited" is not a value the kernel takes for open files (it caps
    // them at fs.nr_open, 1 Mi by default).
    let hard = old.maximum.unwrap_or(1 << 20);
    let raised = Rlimit {
        current: Some(hard),
        maximum: old.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => hard,
        Err(err) => {
            let soft = old.current.unwrap_or(hard);
            tracing::warn!(error = %err, limit = soft, "could not raise the open-file limit");
            soft
        }
    }
}

impl Limits {
    /// These limits with the connection caps lowered to what `open_files`
    /// descriptors allow: two per connection (the client's and the kept
    /// upstream connection), minus a reserve for the rest of berth. One
    /// client may take at most half of them.
    pub fn fit_open_files(mut self, open_files: u64) -> Limits {
        let share =
            usize::try_from(open_files.saturating_sub(RESERVED_FDS) / 2).unwrap_or(usize::MAX);
        self.max_connections = self.max_connections.min(share.max(8));
        self.max_connections_per_client = self
            .max_connections_per_client
            .min((self.max_connections / 2).max(1));
        self
    }
}

/// A client address as the caps count it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    /// The /64 the address lies in.
    V6(u64),
}

impl ClientKey {
    fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey::V4(v4.into()),
            IpAddr::V6(v6) => ClientKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// The edge's open client connections, in total and per client, and how
/// fast each client opens new ones.
#[derive(Default)]
pub(crate) struct Connections {
    open: AtomicUsize,
    per_client: std::sync::Mutex<HashMap<ClientKey, usize>>,
    /// Kept after a client's connections close: a flood of short
    /// connections is what this limits.
    rates: std::sync::Mutex<HashMap<ClientKey, Bucket>>,
}

/// A client's allowance of new connections (a token bucket).
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How many clients' allowances are kept; past it, those that have
/// refilled (as good as new) are forgotten.
const TRACKED_CLIENTS: usize = 65_536;

impl Connections {
    /// A place for a new connection from `peer`, or `None` when the edge, or
    /// that client, already has as many as `limits` allow. Trusted proxies
    /// (a CDN in front) carry many clients and are only counted in the total.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr, limits: &Limits) -> Option<Admitted> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= limits.max_connections {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let key = (!limits.is_trusted_proxy(peer)).then(|| ClientKey::of(peer));
        if let Some(key) = key
            && !self.take_new_connection(key, limits, Instant::now())
        {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        if let Some(key) = key {
            let mut per_client = self.lock();
            let n = per_client.entry(key).or_default();
            if *n >= limits.max_connections_per_client {
                drop(per_client);
                self.open.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
            *n += 1;
        }
        Some(Admitted {
            connections: self.clone(),
            key,
        })
    }

    /// Takes one new connection from the client's allowance; false when it
    /// has none left (it refills at `new_connections_per_sec`).
    fn take_new_connection(&self, key: ClientKey, limits: &Limits, now: Instant) -> bool {
        if limits.new_connections_per_sec == 0 {
            return true;
        }
        let rate = f64::from(limits.new_connections_per_sec);
        let burst = f64::from(limits.new_connections_burst.max(1));
        let refilled =
            |b: &Bucket| (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        if rates.len() >= TRACKED_CLIENTS && !rates.contains_key(&key) {
            rates.retain(|_, b| refilled(b) < burst);
            if rates.len() >= TRACKED_CLIENTS {
                // More clients opening connections at once than are kept:
                // start over rather than grow without bound.
                rates.clear();
            }
        }
        let bucket = rates.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = refilled(bucket);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, usize>> {
        self.per_client.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection's place; given back when dropped.
pub(crate) struct Admitted {
    connections: Arc<Connections>,
    key: Option<ClientKey>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut per_client = self.connections.lock();
            if let Some(n) = per_client.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    per_client.remove(&key);
                }
            }
        }
        self.connections.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client socket with its place: the place lives exactly as long as the
/// socket, wherever hyper hands it (an upgrade takes it into a tunnel).
pub(crate) struct Counted<T> {
    pub(crate) io: T,
    pub(crate) _place: Admitted,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// What one client connection is doing, for its deadlines.
pub(crate) struct Activity {
    accepted: Instant,
    /// Requests whose head has arrived, ever.
    requests: AtomicU64,
    /// Requests whose response has not ended yet.
    active: AtomicUsize,
    /// When the last response ended, in milliseconds after `accepted`.
    idle_since: AtomicU64,
}

impl Activity {
    pub(crate) fn new(accepted: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            accepted,
            requests: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        })
    }

    /// A request head has arrived; it is under way until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> Request {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::SeqCst);
        Request {
            activity: self.clone(),
        }
    }

    pub(crate) fn any_request(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
    }

    /// Resolves once the connection is past its deadline: no complete
    /// request head within `head` of accept, or no request under way for
    /// `idle`. A request under way has its own time-outs (the upstream's
    /// answer, the body limit), so it is never cut from here.
    pub(crate) async fn expired(&self, head: Duration, idle: Duration) {
        let mut deadline = self.accepted + head;
        loop {
            tokio::time::sleep_until(deadline).await;
            let now = Instant::now();
            deadline = if self.active.load(Ordering::SeqCst) > 0 {
                now + idle
            } else if !self.any_request() {
                return;
            } else {
                self.accepted + Duration::from_millis(self.idle_since.load(Ordering::SeqCst)) + idle
            };
            if deadline <= now {
                return;
            }
        }
    }
}

/// A request under way on a connection (until its response body ends).
pub(crate) struct Request {
    activity: Arc<Activity>,
}

impl Drop for Request {
    fn drop(&mut self) {
        let since = self.activity.accepted.elapsed().as_millis();
        self.activity
            .idle_since
            .store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::SeqCst);
        self.activity.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a request body was ended: it did not arrive whole in time.
#[derive(Debug)]
pub(crate) struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body with deadlines of its own: whole within `total` of its
/// start, with no gap longer than `idle` between its parts. Past either it
/// ends with [`BodyTimeout`], which ends the request to the app and
/// answers 408.
pub(crate) struct Deadlined<B> {
    body: B,
    total: Pin<Box<tokio::time::Sleep>>,
    idle: Pin<Box<tokio::time::Sleep>>,
    idle_for: Duration,
}

impl<B> Deadlined<B> {
    pub(crate) fn new(body: B, total: Duration, idle: Duration) -> Deadlined<B> {
        let now = Instant::now();
        Deadlined {
            body,
            total: Box::pin(tokio::time::sleep_until(now + total)),
            idle: Box::pin(tokio::time::sleep_until(now + idle)),
            idle_for: idle,
        }
    }
}

impl<B> hyper::body::Body for Deadlined<B>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = Instant::now() + this.idle_for;
                this.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.total.as_mut().poll(cx).is_ready() || this.idle.as_mut().poll(cx).is_ready()
                {
                    Poll::Ready(Some(Err(Box::new(BodyTimeout))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that keeps its request under way until it ends.
pub(crate) struct Tracked {
    body: Body,
    _request: Request,
}

impl Tracked {
    pub(crate) fn new(body: Body, request: Request) -> Tracked {
        Tracked {
            body,
            _request: request,
        }
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Copies a tunnel (a WebSocket) both ways until either side closes, or
/// nothing has passed in either direction for `idle`.
pub(crate) async fn tunnel<A, B>(client: A, upstream: B, idle: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let last = AtomicU64::new(0);
    let mut client = Touching {
        io: client,
        started,
        last: &last,
    };
    let mut upstream = Touching {
        io: upstream,
        started,
        last: &last,
    };
    let quiet = async {
        let mut deadline = started + idle;
        loop {
            tokio::time::sleep_until(deadline).await;
            deadline = started + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
            if deadline <= Instant::now() {
                return;
            }
        }
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        () = quiet => tracing::debug!("an idle tunnel was closed"),
    }
}

/// An I/O half of a tunnel that notes when bytes last arrived.
struct Touching<'a, T> {
    io: T,
    started: Instant,
    last: &'a AtomicU64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Touching<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last.store(ms, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Touching<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_counts_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(ClientKey::of(a) == ClientKey::of(b));
        assert!(ClientKey::of(a) != ClientKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(ClientKey::of(mapped) == ClientKey::of("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn places_are_capped_in_total_and_per_client_and_given_back() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_client: 2,
            ..Limits::default()
        };
        let connections = Arc::new(Connections::default());
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let a = connections.admit(one, &limits).unwrap();
        let _b = connections.admit(one, &limits).unwrap();
        assert!(connections.admit(one, &limits).is_none(), "per client");
        let _c = connections.admit(two, &limits).unwrap();
        assert!(connections.admit(two, &limits).is_none(), "in total");
        drop(a);
        assert!(connections.admit(one, &limits).is_some());
    }

    #[test]
    fn the_caps_fit_the_open_file_limit() {
        let limits = Limits::default().fit_open_files(256);
        assert_eq!(limits.max_connections, 64);
        assert_eq!(limits.max_connections_per_client, 32);
        let roomy = Limits::default().fit_open_files(1 << 20);
        assert_eq!(roomy.max_connections, Limits::default().max_connections);
    }
}
