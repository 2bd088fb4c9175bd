//! The edge against real upstreams on 127.0.0.1: routing, swaps under load,
//! static sites, WebSockets, streaming, error pages and forwarded headers.
//! Every server here is started by the test and stops with it.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_edge::{Edge, Limits, Route, Target};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// A running edge on 127.0.0.1 with its own shutdown.
struct TestEdge {
    edge: Arc<Edge>,
    http: SocketAddr,
    https: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl TestEdge {
    async fn start(routes: Vec<Route>) -> TestEdge {
        Self::start_with(routes, Limits::default()).await
    }

    async fn start_with(routes: Vec<Route>, limits: Limits) -> TestEdge {
        let serving = common::serve_edge("127.0.0.1", routes, limits).await;
        TestEdge {
            edge: serving.edge,
            http: serving.http,
            https: serving.https,
            stop: Some(serving.stop),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    async fn get(&self, host: &str, path: &str) -> reqwest::Response {
        client()
            .get(self.url(path))
            .header("host", host)
            .send()
            .await
            .expect("the edge answers")
    }
}

impl Drop for TestEdge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn app(host: &str, name: &str, upstream: SocketAddr) -> Route {
    Route::app(host, name, Some(upstream))
}

fn at(prefix: &str, strip: bool, route: Route) -> Route {
    Route {
        path_prefix: prefix.to_owned(),
        strip_prefix: strip,
        ..route
    }
}

type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A tiny HTTP upstream: answers `name=<name> path=<path>` plus the
/// forwarded headers it saw; `/sse` streams two events, the second only
/// after the test says so; `/slow` answers after 100 ms.
struct Upstream {
    addr: SocketAddr,
    second_event: mpsc::UnboundedSender<()>,
    /// Requests it has received.
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn upstream(name: &'static str) -> Upstream {
    upstream_with(name, true).await
}

/// An upstream that closes each connection after one answer (no keep-alive).
async fn closing_upstream(name: &'static str) -> Upstream {
    upstream_with(name, false).await
}

async fn upstream_with(name: &'static str, keep_alive: bool) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel::<()>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let rx = rx.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let rx = rx.clone();
                    counted.fetch_add(1, Ordering::SeqCst);
                    async move { Ok::<_, Infallible>(answer(name, req, rx).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        second_event: tx,
        hits,
    }
}

async fn answer(
    name: &str,
    req: Request<Incoming>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>>,
) -> Response<TestBody> {
    if req.uri().path() == "/sse" {
        let stream = futures_util::stream::unfold(0, move |step| {
            let rx = rx.clone();
            async move {
                match step {
                    0 => Some((Ok(Frame::data(Bytes::from("data: one\n\n"))), 1)),
                    1 => {
                        rx.lock().await.recv().await;
                        Some((Ok(Frame::data(Bytes::from("data: two\n\n"))), 2))
                    }
                    _ => None,
                }
            }
        });
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap();
    }
    if req.uri().path() == "/slow" {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let text = format!(
        "name={name} path={} host={} xff={} proto={} xhost={}",
        req.uri().path_and_query().map_or("/", |p| p.as_str()),
        header("host"),
        header("x-forwarded-for"),
        header("x-forwarded-proto"),
        header("x-forwarded-host"),
    );
    Response::new(BodyExt::boxed(Full::new(Bytes::from(text))))
}

#[tokio::test]
async fn an_exact_host_beats_a_wildcard_and_the_longest_prefix_wins() {
    let (a, b, c) = (
        upstream("a").await,
        upstream("b").await,
        upstream("c").await,
    );
    let edge = TestEdge::start(vec![
        app("*.example.test", "wild", a.addr),
        app("shop.example.test", "shop", b.addr),
        at("/api", false, app("shop.example.test", "api", c.addr)),
    ])
    .await;

    let body = |r: reqwest::Response| async { r.text().await.unwrap() };
    assert!(
        body(edge.get("shop.example.test", "/").await)
            .await
            .starts_with("name=b ")
    );
    assert!(
        body(edge.get("SHOP.example.test:80", "/api/v1").await)
            .await
            .starts_with("name=c ")
    );
    assert!(
        body(edge.get("shop.example.test", "/apiary").await)
            .await
            .starts_with("name=b ")
    );
    assert!(
        body(edge.get("blog.example.test", "/").await)
            .await
            .starts_with("name=a ")
    );

    let unknown = edge.get("nobody.test", "/").await;
    assert_eq!(unknown.status(), 404);
    let page = unknown.text().await.unwrap();
    assert!(page.contains("No site"), "{page}");
    for name in ["wild", "shop", "api", "name=a", "name=b"] {
        assert!(!page.contains(name), "the 404 page names nothing: {page}");
    }
}

#[tokio::test]
async fn forwarded_headers_are_set_and_a_stripped_prefix_is_removed() {
    let up = upstream("app").await;
    let edge = TestEdge::start(vec![at("/blog", true, app("site.test", "blog", up.addr))]).await;
    let text = client()
        .get(edge.url("/blog/post?x=1"))
        .header("host", "site.test")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("path=/post?x=1"), "{text}");
    assert!(text.contains("host=site.test"), "{text}");
    // The client's own X-Forwarded-For is replaced: it is the first hop.
    assert!(text.contains("xff=127.0.0.1 "), "{text}");
    assert!(text.contains("proto=http"), "{text}");
    assert!(text.contains("xhost=site.test"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_swap_under_load_loses_no_request() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let edge = TestEdge::start(vec![app("load.test", "a", a.addr)]).await;
    // How many swaps are done: after an odd number the route is b, else a.
    // `begun` counts a swap before its table is stored, `swaps` after: a
    // request that saw `swaps` at its start equal to `begun` at its end ran
    // wholly between two swaps (with one counter, a swap stored but not yet
    // counted when a busy machine parks the swapping thread would look like
    // no swap at all).
    let swaps = Arc::new(AtomicUsize::new(0));
    let begun = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(20);

    let mut workers = Vec::new();
    for _ in 0..8 {
        let (url, swaps, begun, done) = (edge.url("/"), swaps.clone(), begun.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let client = client();
            // (swaps done before the request, swaps begun by its end, who answered or what went wrong)
            let mut seen: Vec<(usize, usize, Result<char, String>)> = Vec::new();
            while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                let before = swaps.load(Ordering::SeqCst);
                let answer = match client.get(&url).header("host", "load.test").send().await {
                    Ok(r) if r.status() == 200 => match r.text().await {
                        Ok(body) if body.starts_with("name=a ") => Ok('a'),
                        Ok(body) if body.starts_with("name=b ") => Ok('b'),
                        Ok(body) => Err(format!("unexpected body {body:?}")),
                        Err(err) => Err(format!("body: {err}")),
                    },
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(err) => Err(format!("request: {err}")),
                };
                seen.push((before, begun.load(Ordering::SeqCst), answer));
            }
            seen
        }));
    }
    // Let the load start before swapping.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..200 {
        let to = if i % 2 == 0 { b.addr } else { a.addr };
        begun.fetch_add(1, Ordering::SeqCst);
        edge.edge.set_routes(vec![app("load.test", "x", to)]);
        swaps.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    done.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for worker in workers {
        seen.extend(worker.await.unwrap());
    }

    let failures: Vec<_> = seen.iter().filter(|(_, _, r)| r.is_err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        failures.len(),
        seen.len(),
        &failures[..failures.len().min(5)]
    );
    // A request sent and answered between two swaps goes where the route
    // pointed: no kept connection or cached route outlives a swap.
    let route_after = |swaps: usize| if swaps % 2 == 1 { 'b' } else { 'a' };
    let misrouted: Vec<_> = seen
        .iter()
        .filter(|(before, after, r)| {
            before == after && *r.as_ref().unwrap() != route_after(*before)
        })
        .collect();
    assert!(
        misrouted.is_empty(),
        "{} requests went to the old upstream, e.g. {:?}",
        misrouted.len(),
        &misrouted[..misrouted.len().min(5)]
    );
    // The load really overlapped the swaps, and both routes served in between.
    let during: Vec<_> = seen
        .iter()
        .filter(|(before, after, _)| *before >= 1 && *after < 200)
        .collect();
    assert!(
        during.len() >= 100,
        "only {} requests during the swaps (of {})",
        during.len(),
        seen.len()
    );
    for who in ['a', 'b'] {
        assert!(
            during
                .iter()
                .any(|(before, after, r)| before == after && *r.as_ref().unwrap() == who),
            "{who} never served between two swaps"
        );
    }
}

/// Each client connection keeps an upstream connection of its own
/// (`proxy::Affinity`); when the app closes it, the next request opens another.
#[tokio::test]
async fn a_kept_alive_client_reaches_an_app_that_closes_each_connection() {
    let up = closing_upstream("closer").await;
    let edge = TestEdge::start(vec![app("closer.test", "closer", up.addr)]).await;
    let client = client();
    for i in 0..20 {
        let response = client
            .get(edge.url(&format!("/{i}")))
            .header("host", "closer.test")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {i}");
        let text = response.text().await.unwrap();
        assert!(
            text.starts_with(&format!("name=closer path=/{i} ")),
            "{text}"
        );
    }
}

/// HTTP/2 streams side by side on one client connection: while one holds
/// the kept upstream connection, the others go through the shared pool.
#[tokio::test]
async fn concurrent_http2_streams_on_one_connection_all_reach_the_app() {
    let up = upstream("app").await;
    let edge = TestEdge::start(vec![app("h2c.test", "app", up.addr)]).await;
    let tcp = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let streams = (0..10).map(|i| {
        let mut sender = sender.clone();
        async move {
            let request = Request::builder()
                .uri(format!("http://h2c.test/slow?{i}"))
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200, "stream {i}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8_lossy(&body).into_owned()
        }
    });
    let answers = futures_util::future::join_all(streams).await;
    for (i, text) in answers.iter().enumerate() {
        assert!(text.contains(&format!("path=/slow?{i} ")), "{text}");
    }
}

#[tokio::test]
async fn the_502_page_names_the_app_and_nothing_internal() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let edge = TestEdge::start(vec![
        app("down.test", "shop", closed),
        Route::app("stopped.test", "blog", None),
    ])
    .await;
    for host in ["down.test", "stopped.test"] {
        let response = edge.get(host, "/").await;
        assert_eq!(response.status(), 502, "{host}");
        let page = response.text().await.unwrap();
        let name = if host == "down.test" { "shop" } else { "blog" };
        assert!(page.contains(name), "{page}");
        for internal in ["127.0.0.1", &closed.port().to_string(), "refused", "error"] {
            assert!(!page.contains(internal), "{internal} leaks: {page}");
        }
    }
}

#[tokio::test]
async fn a_streamed_response_arrives_in_pieces() {
    let up = upstream("sse").await;
    let edge = TestEdge::start(vec![app("sse.test", "sse", up.addr)]).await;
    let response = edge.get("sse.test", "/sse").await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the first event arrives before the upstream sends the second")
        .unwrap()
        .unwrap();
    assert_eq!(first, "data: one\n\n");
    up.second_event.send(()).unwrap();
    let second = stream.next().await.unwrap().unwrap();
    assert_eq!(second, "data: two\n\n");
}

#[tokio::test]
async fn a_websocket_passes_through_the_edge() {
    // An echo server speaking WebSocket, as an app would.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            if message.is_text() {
                ws.send(message).await.unwrap();
            }
        }
    });
    let edge = TestEdge::start(vec![app("ws.test", "chat", addr)]).await;

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/socket", edge.http)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("host", "ws.test".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    ws.send("hello through berth".into()).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "hello through berth");
    ws.close(None).await.unwrap();
}

fn site() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("public");
    std::fs::create_dir_all(dir.join("posts")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>home</title>").unwrap();
    std::fs::write(dir.join("posts/index.html"), "<p>posts</p>").unwrap();
    std::fs::write(dir.join("style.css"), "body { color: red; }\n".repeat(40)).unwrap();
    std::fs::write(dir.join(".env"), "SECRET=1").unwrap();
    (tmp, dir)
}

fn static_route(host: &str, prefix: &str, dir: PathBuf, spa_fallback: bool) -> Route {
    Route {
        host: host.to_owned(),
        path_prefix: prefix.to_owned(),
        strip_prefix: true,
        target: Target::Static { dir, spa_fallback },
        redirect_https: true,
        hsts: false,
    }
}

#[tokio::test]
async fn a_static_site_under_a_prefix_has_types_validators_and_compression() {
    let (_tmp, dir) = site();
    let up = upstream("app").await;
    let edge = TestEdge::start(vec![
        app("site.test", "app", up.addr),
        static_route("site.test", "/blog", dir.clone(), false),
    ])
    .await;

    // The app keeps the rest of the host.
    assert!(
        edge.get("site.test", "/")
            .await
            .text()
            .await
            .unwrap()
            .starts_with("name=app ")
    );

    let redirect = edge.get("site.test", "/blog").await;
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/blog/");

    let index = edge.get("site.test", "/blog/").await;
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    assert!(index.headers().contains_key("last-modified"));
    assert!(index.text().await.unwrap().contains("<title>home</title>"));
    assert_eq!(
        edge.get("site.test", "/blog/posts/")
            .await
            .text()
            .await
            .unwrap(),
        "<p>posts</p>"
    );

    let css = edge.get("site.test", "/blog/style.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let etag = css.headers()["etag"].to_str().unwrap().to_owned();
    let plain = css.bytes().await.unwrap();
    let revalidated = client()
        .get(edge.url("/blog/style.css"))
        .header("host", "site.test")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    let gzipped = client()
        .get(edge.url("/blog/style.css"))
        .header("host", "site.test")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let compressed = gzipped.bytes().await.unwrap();
    assert!(compressed.len() < plain.len());
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain);

    let brotli = client()
        .get(edge.url("/blog/style.css"))
        .header("host", "site.test")
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(brotli.headers()["content-encoding"], "br");
    // The compressed variant's tag still validates the same file.
    let tag = brotli.headers()["etag"].to_str().unwrap().to_owned();
    let revalidated = client()
        .get(edge.url("/blog/style.css"))
        .header("host", "site.test")
        .header("accept-encoding", "br")
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    assert_eq!(edge.get("site.test", "/blog/.env").await.status(), 404);
    assert_eq!(edge.get("site.test", "/blog/nope").await.status(), 404);
}

#[tokio::test]
async fn a_single_page_app_gets_its_index_for_unknown_paths() {
    let (_tmp, dir) = site();
    let edge = TestEdge::start(vec![static_route("spa.test", "/", dir, true)]).await;
    let deep = edge.get("spa.test", "/users/42").await;
    assert_eq!(deep.status(), 200);
    assert!(deep.text().await.unwrap().contains("<title>home</title>"));
    // A missing asset stays a 404, so broken links show.
    assert_eq!(edge.get("spa.test", "/missing.js").await.status(), 404);
}

#[tokio::test]
async fn acme_http_challenges_are_answered_before_routing() {
    let edge = TestEdge::start(vec![]).await;
    edge.edge
        .challenges()
        .insert("tok-123", "tok-123.thumbprint");
    let response = edge
        .get("new.example.test", "/.well-known/acme-challenge/tok-123")
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "tok-123.thumbprint");
    let unknown = edge
        .get("new.example.test", "/.well-known/acme-challenge/other")
        .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn plain_http_redirects_to_https_once_a_certificate_exists() {
    let up = upstream("app").await;
    let edge = TestEdge::start(vec![
        app("secure.test", "app", up.addr),
        app("plain.test", "app", up.addr),
    ])
    .await;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["secure.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    edge.edge
        .certs()
        .install_pem(&cert.pem(), &key.serialize_pem())
        .unwrap();

    let redirect = edge.get("secure.test", "/a?b=1").await;
    assert_eq!(redirect.status(), 308);
    assert_eq!(
        redirect.headers()["location"],
        format!("https://secure.test:{}/a?b=1", edge.https.port())
    );
    // No certificate, no redirect; ACME challenges are never redirected.
    assert_eq!(edge.get("plain.test", "/").await.status(), 200);
    assert_eq!(
        edge.get("secure.test", "/.well-known/acme-challenge/x")
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_request_in_flight_to_a_replaced_upstream_finishes() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let edge = TestEdge::start(vec![app("drain.test", "a", a.addr)]).await;
    let response = edge.get("drain.test", "/sse").await;
    let mut stream = response.bytes_stream();
    assert_eq!(stream.next().await.unwrap().unwrap(), "data: one\n\n");

    edge.edge.set_routes(vec![app("drain.test", "b", b.addr)]);
    let text = edge.get("drain.test", "/").await.text().await.unwrap();
    assert!(text.starts_with("name=b "), "new requests go to b: {text}");

    // The stream that started on a is still counted, and keeps going to its end.
    assert_eq!(edge.edge.in_flight(a.addr), 1);
    assert!(
        !edge.edge.drain(a.addr, Duration::from_millis(50)).await,
        "not drained while the stream runs"
    );
    let drained = tokio::spawn({
        let edge = edge.edge.clone();
        async move { edge.drain(a.addr, Duration::from_secs(20)).await }
    });
    a.second_event.send(()).unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), "data: two\n\n");
    assert!(stream.next().await.is_none());
    assert!(drained.await.unwrap(), "drained once the stream ended");
    assert_eq!(edge.edge.in_flight(a.addr), 0);
}

/// A TLS client that trusts exactly `cert`, offering `alpn`.
fn tls_connector(cert: &rcgen::Certificate, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let mut config =
        rustls::ClientConfig::builder_with_provider(berth_edge::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn https_serves_the_same_routes_over_http1_and_h2_with_hsts() {
    let up = upstream("app").await;
    let edge = TestEdge::start(vec![Route {
        hsts: true,
        ..app("secure.test", "app", up.addr)
    }])
    .await;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["secure.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    edge.edge
        .certs()
        .install_pem(&cert.pem(), &key.serialize_pem())
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("secure.test").unwrap();

    // HTTP/1.1 over TLS.
    let tcp = tokio::net::TcpStream::connect(edge.https).await.unwrap();
    let tls = tls_connector(&cert, b"http/1.1")
        .connect(name.clone(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::builder()
        .uri("/x")
        .header("host", "secure.test")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("proto=https"), "{text}");
    assert!(text.contains("path=/x"), "{text}");

    // HTTP/2: the host comes as :authority and reaches the app as Host.
    let tcp = tokio::net::TcpStream::connect(edge.https).await.unwrap();
    let tls = tls_connector(&cert, b"h2")
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = Request::builder()
        .uri("https://secure.test/h2")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("host=secure.test"), "{text}");
    assert!(text.contains("path=/h2"), "{text}");
}

#[tokio::test]
async fn oversized_headers_and_bodies_are_refused_before_the_app() {
    let up = upstream("app").await;
    let limits = Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    };
    let edge = TestEdge::start_with(vec![app("limits.test", "app", up.addr)], limits).await;
    let big_header = "x".repeat(100 * 1024);
    let response = client()
        .get(edge.url("/"))
        .header("host", "limits.test")
        .header("x-big", &big_header)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    let response = client()
        .post(edge.url("/"))
        .header("host", "limits.test")
        .body(vec![b'a'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = client()
        .post(edge.url("/"))
        .header("host", "limits.test")
        .body(vec![b'a'; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Waits (polling, at most 10 s) until `n` requests are held at the edge.
async fn until_held(edge: &Edge, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while edge.held() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} requests held",
            edge.held()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An address nothing listens on: a stopped container's.
fn stopped_container() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A recreate deploy: while the old container is swapped for the new one,
/// requests wait at the edge, then all go to the new one.
#[tokio::test]
async fn held_requests_wait_for_the_release_and_go_to_the_new_upstream() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let edge = TestEdge::start(vec![app("hold.test", "web", a.addr)]).await;
    let hold = edge.edge.hold("web", Some(a.addr), Duration::from_secs(30));

    let requests: Vec<_> = (0..20)
        .map(|i| {
            let url = edge.url(&format!("/{i}"));
            tokio::spawn(async move {
                let response = client()
                    .get(url)
                    .header("host", "hold.test")
                    .send()
                    .await
                    .unwrap();
                (response.status(), response.text().await.unwrap())
            })
        })
        .collect();
    until_held(&edge.edge, 20).await;

    // The deploy publishes the new container, then releases.
    edge.edge.set_routes(vec![app("hold.test", "web", b.addr)]);
    hold.release();
    for (i, request) in requests.into_iter().enumerate() {
        let (status, text) = request.await.unwrap();
        assert_eq!(status, 200, "request {i}: {text}");
        assert!(text.starts_with(&format!("name=b path=/{i} ")), "{text}");
    }
    assert_eq!(a.hits(), 0, "nothing reached the old container");
    assert_eq!(b.hits(), 20);
    assert_eq!(edge.edge.held(), 0);
}

#[tokio::test]
async fn a_request_held_past_its_limit_gets_a_503_and_traffic_resumes_after_the_release() {
    let a = upstream("a").await;
    let edge = TestEdge::start(vec![app("late.test", "web", a.addr)]).await;
    let hold = edge
        .edge
        .hold("web", Some(a.addr), Duration::from_millis(300));

    let started = Instant::now();
    let response = edge.get("late.test", "/").await;
    let waited = started.elapsed();
    assert_eq!(response.status(), 503);
    assert!(waited >= Duration::from_millis(300), "waited {waited:?}");
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = response.text().await.unwrap();
    assert!(page.contains("web"), "the page names the app: {page}");
    assert!(!page.contains("127.0.0.1"), "{page}");
    assert_eq!(a.hits(), 0);
    assert_eq!(edge.edge.held(), 0, "a request that gave up is not counted");

    // Once the guard is gone, requests go to whatever the table says.
    drop(hold);
    let response = edge.get("late.test", "/after").await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .starts_with("name=a path=/after ")
    );
}

#[tokio::test]
async fn a_hold_on_one_app_does_not_delay_another() {
    let (a, c) = (upstream("a").await, upstream("c").await);
    let edge = TestEdge::start(vec![
        app("one.test", "one", a.addr),
        app("two.test", "two", c.addr),
        Route::app("three.test", "three", None),
    ])
    .await;
    let hold = edge.edge.hold("one", Some(a.addr), Duration::from_secs(60));
    let held = tokio::spawn({
        let url = edge.url("/");
        async move {
            let response = client()
                .get(url)
                .header("host", "one.test")
                .send()
                .await
                .unwrap();
            response.text().await.unwrap()
        }
    });
    until_held(&edge.edge, 1).await;

    // Another app answers at once, and a stopped app of another name gets its 502 at once.
    let started = Instant::now();
    let response = edge.get("two.test", "/").await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().starts_with("name=c "));
    assert_eq!(edge.get("three.test", "/").await.status(), 502);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(edge.edge.held(), 1, "only one.test's request waits");
    assert_eq!(a.hits(), 0);

    drop(hold);
    assert!(held.await.unwrap().starts_with("name=a "));
}

/// The deploy engine may publish the app without an upstream while the old
/// container is stopped: requests to it by then are held by the app's name.
#[tokio::test]
async fn a_held_app_without_an_upstream_waits_for_the_new_one() {
    let b = upstream("b").await;
    let old = stopped_container();
    let edge = TestEdge::start(vec![app("rec.test", "web", old)]).await;
    let hold = edge.edge.hold("web", Some(old), Duration::from_secs(30));
    let get = |path: &'static str| {
        let url = edge.url(path);
        tokio::spawn(async move {
            let response = client()
                .get(url)
                .header("host", "rec.test")
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        })
    };
    // One request routed to the old container, one after it left the table.
    let to_old = get("/old");
    until_held(&edge.edge, 1).await;
    edge.edge
        .set_routes(vec![Route::app("rec.test", "web", None)]);
    let to_none = get("/none");
    until_held(&edge.edge, 2).await;

    edge.edge.set_routes(vec![app("rec.test", "web", b.addr)]);
    drop(hold);
    for (request, path) in [(to_old, "/old"), (to_none, "/none")] {
        let (status, text) = request.await.unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        assert!(text.starts_with(&format!("name=b path={path} ")), "{text}");
    }
}

/// WebSocket upgrades and HTTP/2 streams wait the same way.
#[tokio::test]
async fn held_websockets_and_http2_streams_go_to_the_new_upstream() {
    let b = upstream("b").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let chat = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            if message.is_text() {
                ws.send(message).await.unwrap();
            }
        }
    });
    let (old_chat, old_web) = (stopped_container(), stopped_container());
    let edge = TestEdge::start(vec![
        app("ws.test", "chat", old_chat),
        app("h2c.test", "web", old_web),
    ])
    .await;
    let chat_hold = edge
        .edge
        .hold("chat", Some(old_chat), Duration::from_secs(30));
    let web_hold = edge
        .edge
        .hold("web", Some(old_web), Duration::from_secs(30));

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/socket", edge.http)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("host", "ws.test".parse().unwrap());
    let ws = tokio::spawn(tokio_tungstenite::connect_async(request));

    let tcp = tokio::net::TcpStream::connect(edge.http).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let stream = tokio::spawn(async move {
        let request = Request::builder()
            .uri("http://h2c.test/h2")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    });
    until_held(&edge.edge, 2).await;

    edge.edge.set_routes(vec![
        app("ws.test", "chat", chat),
        app("h2c.test", "web", b.addr),
    ]);
    chat_hold.release();
    web_hold.release();

    let (mut ws, response) = ws.await.unwrap().unwrap();
    assert_eq!(response.status(), 101);
    ws.send("held, then through".into()).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "held, then through");
    ws.close(None).await.unwrap();
    let text = stream.await.unwrap();
    assert!(text.starts_with("name=b path=/h2 "), "{text}");
}

/// What a freshly started app saw of its first connections: how many were
/// open when it sent its first answer, and the most open and unanswered at once.
#[derive(Default)]
struct Opening {
    accepted: AtomicUsize,
    unanswered: AtomicUsize,
    at_first_answer: AtomicUsize,
    peak: AtomicUsize,
}

/// Requests released from a hold all reach a container that has just
/// started. They open their connections to it a few at a time (a short
/// listen backlog drops the SYNs beyond it, which the kernel sends again only
/// after 1 s), and more at a time as answers come back.
#[tokio::test]
async fn released_requests_open_connections_to_the_new_upstream_a_few_at_a_time() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let new = listener.local_addr().unwrap();
    let opening = Arc::new(Opening::default());
    let seen = opening.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            seen.accepted.fetch_add(1, Ordering::SeqCst);
            let now = seen.unanswered.fetch_add(1, Ordering::SeqCst) + 1;
            seen.peak.fetch_max(now, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                // Each client sends one request: one answer per connection.
                let service = service_fn(move |_req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        // Long enough that a burst would all be open at once.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let accepted = seen.accepted.load(Ordering::SeqCst);
                        let _ = seen.at_first_answer.compare_exchange(
                            0,
                            accepted,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                        seen.unanswered.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("new"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let old = stopped_container();
    let edge = TestEdge::start(vec![app("ramp.test", "web", old)]).await;
    let hold = edge.edge.hold("web", Some(old), Duration::from_secs(30));

    // One client (and so one connection to the app) per request.
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let url = edge.url("/");
            tokio::spawn(async move {
                let response = client()
                    .get(url)
                    .header("host", "ramp.test")
                    .send()
                    .await
                    .unwrap();
                (response.status(), response.text().await.unwrap())
            })
        })
        .collect();
    until_held(&edge.edge, 20).await;
    edge.edge.set_routes(vec![app("ramp.test", "web", new)]);
    hold.release();
    for request in requests {
        let (status, text) = request.await.unwrap();
        assert_eq!(status, 200, "{text}");
        assert_eq!(text, "new");
    }

    assert_eq!(opening.accepted.load(Ordering::SeqCst), 20);
    let at_first_answer = opening.at_first_answer.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&at_first_answer),
        "{at_first_answer} connections were open before the app's first answer"
    );
    let peak = opening.peak.load(Ordering::SeqCst);
    assert!(
        peak > 4,
        "the pace grows as answers come back; at most {peak} connections opened at once"
    );

    // Requests that were not held are not paced: a burst opens at once.
    opening.peak.store(0, Ordering::SeqCst);
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let url = edge.url("/");
            tokio::spawn(async move {
                client()
                    .get(url)
                    .header("host", "ramp.test")
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for request in burst {
        assert_eq!(request.await.unwrap(), 200);
    }
    let peak = opening.peak.load(Ordering::SeqCst);
    assert!(peak > 4, "at most {peak} connections opened at once");
}

/// A released request whose answer takes long (a long poll) gives its place
/// up after a moment: it does not keep the rest of the released requests waiting.
#[tokio::test]
async fn a_released_long_poll_does_not_keep_the_others_waiting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let new = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    if req.uri().path() == "/poll" {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("new"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let old = stopped_container();
    let edge = TestEdge::start(vec![app("poll.test", "web", old)]).await;
    let hold = edge.edge.hold("web", Some(old), Duration::from_secs(30));
    let send = |path: &'static str| {
        let url = edge.url(path);
        tokio::spawn(async move {
            let response = client()
                .get(url)
                .header("host", "poll.test")
                .send()
                .await
                .unwrap();
            (response.status(), Instant::now())
        })
    };
    // Enough long polls to take every first place, held first.
    let polls: Vec<_> = (0..8).map(|_| send("/poll")).collect();
    until_held(&edge.edge, 8).await;
    let quick: Vec<_> = (0..8).map(|_| send("/")).collect();
    until_held(&edge.edge, 16).await;

    edge.edge.set_routes(vec![app("poll.test", "web", new)]);
    let released = Instant::now();
    hold.release();
    for request in quick {
        let (status, answered) = request.await.unwrap();
        assert_eq!(status, 200);
        let took = answered - released;
        assert!(
            took < Duration::from_secs(3),
            "answered {took:?} after the release"
        );
    }
    for request in polls {
        assert_eq!(request.await.unwrap().0, 200);
    }
}
