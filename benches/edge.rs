//! Edge benchmark: requests/s and latency through berth's edge against
//! Debian's nginx in front of the same upstream on the same machine.
//!
//! `cargo bench --bench edge` starts a tiny hyper upstream (its own one-thread
//! runtime), berth's edge in-process (its own two-thread runtime, as `berth
//! serve` has) and nginx with a generated config (upstream keep-alive, access
//! log off, two workers), then drives each with `wrk` over keep-alive
//! connections on 127.0.0.1: plain HTTP, then HTTPS with a self-signed
//! certificate made with rcgen. Setups take turns, three rounds of five
//! seconds each after a one-second warm-up, and the medians count. It prints
//! requests/s, p50 and p99 per setup and berth's figures as ratios to
//! nginx's, with the CPU time each proxy's own threads spent per request.
//! Goal: at least nginx's throughput, p99 within 1 ms of it. A benchmark
//! reports, it does not judge: it exits 0 either way, and non-zero only on
//! real errors.
//!
//! On plain HTTP it also measures "hyper alone": hyper's server and client
//! joined with nothing between them. That is the floor for any proxy built on
//! hyper, so the distance from it to berth is berth's own cost, and the
//! distance from it to nginx is hyper's and tokio's (docs/edge-performance.md).
//!
//! Needs `nginx` and `wrk` (`apt-get install -y nginx wrk`); without them it
//! says so and exits 0. Without `--bench` (e.g. `cargo test --benches`) it
//! makes one round of one second per setup.
//! `BERTH_BENCH_ONLY=http|https|berth-http` runs a part (e.g. under `perf`).
//! `BERTH_BENCH_THREAD_PER_CORE=1` serves the edge from two one-thread
//! runtimes sharing the sockets instead of berth's one two-worker runtime,
//! to measure what that design would gain (in CPU per request, nothing
//! measurable: see docs/edge-performance.md).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_edge::tls::{CertResolver, Http01Challenges};
use berth_edge::{Edge, Limits, Listeners, Route};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const BODY: &str =
    "hello from the upstream: a small JSON-sized answer of about a hundred bytes, like an API's.\n";

struct Plan {
    /// One round of wrk against one setup.
    duration: Duration,
    /// Rounds per setup. The machine's load drifts (other tenants, CPU
    /// boost), so setups take turns in rotating order and the median
    /// round counts, instead of one long run each that may catch a bad minute.
    rounds: usize,
    connections: u32,
}

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

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn run(plan: &Plan) -> anyhow::Result<()> {
    if !installed("wrk") || !installed("nginx") {
        println!(
            "edge bench skipped: it needs nginx and wrk (apt-get install -y nginx wrk) to compare against"
        );
        return Ok(());
    }
    let tmp = tempfile::tempdir().context("temp dir")?;

    // The upstream: one thread, so it cannot starve the proxies of CPU more than needed.
    let upstream_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("upstream")
        .enable_all()
        .build()?;
    let upstream = upstream_rt.block_on(start_upstream())?;

    // Self-signed certificate for `localhost`, for both proxies.
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.self_signed(&key)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    std::fs::write(tmp.path().join("cert.pem"), &cert_pem)?;
    std::fs::write(tmp.path().join("key.pem"), &key_pem)?;

    // berth's edge, in its own runtime with berth's two workers. With
    // BERTH_BENCH_THREAD_PER_CORE=1, two one-thread runtimes instead, each
    // with its own edge serving the same sockets (an experiment, not berth).
    let per_core = std::env::var_os("BERTH_BENCH_THREAD_PER_CORE").is_some();
    let http_std = std::net::TcpListener::bind("127.0.0.1:0")?;
    let https_std = std::net::TcpListener::bind("127.0.0.1:0")?;
    let (edge_http, edge_https) = (http_std.local_addr()?, https_std.local_addr()?);
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
        let (cert_pem, key_pem) = (cert_pem.clone(), key_pem.clone());
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

    let bare_hyper = start_bare_hyper(upstream)?;
    let nginx = Nginx::start(tmp.path(), upstream)?;
    let master = nginx.child.id();
    let nginx_threads = Threads {
        pids: std::iter::once(master).chain(children(master)).collect(),
        name_prefix: None,
    };
    let berth_threads = Threads {
        pids: vec![std::process::id()],
        name_prefix: Some("berth-edge"),
    };
    let bare_threads = Threads {
        pids: vec![std::process::id()],
        name_prefix: Some("bare-hyper"),
    };
    let upstream_threads = Threads {
        pids: vec![std::process::id()],
        name_prefix: Some("upstream"),
    };

    println!(
        "edge bench: wrk -t2 -c{} --latency, keep-alive, 127.0.0.1, {} byte answers; \
         {} rounds of {}s per setup in rotating order, medians shown",
        plan.connections,
        BODY.len(),
        plan.rounds,
        plan.duration.as_secs(),
    );
    // BERTH_BENCH_ONLY=http|https|berth-http runs a part, e.g. under a profiler.
    let only = std::env::var("BERTH_BENCH_ONLY").unwrap_or_default();
    let nginx_http = format!("http://127.0.0.1:{}/", nginx.http_port);
    let nginx_https = format!("https://localhost:{}/", nginx.https_port);
    let berth_https = format!("https://localhost:{}/", edge_https.port());
    let (berth_http, bare_http) = (
        format!("http://{edge_http}/"),
        format!("http://{bare_hyper}/"),
    );
    let upstream_url = format!("http://{upstream}/");
    let http = [
        ("berth  http ", berth_http.as_str(), &berth_threads),
        ("nginx  http ", nginx_http.as_str(), &nginx_threads),
        ("hyper alone ", bare_http.as_str(), &bare_threads),
    ];
    let https = [
        ("berth  https", berth_https.as_str(), &berth_threads),
        ("nginx  https", nginx_https.as_str(), &nginx_threads),
    ];
    if only == "berth-http" {
        let figures = rounds(plan, &http[..1])?;
        report(http[0].0, &figures[0], None);
    }
    if only.is_empty() {
        let direct = rounds(
            plan,
            &[("upstream", upstream_url.as_str(), &upstream_threads)],
        )?;
        report("upstream directly", &direct[0], None);
    }
    if only.is_empty() || only == "http" {
        let [berth, nginx, bare] = <[Figures; 3]>::try_from(rounds(plan, &http)?)
            .map_err(|_| anyhow::anyhow!("three setups measured"))?;
        report("nginx  http ", &nginx, None);
        report("berth  http ", &berth, Some(&nginx));
        report("hyper alone ", &bare, Some(&nginx));
    }
    if only.is_empty() || only == "https" {
        let [berth, nginx] = <[Figures; 2]>::try_from(rounds(plan, &https)?)
            .map_err(|_| anyhow::anyhow!("two setups measured"))?;
        report("nginx  https", &nginx, None);
        report("berth  https", &berth, Some(&nginx));
    }
    drop(nginx);
    Ok(())
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

struct Figures {
    requests: u64,
    /// CPU time the proxy used per request (its own threads only).
    cpu_us_per_request: f64,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn report(name: &str, f: &Figures, against: Option<&Figures>) {
    let mut line = format!(
        "{name}: {:>9.0} req/s  p50 {:>6.3} ms  p99 {:>6.3} ms  CPU {:>5.1} us/req",
        f.requests_per_sec, f.p50_ms, f.p99_ms, f.cpu_us_per_request
    );
    if f.errors > 0 {
        line.push_str(&format!("  ({} errors)", f.errors));
    }
    if let Some(n) = against {
        line.push_str(&format!(
            "  | vs nginx: throughput x{:.2}, p99 {:+.3} ms (goal: x1.00 or more, within +1 ms), CPU per request x{:.2}",
            f.requests_per_sec / n.requests_per_sec,
            f.p99_ms - n.p99_ms,
            f.cpu_us_per_request / n.cpu_us_per_request
        ));
    }
    println!("{line}");
}

/// Measures each setup `plan.rounds` times, taking turns in rotating order,
/// and gives each setup's median figures (each figure's own median).
fn rounds(plan: &Plan, setups: &[(&str, &str, &Threads)]) -> anyhow::Result<Vec<Figures>> {
    let mut runs: Vec<Vec<Figures>> = setups.iter().map(|_| Vec::new()).collect();
    for round in 0..plan.rounds {
        for i in 0..setups.len() {
            let at = (i + round) % setups.len();
            let (_, url, threads) = setups[at];
            runs[at].push(wrk(plan, url, threads)?);
        }
    }
    // Each round too: the spread between rounds says what a difference
    // between medians is worth on this machine.
    for ((name, _, _), figures) in setups.iter().zip(&runs) {
        let each = |f: fn(&Figures) -> f64, digits: usize| {
            figures
                .iter()
                .map(|r| format!("{:.digits$}", f(r)))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!(
            "  rounds {name}: {} req/s, CPU {} us/req",
            each(|r| r.requests_per_sec, 0),
            each(|r| r.cpu_us_per_request, 1)
        );
    }
    Ok(runs.iter().map(|r| median(r)).collect())
}

fn median(runs: &[Figures]) -> Figures {
    let mid = |f: fn(&Figures) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Figures {
        requests: runs.iter().map(|r| r.requests).sum(),
        cpu_us_per_request: mid(|r| r.cpu_us_per_request),
        requests_per_sec: mid(|r| r.requests_per_sec),
        p50_ms: mid(|r| r.p50_ms),
        p99_ms: mid(|r| r.p99_ms),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

/// Runs wrk against `url` and measures the CPU the proxy's threads (`proxy`) used meanwhile.
fn wrk(plan: &Plan, url: &str, proxy: &Threads) -> anyhow::Result<Figures> {
    // A short first round, not counted, so that connections and caches are
    // warm and the setup measured first is not the one that pays for it.
    let warm_up = Command::new("wrk")
        .args(["-t2", &format!("-c{}", plan.connections), "-d1s", url])
        .stdout(Stdio::null())
        .status()
        .context("cannot run wrk")?;
    if !warm_up.success() {
        bail!("wrk {url} failed to warm up");
    }
    let cpu_before = proxy.cpu_ns();
    let started = Instant::now();
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{}", plan.connections)])
        .arg(format!("-d{}s", plan.duration.as_secs()))
        .args(["--latency", "--timeout", "5s", url])
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut figures =
        parse_wrk(&text).with_context(|| format!("unexpected wrk output:\n{text}"))?;
    let cpu_ns = proxy.cpu_ns().saturating_sub(cpu_before);
    figures.cpu_us_per_request = cpu_ns as f64 / 1000.0 / figures.requests.max(1) as f64;
    if started.elapsed() > plan.duration * 3 {
        eprintln!(
            "warning: wrk took {:?} for a {:?} run",
            started.elapsed(),
            plan.duration
        );
    }
    Ok(figures)
}

fn parse_wrk(text: &str) -> Option<Figures> {
    let mut figures = Figures {
        requests: 0,
        cpu_us_per_request: 0.0,
        requests_per_sec: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    for line in text.lines().map(str::trim) {
        if let Some((n, _)) = line.split_once(" requests in ") {
            figures.requests = n.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            figures.requests_per_sec = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("50%") {
            figures.p50_ms = wrk_ms(v.trim())?;
        } else if let Some(v) = line.strip_prefix("99%") {
            figures.p99_ms = wrk_ms(v.trim())?;
        } else if line.starts_with("Non-2xx") || line.starts_with("Socket errors") {
            figures.errors += line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    (figures.requests_per_sec > 0.0).then_some(figures)
}

/// wrk prints `812.00us`, `1.23ms` or `1.05s`.
fn wrk_ms(value: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// The threads whose CPU time counts as a proxy's: berth's edge threads in
/// this process, or every thread of nginx's master and workers.
struct Threads {
    pids: Vec<u32>,
    /// Only threads whose name starts so (`comm`), or all.
    name_prefix: Option<&'static str>,
}

impl Threads {
    /// Nanoseconds on CPU so far, from `/proc/<pid>/task/<tid>/schedstat`.
    fn cpu_ns(&self) -> u64 {
        let mut total = 0;
        for pid in &self.pids {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let path = task.path();
                let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
                if self.name_prefix.is_some_and(|p| !name.starts_with(p)) {
                    continue;
                }
                let stat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
                total += stat
                    .split_whitespace()
                    .next()
                    .and_then(|ns| ns.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        total
    }
}

/// The pids whose parent is `parent` (nginx's workers).
fn children(parent: u32) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The fields after the `(comm)`: state, then ppid.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// nginx with a config of its own in a temp dir; stopped on drop.
struct Nginx {
    child: Child,
    http_port: u16,
    https_port: u16,
}

impl Nginx {
    fn start(dir: &Path, upstream: SocketAddr) -> anyhow::Result<Nginx> {
        let free = || -> anyhow::Result<u16> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port())
        };
        let (http_port, https_port) = (free()?, free()?);
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs"))?;
        let config = format!(
            r#"daemon off;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream app {{ server {upstream}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl http2;
        server_name localhost 127.0.0.1;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
"#,
            prefix = prefix.display(),
            dir = dir.display(),
        );
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, config)?;
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr"])
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        let nginx = Nginx {
            child,
            http_port,
            https_port,
        };
        // Poll until nginx accepts connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            if Instant::now() > deadline {
                bail!("nginx did not start listening within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT is nginx's graceful stop; the master takes its workers with it.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
