//! The edge against a hostile internet, over real sockets on 127.0.0.1:
//! connections that send nothing or too little are closed at their
//! deadlines, caps keep a flood of sockets from taking the edge, request
//! smuggling never reaches an app, forwarded headers tell the truth, and
//! `*.localhost` answers only to this machine. Deadlines are set short here.

mod common;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_edge::{Cidr, Edge, Limits, Route};
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

/// An edge on `ip` (port 0), stopped when dropped.
type Running = common::Serving;

async fn edge_on(ip: &str, routes: Vec<Route>, limits: Limits) -> Running {
    common::serve_edge(ip, routes, limits).await
}

async fn edge_with(routes: Vec<Route>, limits: Limits) -> Running {
    edge_on("127.0.0.1", routes, limits).await
}

/// Limits with every deadline short, so tests wait fractions of a second.
fn short() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(600),
        handshake_timeout: Duration::from_millis(600),
        idle_timeout: Duration::from_millis(600),
        tunnel_idle_timeout: Duration::from_millis(600),
        ..Limits::default()
    }
}

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    /// The whole body, or `None` when it never arrived complete.
    body: Option<Bytes>,
}

impl Seen {
    /// One message with one unambiguous length that matches its body.
    fn well_framed(&self) -> bool {
        let lengths = self.headers.get_all("content-length").iter().count();
        let chunked = self.headers.contains_key("transfer-encoding");
        let Some(body) = &self.body else { return false };
        let declared = self
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        lengths <= 1 && !(chunked && lengths == 1) && declared.is_none_or(|n| n == body.len())
    }
}

/// An app that records every request it gets, and every byte that reaches it.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    raw: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (seen2, raw2) = (seen.clone(), raw.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen2.clone();
                let io = Tapped {
                    io: stream,
                    raw: raw2.clone(),
                };
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.ok().map(|b| b.to_bytes());
                            let complete = body.is_some();
                            seen.lock().unwrap().push(Seen {
                                path: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            });
                            let status = if complete { 200 } else { 400 };
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"recorded")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(io), service)
                        .await;
                });
            }
        });
        Recorder { addr, seen, raw }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn raw(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned()
    }
}

/// A socket that copies what it reads into a shared log.
struct Tapped {
    io: TcpStream,
    raw: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Tapped {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        let new = buf.filled()[before..].to_vec();
        self.raw.lock().unwrap().extend_from_slice(&new);
        polled
    }
}

impl tokio::io::AsyncWrite for Tapped {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How long until the edge closes `stream` (EOF or reset), at most `max`;
/// `None` if it is still open then. Whatever the edge sent is discarded.
async fn closed_within(stream: &mut TcpStream, max: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + max).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends raw bytes and returns everything the edge answers until it closes
/// the connection (or 3 s pass).
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn statuses(answer: &str) -> Vec<u16> {
    answer
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| answer.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn sockets_that_send_nothing_or_too_little_are_closed_at_the_head_deadline() {
    let up = Recorder::start().await;
    let running = edge_with(vec![Route::app("app.test", "app", Some(up.addr))], short()).await;
    let partial_head = b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: ".as_slice();
    let partial_preface = b"PRI * HTTP/2.0\r\n".as_slice();
    for (what, addr, sent) in [
        ("nothing on HTTP", running.http, b"".as_slice()),
        (
            "nothing on HTTPS (no handshake)",
            running.https,
            b"".as_slice(),
        ),
        ("a partial head", running.http, partial_head),
        ("a partial HTTP/2 preface", running.http, partial_preface),
        (
            "half a TLS hello",
            running.https,
            b"\x16\x03\x01\x02\x00\x01".as_slice(),
        ),
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let after = closed_within(&mut stream, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{what}: still open after 5 s"));
        assert!(
            after >= Duration::from_millis(400) && after < Duration::from_millis(2500),
            "{what}: closed after {after:?}, the deadline is 600 ms"
        );
    }

    // Trickling a byte at a time does not move the deadline: it counts from accept.
    let mut stream = TcpStream::connect(running.http).await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for byte in b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaa" {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), trickle).await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "a trickled head is cut at the deadline, not after {:?}",
        started.elapsed()
    );
    assert!(up.seen().is_empty(), "nothing reached the app");
}

#[tokio::test]
async fn a_silent_socket_does_not_hold_up_a_stop() {
    // The real 30 s head deadline: the stop must not wait for it.
    let mut running = edge_with(Vec::new(), Limits::default()).await;
    let mut stream = TcpStream::connect(running.http).await.unwrap();
    stream.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    while running.edge.open_connections() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (stop, _) = oneshot::channel();
    drop(std::mem::replace(&mut running.stop, stop));
    assert!(
        closed_within(&mut stream, Duration::from_secs(2))
            .await
            .is_some(),
        "closed as the edge stops"
    );
}

#[tokio::test]
async fn idle_keep_alive_and_http2_connections_are_closed_after_the_idle_time() {
    let up = Recorder::start().await;
    let running = edge_with(vec![Route::app("app.test", "app", Some(up.addr))], short()).await;

    // HTTP/1.1 keep-alive: one answer, then silence.
    let mut stream = TcpStream::connect(running.http).await.unwrap();
    stream
        .write_all(b"GET /one HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    let after = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(after >= Duration::from_millis(400), "{after:?}");

    // HTTP/2 (h2c by preface): one stream, then nothing.
    let tcp = TcpStream::connect(running.http).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let request = Request::builder()
        .uri("http://app.test/two")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("an idle HTTP/2 connection is closed within 5 s")
        .unwrap()
        .ok();
    assert!(started.elapsed() >= Duration::from_millis(300));
    until_no_connections(&running.edge).await;
}

/// Waits (polling, at most 5 s) until the edge has given every place back.
async fn until_no_connections(edge: &Edge) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while edge.open_connections() > 0 {
        assert!(Instant::now() < deadline, "places were given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_request_under_way_is_not_cut_by_the_idle_time() {
    // An app that takes longer to answer than the idle time-out.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_req: Request<Incoming>| async {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"late"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let running = edge_with(vec![Route::app("slow.test", "slow", Some(addr))], short()).await;
    let answer = exchange(
        running.http,
        b"GET / HTTP/1.1\r\nHost: slow.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.ends_with("late"), "{answer}");
}

#[tokio::test]
async fn an_idle_websocket_tunnel_is_closed_and_a_busy_one_is_not() {
    // An app that accepts any upgrade and echoes bytes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
                    .await
                    .unwrap();
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let running = edge_with(vec![Route::app("ws.test", "ws", Some(addr))], short()).await;
    let mut stream = TcpStream::connect(running.http).await.unwrap();
    stream
        .write_all(b"GET /socket HTTP/1.1\r\nHost: ws.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = stream.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 101"));
    assert_eq!(
        running.edge.open_connections(),
        1,
        "a tunnel keeps its place"
    );

    // Busy for twice the idle time: it stays open.
    for _ in 0..6 {
        stream.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut echo))
            .await
            .expect("the tunnel is still open")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("an idle tunnel is closed");
    assert!(after >= Duration::from_millis(300), "{after:?}");
    until_no_connections(&running.edge).await;
}

/// A socket to `to` from the loopback address `from` (127.0.0.0/8 all
/// reaches this machine), so tests can play several clients.
async fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{from}:0").parse().unwrap())?;
    socket.connect(to).await
}

#[tokio::test]
async fn requests_are_served_while_a_thousand_idle_sockets_are_open() {
    // The test holds both ends of every socket.
    berth_edge::raise_open_file_limit();
    let up = Recorder::start().await;
    let limits = Limits {
        max_connections_per_client: 100,
        ..Limits::default()
    };
    let running = edge_with(vec![Route::app("app.test", "app", Some(up.addr))], limits).await;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(connect_from("127.0.0.2", running.http).await.unwrap());
    }
    // The client's first 100 stay (until the head deadline); the rest are closed at once.
    let mut closed = 0;
    for stream in &mut idle {
        if closed_within(stream, Duration::from_millis(20))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 900, "everything past the per-client cap is closed");
    assert_eq!(running.edge.open_connections(), 100);

    let started = Instant::now();
    for _ in 0..20 {
        let answer = exchange(
            running.http,
            b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(statuses(&answer), [200], "{answer}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connections_past_the_total_cap_are_closed_at_once() {
    let up = Recorder::start().await;
    let limits = Limits {
        max_connections: 20,
        ..Limits::default()
    };
    let running = edge_with(vec![Route::app("app.test", "app", Some(up.addr))], limits).await;
    let mut held = Vec::new();
    for i in 0..50 {
        // Each from its own address: the total cap, not the per-client one.
        held.push(
            connect_from(&format!("127.0.1.{}", i + 1), running.http)
                .await
                .unwrap(),
        );
    }
    let mut closed = 0;
    for stream in &mut held {
        if closed_within(stream, Duration::from_millis(20))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 30);
    assert_eq!(running.edge.open_connections(), 20);
    drop(held);
    until_no_connections(&running.edge).await;
    let answer = exchange(
        running.http,
        b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&answer), [200], "{answer}");
}

/// Each request smuggling attempt: the app sees one well-framed request at
/// most, never the smuggled one, and a request it does not see gets a 400.
#[tokio::test]
async fn request_smuggling_over_http1_never_reaches_the_app() {
    let cases: [(&str, &[u8]); 7] = [
        (
            "Content-Length with Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
        ),
        (
            "two different Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
        ),
        (
            "Transfer-Encoding: xchunked",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
        ),
        (
            "chunked, then another coding",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n",
        ),
        (
            "a chunk longer than its size",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcGET /smuggled HTTP/1.1\r\n\r\n0\r\n\r\n",
        ),
        (
            "a chunk size that is not hex",
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /smuggled HTTP/1.1\r\n0\r\n\r\n",
        ),
        (
            "HTTP/1.0 with Transfer-Encoding",
            b"POST / HTTP/1.0\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\nGET /smuggled HTTP/1.1\r\n\r\n\r\n0\r\n\r\n",
        ),
    ];
    for (what, bytes) in cases {
        let up = Recorder::start().await;
        let running = edge_with(vec![Route::app("app.test", "app", Some(up.addr))], short()).await;
        let answer = exchange(running.http, bytes).await;
        let statuses = statuses(&answer);
        let seen = up.seen();
        assert!(!up.raw().contains("smuggled"), "{what}: {}", up.raw());
        let complete: Vec<&Seen> = seen.iter().filter(|s| s.body.is_some()).collect();
        assert!(complete.len() <= 1, "{what}: {seen:?}");
        assert!(complete.iter().all(|s| s.well_framed()), "{what}: {seen:?}");
        match complete.first() {
            Some(request) => {
                assert_eq!(request.path, "/", "{what}");
                assert_eq!(statuses, [200], "{what}: {answer}");
            }
            None => assert_eq!(statuses, [400], "{what}: {answer} {seen:?}"),
        }
    }
}

#[tokio::test]
async fn an_http2_content_length_that_does_not_match_the_body_never_reaches_the_app() {
    for (declared, sent) in [(10usize, 5usize), (5, 10)] {
        let up = Recorder::start().await;
        let running = edge_with(vec![Route::app("app.test", "app", Some(up.addr))], short()).await;
        let tcp = TcpStream::connect(running.http).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let request = Request::post("http://app.test/upload")
            .header("content-length", declared)
            .body(Full::new(Bytes::from(vec![b'x'; sent])))
            .unwrap();
        let status = match sender.send_request(request).await {
            Ok(response) => Some(response.status().as_u16()),
            Err(_) => None, // the stream was reset: refused as well
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seen = up.seen();
        let complete: Vec<&Seen> = seen.iter().filter(|s| s.body.is_some()).collect();
        assert!(complete.is_empty(), "{declared}/{sent}: {seen:?}");
        assert!(
            status.is_none() || status == Some(400),
            "{declared}/{sent}: {status:?}"
        );
    }
}

fn header<'a>(seen: &'a Seen, name: &str) -> Vec<&'a str> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test]
async fn forwarded_headers_from_a_client_are_replaced_unless_it_is_a_trusted_proxy() {
    let spoofed = b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 10.0.0.1\r\nX-Real-IP: 10.0.0.2\r\nForwarded: for=10.0.0.3;proto=https\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Host: www.example.com\r\nConnection: close\r\n\r\n";
    let up = Recorder::start().await;
    let running = edge_with(vec![Route::app("app.test", "app", Some(up.addr))], short()).await;
    exchange(running.http, spoofed).await;
    let seen = up.seen().pop().expect("the app got the request");
    assert_eq!(header(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header(&seen, "x-real-ip"), ["127.0.0.1"]);
    assert_eq!(header(&seen, "x-forwarded-proto"), ["http"]);
    assert!(header(&seen, "forwarded").is_empty());
    assert!(header(&seen, "x-forwarded-port").is_empty());
    assert_eq!(header(&seen, "x-forwarded-host"), ["app.test"]);

    // Behind a trusted proxy (here: this machine), its claims stand.
    let up = Recorder::start().await;
    let limits = Limits {
        trusted_proxies: vec!["127.0.0.0/8".parse::<Cidr>().unwrap()],
        ..short()
    };
    let running = edge_with(vec![Route::app("app.test", "app", Some(up.addr))], limits).await;
    exchange(running.http, spoofed).await;
    let seen = up.seen().pop().expect("the app got the request");
    assert_eq!(header(&seen, "x-forwarded-for"), ["10.0.0.1, 127.0.0.1"]);
    assert_eq!(header(&seen, "x-real-ip"), ["10.0.0.1"]);
    assert_eq!(header(&seen, "x-forwarded-proto"), ["https"]);
    assert_eq!(header(&seen, "forwarded"), ["for=10.0.0.3;proto=https"]);
    assert_eq!(header(&seen, "x-forwarded-host"), ["www.example.com"]);
    // A trusted proxy that names no host: the Host it asked for.
    exchange(
        running.http,
        b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let seen = up.seen().pop().expect("the app got the request");
    assert_eq!(header(&seen, "x-forwarded-host"), ["app.test"]);
}

#[tokio::test]
async fn only_the_dashboard_gets_the_edges_secret() {
    let (dashboard, app) = (Recorder::start().await, Recorder::start().await);
    let running = edge_with(
        vec![
            Route::app("berth.test", "the berth dashboard", Some(dashboard.addr)),
            Route::app("app.test", "app", Some(app.addr)),
        ],
        short(),
    )
    .await;
    running.edge.set_dashboard(dashboard.addr);
    let secret = running.edge.dashboard_secret().to_owned();
    assert_eq!(secret.len(), 64);
    for host in ["berth.test", "app.test"] {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nX-Berth-Edge-Secret: guessed\r\nConnection: close\r\n\r\n"
        );
        exchange(running.http, request.as_bytes()).await;
    }
    let to_dashboard = dashboard.seen().pop().unwrap();
    assert_eq!(
        header(&to_dashboard, "x-berth-edge-secret"),
        [secret.as_str()]
    );
    let to_app = app.seen().pop().unwrap();
    assert!(header(&to_app, "x-berth-edge-secret").is_empty());
}

/// This machine's address on its main network interface, if it has one.
fn non_loopback_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // No packet is sent: connecting a UDP socket only picks the route.
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn localhost_hosts_answer_only_to_loopback_clients() {
    let Some(lan) = non_loopback_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let up = Recorder::start().await;
    let running = edge_on(
        "0.0.0.0",
        vec![
            Route::app("web.demo.localhost", "demo/web", Some(up.addr)),
            Route::app("web.example.test", "demo/web", Some(up.addr)),
        ],
        short(),
    )
    .await;
    let port = running.http.port();
    let get = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let local = SocketAddr::from(([127, 0, 0, 1], port));
    let remote = SocketAddr::new(lan, port);
    assert_eq!(
        statuses(&exchange(local, get("web.demo.localhost").as_bytes()).await),
        [200]
    );
    assert_eq!(
        statuses(&exchange(remote, get("web.demo.localhost").as_bytes()).await),
        [404]
    );
    assert_eq!(
        statuses(&exchange(remote, get("WEB.demo.localhost.:80").as_bytes()).await),
        [404]
    );
    assert_eq!(
        statuses(&exchange(remote, get("web.example.test").as_bytes()).await),
        [200]
    );
    assert_eq!(up.seen().len(), 2);
}

/// Like `exchange`, from the loopback address `from`.
async fn exchange_from(from: &str, addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = connect_from(from, addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_request_body_that_stalls_or_trickles_is_ended_at_its_own_deadline() {
    let up = Recorder::start().await;
    let limits = Limits {
        body_timeout: Duration::from_millis(1500),
        body_idle_timeout: Duration::from_millis(400),
        ..short()
    };
    let running = edge_with(vec![Route::app("app.test", "app", Some(up.addr))], limits).await;
    let head = b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\n";

    // A few bytes, then nothing: the gap deadline.
    let started = Instant::now();
    let mut stream = TcpStream::connect(running.http).await.unwrap();
    stream.write_all(head).await.unwrap();
    stream.write_all(b"abc").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(statuses(&answer), [408], "{answer}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(2),
        "{took:?}"
    );

    // A byte every 200 ms never leaves a long gap: the whole-body deadline.
    let started = Instant::now();
    let mut stream = TcpStream::connect(running.http).await.unwrap();
    stream.write_all(head).await.unwrap();
    let trickle = async {
        for _ in 0..100 {
            if stream.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), trickle).await;
    let took = started.elapsed();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(statuses(&answer), [408], "{answer}");
    assert!(took < Duration::from_millis(3000), "{took:?}");
    assert!(
        up.seen().iter().all(|s| s.body.is_none()),
        "no body reached the app whole: {:?}",
        up.seen()
    );

    // A body sent at once is not affected.
    let answer = exchange(
        running.http,
        b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(statuses(&answer), [200], "{answer}");
}

#[tokio::test]
async fn a_client_opening_connections_faster_than_its_rate_is_refused_and_others_are_not() {
    let up = Recorder::start().await;
    let limits = Limits {
        new_connections_per_sec: 1,
        new_connections_burst: 10,
        ..short()
    };
    let running = edge_with(vec![Route::app("app.test", "app", Some(up.addr))], limits).await;
    // The burst is let in (and held open), the next ones are closed at once.
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(connect_from("127.0.0.3", running.http).await.unwrap());
    }
    for stream in &mut held {
        assert_eq!(
            closed_within(stream, Duration::from_millis(20)).await,
            None,
            "a connection within the burst is kept"
        );
    }
    let mut refused = 0;
    for _ in 0..5 {
        let mut stream = connect_from("127.0.0.3", running.http).await.unwrap();
        if closed_within(&mut stream, Duration::from_millis(200))
            .await
            .is_some()
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 5, "past the burst, connections are refused");
    // Another client is not affected.
    let request = b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
    let answer = exchange_from("127.0.0.4", running.http, request).await;
    assert_eq!(statuses(&answer), [200], "{answer}");
    // And the allowance refills (one a second here).
    drop(held);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = exchange_from("127.0.0.3", running.http, request).await;
    assert_eq!(statuses(&answer), [200], "{answer}");
}
