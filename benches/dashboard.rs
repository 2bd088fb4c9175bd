//! Dashboard benchmark: berth's idle memory and the time to render the
//! dashboard and the app list with 1,000 apps in the database.
//!
//! `cargo bench --bench dashboard` seeds a fresh data dir through the store
//! (20 projects, 1,000 stopped apps), creates an admin with the CLI, starts
//! the real `berth serve` against the real Docker daemon, logs in through the
//! HTML form and times sequential keep-alive requests. It prints the figures
//! next to the targets (idle RSS < 30 MiB, p99 < 20 ms) and exits 0 whether or
//! not they are met: a benchmark reports, it does not judge. It exits non-zero
//! only on real errors (berth does not start, a page is not 200, a page does
//! not show the 1,000 apps).
//!
//! Without `--bench` (e.g. `cargo test --benches`) it runs a quick smoke pass
//! with a handful of requests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use berth_core::{AppName, AppStatus, DesiredState, ImageRef, NewApp, Port, ProjectName};
use berth_store::apps;
use berth_store::{Store, projects};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const PROJECTS: usize = 20;
const APPS: usize = 1_000;
const USERNAME: &str = "bench";
const PASSWORD: &str = "bench password 1234";
/// How long berth is left alone after start before its memory is read.
const SETTLE: Duration = Duration::from_secs(3);
/// berth reads the engine status from Docker at most this often (ENGINE_STATUS_TTL).
const ENGINE_STATUS_TTL: Duration = Duration::from_secs(3);
const TARGET_IDLE_RSS_MIB: f64 = 30.0;
const TARGET_P99_MS: f64 = 20.0;

/// Images the seeded apps use, round robin: pinned tags, a digest, and
/// unpinned ones (`latest` or no tag) that the app list flags.
const IMAGES: [(&str, u32); 10] = [
    ("nginx:1.27-alpine", 80),
    ("redis:7.2", 6379),
    ("postgres:16.4-alpine", 5432),
    ("ghcr.io/acme/api:v1.4.2", 8080),
    ("nginx", 80),
    ("traefik:latest", 8080),
    ("localhost:5000/team/worker:2024.06", 9000),
    ("grafana/grafana:latest", 3000),
    ("caddy:2", 80),
    (
        "redis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        6379,
    ),
];

struct Plan {
    full: bool,
    warmup: usize,
    samples: usize,
    cold_samples: usize,
}

fn main() -> ExitCode {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            full,
            warmup: 20,
            samples: 500,
            cold_samples: 5,
        }
    } else {
        Plan {
            full,
            warmup: 2,
            samples: 10,
            cold_samples: 1,
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("dashboard bench: cannot start tokio: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dashboard bench FAILED: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(plan: &Plan) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("temp dir")?;
    let data_dir = tmp.path().join("data");

    let started = Instant::now();
    let unpinned = seed(&data_dir).await?;
    println!(
        "seeded {APPS} apps ({unpinned} unpinned) in {PROJECTS} projects in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let query = time_list_all(&data_dir, plan).await?;
    create_admin(&data_dir)?;

    let started = Instant::now();
    let mut berth = Berth::start(&data_dir)?;
    let startup = started.elapsed();
    println!(
        "berth pid {} printed its address after {:.0} ms: {}",
        berth.pid(),
        ms(startup),
        berth.url
    );

    tokio::time::sleep(SETTLE).await;
    berth.ensure_running()?;
    let idle = ProcStatus::read(berth.pid())?;
    println!(
        "idle after {} s: VmRSS {:.1} MiB (anon {:.1}, file {:.1}), VmHWM {:.1} MiB, {} threads",
        SETTLE.as_secs(),
        mib(idle.kb("VmRSS")),
        mib(idle.kb("RssAnon")),
        mib(idle.kb("RssFile")),
        mib(idle.kb("VmHWM")),
        idle.kb("Threads"),
    );

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .context("http client")?;
    login(&http, &berth.url).await?;
    let after_login = ProcStatus::read(berth.pid())?;

    // The engine status is cached for 3 s, so a dashboard seen after a pause
    // waits for Docker (version, info, system df); time that path apart.
    let mut cold = Vec::new();
    for i in 0..plan.cold_samples {
        if i > 0 {
            tokio::time::sleep(ENGINE_STATUS_TTL + Duration::from_millis(200)).await;
        }
        let (elapsed, _) = fetch(&http, &berth.url, "/", check_dashboard).await?;
        cold.push(elapsed);
    }

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average before timing: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let dashboard = time_page(&http, &berth.url, "/", plan, check_dashboard).await?;
    berth.ensure_running()?;
    let after_dashboard = ProcStatus::read(berth.pid())?;
    let app_list = time_page(&http, &berth.url, "/apps", plan, |body| {
        check_app_list(body, unpinned)
    })
    .await?;
    berth.ensure_running()?;
    let after = ProcStatus::read(berth.pid())?;

    let status = berth.stop()?;
    ensure!(
        status.success(),
        "berth did not exit cleanly on SIGTERM: {status}"
    );

    print_report(
        plan,
        &query,
        &idle,
        &after_login,
        &after_dashboard,
        &after,
        &cold,
        &dashboard,
        &app_list,
    );
    Ok(())
}

/// Seeds the store directly: projects, then apps that are stopped so berth
/// does not launch 1,000 containers. Returns how many apps are unpinned.
async fn seed(data_dir: &Path) -> anyhow::Result<usize> {
    let store = Store::open(data_dir).await.context("open the store")?;
    let mut created = Vec::with_capacity(PROJECTS);
    for p in 0..PROJECTS {
        let name = ProjectName::parse(&format!("project-{p:02}"))?;
        projects::create(&store, &name)
            .await
            .with_context(|| format!("create project {name}"))?;
        created.push(name);
    }
    let mut unpinned = 0;
    for i in 0..APPS {
        let project = &created[i % PROJECTS];
        let (image, port) = IMAGES[i % IMAGES.len()];
        let new = NewApp {
            name: AppName::parse(&format!("app-{i:04}"))?,
            image: ImageRef::parse(image)?,
            container_port: Port::try_from(port)?,
            command: None,
            dangerous_mounts: false,
        };
        if !new.image.is_pinned() {
            unpinned += 1;
        }
        let app = apps::create(&store, project, &new)
            .await
            .with_context(|| format!("create app {}", new.name))?;
        apps::set_desired_state(&store, app.id, DesiredState::Stopped).await?;
        apps::set_status(&store, app.id, AppStatus::Stopped, None).await?;
    }
    let seeded = apps::list_all(&store).await?;
    ensure!(
        seeded.len() == APPS,
        "seeded {} apps, expected {APPS}",
        seeded.len()
    );
    store.close().await;
    Ok(unpinned)
}

/// Times the query both pages run, `apps::list_all` (1,000 rows, decoded),
/// in this process, to tell the store's share of a page from the rest.
async fn time_list_all(data_dir: &Path, plan: &Plan) -> anyhow::Result<Timing> {
    let store = Store::open(data_dir).await.context("open the store")?;
    for _ in 0..plan.warmup {
        apps::list_all(&store).await?;
    }
    let mut samples = Vec::with_capacity(plan.samples);
    for _ in 0..plan.samples {
        let started = Instant::now();
        let all = apps::list_all(&store).await?;
        samples.push(started.elapsed());
        ensure!(
            all.len() == APPS,
            "apps::list_all returned {} apps, expected {APPS}",
            all.len()
        );
    }
    store.close().await;
    samples.sort();
    Ok(Timing {
        path: "apps::list_all",
        samples,
        bytes: 0,
    })
}

fn create_admin(data_dir: &Path) -> anyhow::Result<()> {
    let mut child = Command::new(BERTH)
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "admin",
            "create",
            "--username",
            USERNAME,
            "--password-stdin",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run `berth admin create`")?;
    let mut stdin = child
        .stdin
        .take()
        .context("stdin of `berth admin create`")?;
    writeln!(stdin, "{PASSWORD}")?;
    drop(stdin);
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "`berth admin create` failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The running `berth serve`; stopped (and reaped) on drop, even on panic.
struct Berth {
    child: Option<Child>,
    url: String,
}

impl Berth {
    fn start(data_dir: &Path) -> anyhow::Result<Berth> {
        let mut child = Command::new(BERTH)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            // The edge is not measured here: free ports, never :80/:443.
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--https-listen",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("run `berth serve`")?;
        let stdout = child.stdout.take().context("stdout of `berth serve`")?;
        // From here on the guard owns the child, so an early return reaps it.
        let mut berth = Berth {
            child: Some(child),
            url: String::new(),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        // The `dashboard: ` line comes last.
        while berth.url.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("dashboard: ") {
                        berth.url = url.trim().to_owned();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("berth did not print its dashboard address within 60 s")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = berth.child.as_mut().map(Child::wait).transpose()?;
                    berth.child = None;
                    bail!("berth exited before printing its dashboard address ({status:?})");
                }
            }
        }
        // Keep draining stdout so berth never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Ok(berth)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        let child = self.child.as_mut().context("berth was already stopped")?;
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!("berth exited unexpectedly: {status}");
        }
        Ok(())
    }

    /// SIGTERM, then up to 20 s for a clean exit, then SIGKILL.
    fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("berth was already stopped")?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("berth did not stop within 20 s of SIGTERM; killed it");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// Fields of /proc/<pid>/status, in kB (or a count, for `Threads`).
struct ProcStatus(BTreeMap<String, u64>);

impl ProcStatus {
    fn read(pid: u32) -> anyhow::Result<ProcStatus> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("read /proc/{pid}/status"))?;
        let fields = text
            .lines()
            .filter_map(|line| {
                let (key, value) = line.split_once(':')?;
                let number = value.split_whitespace().next()?.parse().ok()?;
                Some((key.to_owned(), number))
            })
            .collect();
        Ok(ProcStatus(fields))
    }

    fn kb(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }
}

async fn login(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let response = http
        .get(format!("{url}/login"))
        .send()
        .await
        .context("GET /login")?;
    ensure!(
        response.status() == 200,
        "GET /login: {}",
        response.status()
    );
    let html = response.text().await?;
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .context("the login form has no csrf field")?
        + marker.len();
    let end = start + html[start..].find('"').context("unterminated csrf value")?;
    let csrf = &html[start..end];
    let response = http
        .post(format!("{url}/login"))
        .form(&[
            ("csrf", csrf),
            ("username", USERNAME),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .context("POST /login")?;
    ensure!(
        response.status() == 303,
        "POST /login: {} (expected 303)",
        response.status()
    );
    let session = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.starts_with("berth_session=")));
    ensure!(session, "POST /login set no berth_session cookie");
    Ok(())
}

/// One GET, timed from send to the last byte of the body, then checked.
async fn fetch(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    check: impl Fn(&str) -> anyhow::Result<()>,
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let response = http
        .get(format!("{url}{path}"))
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("GET {path}: body"))?;
    let elapsed = started.elapsed();
    ensure!(status == 200, "GET {path}: {status} (expected 200)");
    let html =
        std::str::from_utf8(&body).with_context(|| format!("GET {path}: body is not UTF-8"))?;
    check(html).with_context(|| format!("GET {path}"))?;
    Ok((elapsed, body.len()))
}

struct Timing {
    path: &'static str,
    samples: Vec<Duration>,
    bytes: usize,
}

async fn time_page(
    http: &reqwest::Client,
    url: &str,
    path: &'static str,
    plan: &Plan,
    check: impl Fn(&str) -> anyhow::Result<()>,
) -> anyhow::Result<Timing> {
    for _ in 0..plan.warmup {
        fetch(http, url, path, &check).await?;
    }
    let mut samples = Vec::with_capacity(plan.samples);
    let mut bytes = 0;
    for _ in 0..plan.samples {
        let (elapsed, len) = fetch(http, url, path, &check).await?;
        samples.push(elapsed);
        bytes = len;
    }
    samples.sort();
    Ok(Timing {
        path,
        samples,
        bytes,
    })
}

fn check_dashboard(html: &str) -> anyhow::Result<()> {
    let wanted = format!("All {APPS} apps");
    ensure!(
        html.contains(&wanted),
        "the dashboard does not say {wanted:?}"
    );
    let projects = html.matches("<li><a href=\"/projects/").count();
    ensure!(
        projects == PROJECTS,
        "the dashboard lists {projects} projects, expected {PROJECTS}"
    );
    Ok(())
}

fn check_app_list(html: &str, unpinned: usize) -> anyhow::Result<()> {
    let start = html
        .find("<tbody>")
        .context("the app list has no <tbody>")?;
    let end = start
        + html[start..]
            .find("</tbody>")
            .context("the app list has no </tbody>")?;
    let body = &html[start..end];
    let rows = body.matches("<tr>").count();
    let links = body.matches("<td><a href=\"/projects/").count();
    ensure!(
        rows == APPS && links == APPS,
        "the app list has {rows} rows and {links} app links, expected {APPS}"
    );
    let flagged = body.matches(">unpinned</span>").count();
    ensure!(
        flagged == unpinned,
        "the app list flags {flagged} apps as unpinned, expected {unpinned}"
    );
    Ok(())
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; every figure is printed"
)]
fn print_report(
    plan: &Plan,
    query: &Timing,
    idle: &ProcStatus,
    after_login: &ProcStatus,
    after_dashboard: &ProcStatus,
    after: &ProcStatus,
    cold: &[Duration],
    dashboard: &Timing,
    app_list: &Timing,
) {
    println!();
    println!(
        "berth dashboard benchmark: {APPS} apps in {PROJECTS} projects; {} sequential keep-alive GETs per page after {} warm-up",
        plan.samples, plan.warmup
    );
    if !plan.full {
        println!("(smoke pass without --bench: too few samples for the figures to mean anything)");
    }
    println!();
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "page", "median", "p90", "p99", "max", "size"
    );
    for t in [dashboard, app_list] {
        println!(
            "{:<24} {:>6.2} ms {:>6.2} ms {:>6.2} ms {:>6.2} ms {:>8.1} KiB",
            format!("GET {}", t.path),
            ms(percentile(&t.samples, 0.5)),
            ms(percentile(&t.samples, 0.9)),
            ms(percentile(&t.samples, 0.99)),
            ms(percentile(&t.samples, 1.0)),
            t.bytes as f64 / 1024.0
        );
    }
    println!(
        "of which the store: apps::list_all (1,000 rows, decoded) in-process, current-thread runtime: median {:.2} ms, p99 {:.2} ms",
        ms(percentile(&query.samples, 0.5)),
        ms(percentile(&query.samples, 0.99))
    );
    if !cold.is_empty() {
        let mut cold = cold.to_vec();
        cold.sort();
        println!(
            "GET / after a 3 s pause: median {:.2} ms, max {:.2} ms over {} views (engine status re-read from Docker)",
            ms(percentile(&cold, 0.5)),
            ms(percentile(&cold, 1.0)),
            cold.len()
        );
    }
    println!();
    println!(
        "memory: idle VmRSS {:.1} MiB (RssAnon {:.1}, RssFile {:.1}), {} threads; after login (argon2) VmRSS {:.1} MiB (peak {:.1}); after GET / VmRSS {:.1} MiB (peak {:.1}); after GET /apps VmRSS {:.1} MiB (RssAnon {:.1}), peak VmHWM {:.1} MiB, {} threads",
        mib(idle.kb("VmRSS")),
        mib(idle.kb("RssAnon")),
        mib(idle.kb("RssFile")),
        idle.kb("Threads"),
        mib(after_login.kb("VmRSS")),
        mib(after_login.kb("VmHWM")),
        mib(after_dashboard.kb("VmRSS")),
        mib(after_dashboard.kb("VmHWM")),
        mib(after.kb("VmRSS")),
        mib(after.kb("RssAnon")),
        mib(after.kb("VmHWM")),
        after.kb("Threads"),
    );
    println!();
    println!("summary (1 MiB = 2^20 bytes, as /proc counts):");
    let idle_rss = mib(idle.kb("VmRSS"));
    println!(
        "  idle RSS          {:>7.1} MiB  (target < {TARGET_IDLE_RSS_MIB} MiB)  {}",
        idle_rss,
        verdict(idle_rss < TARGET_IDLE_RSS_MIB)
    );
    for (label, t) in [("dashboard p99", dashboard), ("app list p99", app_list)] {
        let p99 = ms(percentile(&t.samples, 0.99));
        println!(
            "  {label:<17} {p99:>7.2} ms   (target < {TARGET_P99_MS} ms)   {}",
            verdict(p99 < TARGET_P99_MS)
        );
    }
    println!(
        "  RSS after load    {:>7.1} MiB  (peak {:.1} MiB; no target)",
        mib(after.kb("VmRSS")),
        mib(after.kb("VmHWM"))
    );
    let _ = std::io::stdout().flush();
}
