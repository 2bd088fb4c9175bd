//! Edge benchmark: requests/s, latency and CPU per request through berth's
//! edge against Debian's nginx and HAProxy in front of the same upstream on
//! the same machine.
//!
//! `cargo bench --bench edge` has two parts, both driven by `wrk -t2 -c64`
//! over keep-alive connections on 127.0.0.1, plain HTTP and HTTPS (a
//! self-signed certificate for `localhost` made with rcgen, the same for
//! every proxy). Setups take turns, three rounds of five seconds each after
//! a one-second warm-up, in rotating order (A B C, B C A, C A B), and the
//! medians count. Each line shows requests/s, p50, p99, failed requests and
//! the CPU time the proxy itself used per request. A benchmark reports, it
//! does not judge: it exits 0 either way, and non-zero only on real errors.
//!
//! **In-process** (issue 3): a tiny hyper upstream (its own one-thread
//! runtime), berth's edge in-process (its own two-thread runtime, as `berth
//! serve` has), nginx with a generated config, and "hyper alone": hyper's
//! server and client joined with nothing between them, the floor for any
//! proxy built on hyper. The distance from it to berth is berth's own cost
//! (docs/edge-performance.md).
//!
//! **End to end** (issue 14, [`end_to_end`]): the path users take. One
//! container from `berth-test/nginx` (docker/test-images/nginx: Debian's
//! nginx answering from memory) deployed by a real `berth serve` (fresh data
//! dir, as the end-to-end tests start it), reached through berth's edge, and
//! the same container behind nginx and HAProxy on the host, plus wrk straight
//! to the container as the ceiling. It prints berth's ratios to nginx and
//! HAProxy and whether each goal is met.
//!
//! Needs `wrk`; `nginx` and `haproxy` are the competitors, skipped with a
//! message when missing (`apt-get install -y wrk nginx-light haproxy`). The
//! end-to-end part needs Docker and the `berth-test/nginx` image
//! (`docker/test-images/build nginx`) and says so when either is missing.
//! Without `--bench` (e.g. `cargo test --benches`) it makes one round of one
//! second per setup.
//! `BERTH_BENCH_ONLY=http|https|berth-http|e2e` runs a part (e.g. under a
//! profiler); `BERTH_BENCH_ONLY=serve` starts the in-process setups, prints
//! their URLs and serves until stdin closes, for a load driven from outside.
//! `BERTH_BENCH_THREAD_PER_CORE=1` serves the in-process edge from two
//! one-thread runtimes sharing the sockets instead of berth's one two-worker
//! runtime, to measure what that design would gain (in CPU per request,
//! nothing measurable: see docs/edge-performance.md).

#[path = "../tests/common/mod.rs"]
mod common;
// The bench's own modules live in benches/edge/, where cargo does not take
// them for benches of their own.
#[path = "edge/end_to_end.rs"]
mod end_to_end;
#[path = "edge/host_proxies.rs"]
mod host_proxies;
#[path = "edge/measure.rs"]
mod measure;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_edge::tls::{CertResolver, Http01Challenges};
use berth_edge::{Edge, Limits, Listeners, Route};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use host_proxies::{CertFiles, HostProxy, installed};
use measure::{Cpu, Plan, Setup, compare, report, rounds};

const BODY: &str =
    "hello from the upstream: a small JSON-sized answer of about a hundred bytes, like an API's.\n";

/// What to install for the whole bench.
const INSTALL: &str = "apt-get install -y wrk nginx-light haproxy";

fn main() -> ExitCode {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = Plan {
        duration: Duration::from_secs(if full { 5 } else { 1 }),
        rounds: if full { 3 } else { 1 },
        connections: 64,
    };
    match run(&plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("edge bench FAILED: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The proxies berth is compared with that are installed here.
pub struct Competitors {
    pub nginx: bool,
    pub haproxy: bool,
}

/// The bench's certificate for `localhost`: PEM text and files.
pub struct BenchCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub files: CertFiles,
}

fn run(plan: &Plan) -> anyhow::Result<()> {
    if !installed("wrk") {
        println!("edge bench skipped: it drives every setup with wrk ({INSTALL})");
        return Ok(());
    }
    let competitors = Competitors {
        nginx: installed("nginx"),
        haproxy: installed("haproxy"),
    };
    for (name, there) in [
        ("nginx", competitors.nginx),
        ("haproxy", competitors.haproxy),
    ] {
        if !there {
            println!("edge bench: {name} is not installed, its setups are skipped ({INSTALL})");
        }
    }
    let tmp = tempfile::tempdir().context("temp dir")?;
    // Self-signed certificate for `localhost`, which resolves to 127.0.0.1
    // for wrk, so that it sends `localhost` as the TLS server name.
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.self_signed(&key)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    let tls = BenchCert {
        files: CertFiles::write(tmp.path(), &cert_pem, &key_pem)?,
        cert_pem,
        key_pem,
    };

    println!(
        "edge bench: wrk -t2 -c{} --latency, keep-alive, 127.0.0.1, {} byte answers; \
         {} rounds of {}s per setup in rotating order, medians shown",
        plan.connections,
        BODY.len(),
        plan.rounds,
        plan.duration.as_secs(),
    );
    // BERTH_BENCH_ONLY=http|https|berth-http|e2e|serve runs a part, e.g. under a profiler.
    let only = std::env::var("BERTH_BENCH_ONLY").unwrap_or_default();
    if only != "e2e" {
        in_process(plan, &competitors, &tls, tmp.path(), &only)?;
    }
    if only.is_empty() || only == "e2e" {
        end_to_end::run(plan, &competitors, &tls, tmp.path())?;
    }
    Ok(())
}

/// The in-process part: berth's edge, nginx and hyper alone in front of a
/// tiny hyper upstream in this process.
fn in_process(
    plan: &Plan,
    competitors: &Competitors,
    tls: &BenchCert,
    dir: &std::path::Path,
    only: &str,
) -> anyhow::Result<()> {
    // The upstream: one thread, so it cannot starve the proxies of CPU more than needed.
    let upstream_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("upstream")
        .enable_all()
        .build()?;
    let upstream = upstream_rt.block_on(start_upstream())?;
    let (edge_http, edge_https) = start_edge(upstream, tls)?;
    let bare_hyper = start_bare_hyper(upstream)?;
    let nginx = competitors
        .nginx
        .then(|| HostProxy::nginx(dir, upstream, &tls.files))
        .transpose()?;
    let nginx_cpu = nginx.as_ref().map(|n| Cpu::process_tree(n.pid()));
    let berth_cpu = Cpu::threads_named("berth-edge");
    let bare_cpu = Cpu::threads_named("bare-hyper");
    let upstream_cpu = Cpu::threads_named("upstream");

    println!(
        "in-process: berth's edge, nginx and hyper alone in front of a hyper upstream in this process"
    );
    let setup = |name, url: String, cpu| Setup { name, url, cpu };
    let mut http = vec![
        setup("berth  http ", format!("http://{edge_http}/"), &berth_cpu),
        setup("hyper alone ", format!("http://{bare_hyper}/"), &bare_cpu),
    ];
    let mut https = vec![setup(
        "berth  https",
        format!("https://localhost:{}/", edge_https.port()),
        &berth_cpu,
    )];
    if let (Some(nginx), Some(cpu)) = (&nginx, &nginx_cpu) {
        http.push(setup(
            "nginx  http ",
            format!("http://127.0.0.1:{}/", nginx.http_port),
            cpu,
        ));
        https.push(setup(
            "nginx  https",
            format!("https://localhost:{}/", nginx.https_port),
            cpu,
        ));
    }
    if only == "serve" {
        // For a profiler driven from outside (docs/edge-performance.md):
        // the addresses, then serve until stdin closes.
        println!("serve: berth http  http://{edge_http}/");
        println!("serve: hyper alone http://{bare_hyper}/");
        println!("serve: upstream    http://{upstream}/");
        std::io::copy(&mut std::io::stdin(), &mut std::io::sink())?;
        return Ok(());
    }
    if only == "berth-http" {
        let figures = rounds(plan, &http[..1])?;
        report(http[0].name, &figures[0]);
    }
    if only.is_empty() {
        let direct = rounds(
            plan,
            &[setup(
                "upstream",
                format!("http://{upstream}/"),
                &upstream_cpu,
            )],
        )?;
        report("upstream directly", &direct[0]);
    }
    if only.is_empty() || only == "http" {
        let figures = rounds(plan, &http)?;
        for (setup, f) in http.iter().zip(&figures) {
            report(setup.name, f);
        }
        compare("berth  http ", &figures[0], "hyper alone", &figures[1]);
        if let Some(nginx) = figures.get(2) {
            compare("berth  http ", &figures[0], "nginx", nginx);
            compare("hyper alone ", &figures[1], "nginx", nginx);
        }
    }
    if only.is_empty() || only == "https" {
        let figures = rounds(plan, &https)?;
        for (setup, f) in https.iter().zip(&figures) {
            report(setup.name, f);
        }
        if let Some(nginx) = figures.get(1) {
            compare("berth  https", &figures[0], "nginx", nginx);
        }
    }
    Ok(())
}

/// berth's edge in its own runtime with berth's two workers, routing
/// `127.0.0.1` and `localhost` to `upstream`; its HTTP and HTTPS addresses.
/// With BERTH_BENCH_THREAD_PER_CORE=1, two one-thread runtimes instead, each
/// with its own edge serving the same sockets (an experiment, not berth).
fn start_edge(upstream: SocketAddr, tls: &BenchCert) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let per_core = std::env::var_os("BERTH_BENCH_THREAD_PER_CORE").is_some();
    let http_std = std::net::TcpListener::bind("127.0.0.1:0")?;
    let https_std = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addrs = (http_std.local_addr()?, https_std.local_addr()?);
    let runtimes = if per_core { 2 } else { 1 };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for _ in 0..runtimes {
        let (http_std, https_std) = (http_std.try_clone()?, https_std.try_clone()?);
        let edge_rt = if per_core {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("berth-edge")
                .enable_all()
                .build()?
        };
        let (cert_pem, key_pem) = (tls.cert_pem.clone(), tls.key_pem.clone());
        let ready_tx = ready_tx.clone();
        std::thread::Builder::new()
            .name("berth-edge".into())
            .spawn(move || {
                edge_rt.block_on(async {
                    let setup = async {
                        let certs = Arc::new(CertResolver::new());
                        certs.install_pem(&cert_pem, &key_pem)?;
                        let edge =
                            Edge::new(certs, Arc::new(Http01Challenges::new()), Limits::default());
                        edge.set_routes([
                            Route::app("127.0.0.1", "bench", Some(upstream)),
                            Route::app("localhost", "bench", Some(upstream)),
                        ]);
                        let listeners = Listeners::from_std(http_std, https_std)?;
                        anyhow::Ok((edge, listeners))
                    };
                    match setup.await {
                        Ok((edge, listeners)) => {
                            let _ = ready_tx.send(Ok(()));
                            berth_edge::serve(edge, listeners, std::future::pending()).await;
                        }
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                        }
                    }
                })
            })?;
    }
    for _ in 0..runtimes {
        ready_rx.recv().context("an edge thread died")??;
    }
    Ok(addrs)
}

async fn start_upstream() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        BODY.as_bytes(),
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The floor under any hyper-based proxy: hyper's server and client joined
/// with nothing between them (no routing, no header rewriting, no limits),
/// one upstream connection per client connection, in a two-worker runtime
/// like berth's. What berth costs above this line is berth's own.
fn start_bare_hyper(upstream: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bare-hyper")
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("bare-hyper".into())
        .spawn(move || runtime.block_on(bare_hyper(listener, upstream)))?;
    Ok(addr)
}

async fn bare_hyper(listener: std::net::TcpListener, upstream: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let to_upstream = tokio::net::TcpStream::connect(upstream).await?;
            let _ = to_upstream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake::<
                _,
                hyper::body::Incoming,
            >(TokioIo::new(to_upstream))
            .await?;
            tokio::spawn(connection);
            // HTTP/1: one request at a time, so the lock is never contended.
            let sender = Arc::new(tokio::sync::Mutex::new(sender));
            let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let sender = sender.clone();
                async move {
                    *req.uri_mut() = hyper::Uri::from_static("/");
                    let mut sender = sender.lock().await;
                    sender.ready().await?;
                    sender.send_request(req).await
                }
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await?;
            anyhow::Ok(())
        });
    }
}
