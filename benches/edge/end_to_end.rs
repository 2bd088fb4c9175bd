//! The end-to-end part (issue 14): the path a user's request takes. A real
//! `berth serve` (fresh data dir, the real Docker daemon, started as the
//! end-to-end tests start it) deploys an app from `berth-test/nginx` through
//! its API and routes `localhost` to it, with the bench's certificate
//! uploaded for HTTPS. The same container is then also put behind nginx and
//! HAProxy on the host (proxying to its address on the project network), and
//! driven directly as the ceiling. berth's CPU is the whole `berth serve`
//! process's (dashboard and deploy engine included, idle meanwhile).
//!
//! Everything berth creates carries the harness's `berth.test` label and is
//! removed when its `TestApp` drops; the host proxies stop on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::common::{self, TestApp};
use crate::host_proxies::HostProxy;
use crate::measure::{Cpu, Figures, Plan, Setup, compare, report, rounds};
use crate::{BODY, BenchCert, Competitors};

const IMAGE: &str = "berth-test/nginx";
const APP: &str = "upstream";
/// The host routed to the app: it resolves to 127.0.0.1 for wrk, which
/// then sends it as the TLS server name and `Host`.
const HOST: &str = "localhost";

/// The app berth deployed for the bench.
struct Deployed {
    /// Stops berth and removes the project's containers and network when dropped.
    berth: TestApp,
    /// The container's address on the project network.
    upstream: SocketAddr,
    container: String,
}

pub fn run(
    plan: &Plan,
    competitors: &Competitors,
    tls: &BenchCert,
    dir: &Path,
) -> anyhow::Result<()> {
    if !docker_image_exists(IMAGE) {
        println!(
            "end to end: skipped, it needs Docker and the {IMAGE} image: docker/test-images/build nginx"
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let deployed = runtime.block_on(deploy(tls))?;
    let published = common::docker_out(&["port", &deployed.container]);
    println!(
        "end to end: berth serve (pid {}) deployed {IMAGE} as container {} at {}; {}",
        deployed.berth.pid(),
        &deployed.container[..12],
        deployed.upstream,
        if published.is_empty() {
            "berth's edge connects to it on the project network (no published port)".to_owned()
        } else {
            format!("it publishes {published}: berth fell back to published ports")
        }
    );

    let nginx = competitors
        .nginx
        .then(|| HostProxy::nginx(&dir.join("e2e-nginx"), deployed.upstream, &tls.files))
        .transpose()?;
    let haproxy = competitors
        .haproxy
        .then(|| HostProxy::haproxy(dir, deployed.upstream, &tls.files))
        .transpose()?;
    let proxies: Vec<(&HostProxy, Cpu)> = [&nginx, &haproxy]
        .into_iter()
        .flatten()
        .map(|p| (p, Cpu::process_tree(p.pid())))
        .collect();
    let berth_cpu = Cpu::process_tree(deployed.berth.pid());
    let container_cpu = Cpu::process_tree(container_pid(&deployed.container)?);

    let setup = |name, url: String, cpu| Setup { name, url, cpu };
    let names: Vec<(String, String)> = proxies
        .iter()
        .map(|(p, _)| {
            (
                format!("{:<7} http ", p.name),
                format!("{:<7} https", p.name),
            )
        })
        .collect();
    let mut http = vec![setup(
        "berth   http ",
        format!("http://{HOST}:{}/", deployed.berth.edge_http_port()),
        &berth_cpu,
    )];
    let mut https = vec![setup(
        "berth   https",
        format!("https://{HOST}:{}/", deployed.berth.edge_https_port()),
        &berth_cpu,
    )];
    for ((proxy, cpu), (http_name, https_name)) in proxies.iter().zip(&names) {
        http.push(setup(
            http_name,
            format!("http://{HOST}:{}/", proxy.http_port),
            cpu,
        ));
        https.push(setup(
            https_name,
            format!("https://{HOST}:{}/", proxy.https_port),
            cpu,
        ));
    }
    // The ceiling: no proxy at all. Its CPU is the container's nginx.
    http.push(setup(
        "direct  http ",
        format!("http://{}/", deployed.upstream),
        &container_cpu,
    ));

    println!(
        "end to end: berth's edge, {} on the host, and wrk straight to the container (ceiling); \
         CPU is the proxy's whole process (for direct: the container's nginx)",
        if proxies.is_empty() {
            "no other proxy".to_owned()
        } else {
            proxies
                .iter()
                .map(|(p, _)| p.name)
                .collect::<Vec<_>>()
                .join(" and ")
        }
    );
    for (scheme, setups) in [("http", &http), ("https", &https)] {
        let figures = rounds(plan, setups)?;
        for (setup, f) in setups.iter().zip(&figures) {
            report(setup.name, f);
        }
        let others: Vec<(&str, &Figures)> = proxies
            .iter()
            .map(|(p, _)| p.name)
            .zip(&figures[1..])
            .collect();
        goals(scheme, &figures[0], &others);
    }
    drop((nginx, haproxy));
    drop(deployed);
    Ok(())
}

/// berth's figures against each other proxy's, and whether issue 14's goals
/// are met: throughput at least theirs, p99 within 1 ms of the better one,
/// no failed request.
fn goals(scheme: &str, berth: &Figures, others: &[(&str, &Figures)]) {
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    for (name, f) in others {
        compare(&format!("berth   {scheme:<5}"), berth, name, f);
    }
    if let Some((best, f)) = others
        .iter()
        .min_by(|a, b| a.1.p99_ms.total_cmp(&b.1.p99_ms))
    {
        let names: Vec<&str> = others.iter().map(|(n, _)| *n).collect();
        let slowest = others
            .iter()
            .map(|(_, f)| f.requests_per_sec)
            .fold(0.0, f64::max);
        println!(
            "  goal {scheme}: throughput at least x1.00 of {}: {}",
            names.join(" and "),
            met(berth.requests_per_sec >= slowest)
        );
        println!(
            "  goal {scheme}: p99 within 1 ms of the better ({best}, {:.3} ms): {}",
            f.p99_ms,
            met(berth.p99_ms <= f.p99_ms + 1.0)
        );
    } else {
        println!("  goal {scheme}: no other proxy measured, nothing to compare with");
    }
    println!(
        "  goal {scheme}: 0 failed requests through berth: {} ({})",
        met(berth.errors == 0),
        berth.errors
    );
}

/// Starts berth, creates the project and the app through the API, routes
/// [`HOST`] to it with the bench's certificate, and waits until the edge
/// answers with the app's body.
async fn deploy(tls: &BenchCert) -> anyhow::Result<Deployed> {
    let mut berth = TestApp::spawn().await;
    berth.setup_admin().await;
    let api = common::Api::new(&berth);
    let project = berth.unique_project("edgebench");
    let call = async |path: String, body: Value, want: u16| -> anyhow::Result<Value> {
        let (status, answer) = api.post(&berth, &path, body).await;
        if status != want {
            bail!("POST {path} answered {status}: {answer}");
        }
        Ok(answer)
    };
    call("/api/v1/projects".into(), json!({ "name": project }), 201).await?;
    call(
        format!("/api/v1/projects/{project}/apps"),
        json!({ "name": APP, "image": IMAGE, "port": 80 }),
        202,
    )
    .await?;
    let deployment = api.wait_for_deployment(&berth, &project, APP, 1).await;
    if deployment["status"] != "succeeded" {
        bail!(
            "deploying {IMAGE} failed: {}",
            common::deployment_log(&deployment)
        );
    }
    call(
        "/api/v1/certificates".into(),
        json!({ "domain": HOST, "certificate": tls.cert_pem, "key": tls.key_pem }),
        201,
    )
    .await?;
    call(
        format!("/api/v1/projects/{project}/apps/{APP}/domains"),
        json!({ "host": HOST, "tls_mode": "uploaded", "redirect_https": false }),
        201,
    )
    .await?;
    let app = api
        .get(&berth, &format!("/api/v1/projects/{project}/apps/{APP}"))
        .await;
    let upstream = app["local_address"]
        .as_str()
        .and_then(|a| a.strip_prefix("http://"))
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .with_context(|| format!("the app has no address on its network: {app}"))?;
    let container = app["container_id"]
        .as_str()
        .with_context(|| format!("the app has no container: {app}"))?
        .to_owned();

    // The route is in the edge's table once the domain is saved; poll until it answers.
    let client = berth.edge_client(&[HOST]);
    let url = berth.edge_url(HOST, "/");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = match client.get(&url).send().await {
            Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        if answer == BODY {
            break;
        }
        if Instant::now() > deadline {
            bail!("berth's edge did not answer {url} with the app's body within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Deployed {
        berth,
        upstream,
        container,
    })
}

fn docker_image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The host pid of the container's first process (nginx's master).
fn container_pid(container: &str) -> anyhow::Result<u32> {
    common::docker_out(&["inspect", "-f", "{{.State.Pid}}", container])
        .parse()
        .context("the container's pid")
}
