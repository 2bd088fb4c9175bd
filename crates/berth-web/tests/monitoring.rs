//! The Monitoring page and `/metrics` against the real engine and a real
//! SQLite file: a busybox container started here (labelled `berth.test`,
//! removed at the end) shows up in the table, on its own page with its
//! processes, and in the Prometheus text, which wants an API token.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use berth_core::{Password, Username};
use berth_deploy::Runtime;
use berth_docker::{ContainerSpec, DockerClient};
use berth_monitor::{Monitor, MonitorConfig};
use berth_store::{Store, passwords, sessions, users};
use berth_web::{AppState, router};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Removes the test's container even when an assertion fails.
struct Cleanup(DockerClient, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (docker, id) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(docker.remove_container(&id))
        })
        .join();
    }
}

async fn get(
    app: &axum::Router,
    uri: &str,
    header: Option<(&str, String)>,
) -> (StatusCode, String, String) {
    let mut request = Request::builder().uri(uri);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// Checks every line against the text format: comments are `# HELP` or
/// `# TYPE name counter|gauge`, samples `name{labels} value` with a number.
/// Returns the samples as (name with labels, value).
fn parse_exposition(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let kind = parts.next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "bad comment: {line}");
            if kind == "TYPE" {
                let t = comment.rsplit(' ').next().unwrap();
                assert!(t == "counter" || t == "gauge", "bad type: {line}");
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        samples.push((series.to_owned(), value));
    }
    samples
}

#[tokio::test]
async fn metrics_wants_a_token_and_the_monitoring_pages_show_a_real_container() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let docker = DockerClient::connect(None).unwrap();
    let name = format!("berth-test-web-monitor-{}", std::process::id());
    let spec = ContainerSpec {
        name: name.clone(),
        image: "berth-test/web:latest".to_owned(),
        cmd: Some(vec!["/busybox".into(), "sleep".into(), "3600".into()]),
        labels: BTreeMap::from([
            (
                "berth.test".to_owned(),
                format!("web-monitor-{}", std::process::id()),
            ),
            ("berth.managed".to_owned(), "true".to_owned()),
            ("berth.project".to_owned(), "shop".to_owned()),
            ("berth.resource".to_owned(), "api".to_owned()),
        ]),
        memory_bytes: Some(64 << 20),
        ..Default::default()
    };
    let id = docker.create_container(&spec).await.unwrap();
    let _cleanup = Cleanup(docker.clone(), id.clone());
    docker.start_container(&id).await.unwrap();

    let runtime = Runtime::new(store.clone(), docker.clone()).await.unwrap();
    let monitor = Monitor::new(docker.clone(), store.clone(), MonitorConfig::default());
    monitor.tick().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    monitor.tick().await.unwrap();
    let app = router(AppState::new(runtime.services(), None).with_monitor(monitor));

    // /metrics: refused without a token or with a wrong one, answered with one.
    let (status, _, _) = get(&app, "/metrics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get(
        &app,
        "/metrics",
        Some(("authorization", "Bearer berth_not-a-token".into())),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, token) = berth_store::api_tokens::create(&store, "prometheus", Default::default())
        .await
        .unwrap();
    let (status, content_type, text) = get(
        &app,
        "/metrics",
        Some(("authorization", format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let samples = parse_exposition(&text);
    let mine: Vec<&(String, f64)> = samples
        .iter()
        .filter(|(s, _)| s.contains(&format!("name=\"{name}\"")))
        .collect();
    let find = |metric: &str| {
        mine.iter()
            .find(|(s, _)| s.starts_with(&format!("{metric}{{")))
            .unwrap_or_else(|| panic!("no {metric} for {name} in\n{text}"))
            .1
    };
    assert!(find("container_memory_working_set_bytes") > 0.0);
    assert_eq!(find("container_spec_memory_limit_bytes"), (64 << 20) as f64);
    assert!(find("container_cpu_usage_seconds_total") >= 0.0);
    assert!(
        mine.iter()
            .all(|(s, _)| s.contains("berth_project=\"shop\""))
    );
    assert!(
        samples
            .iter()
            .any(|(s, v)| s == "machine_cpu_cores" && *v >= 1.0)
    );
    assert!(
        samples
            .iter()
            .any(|(s, _)| s.starts_with("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}"))
    );

    // The pages, for a logged-in admin.
    let hash = passwords::hash(&Password::parse_new("a long password").unwrap())
        .await
        .unwrap();
    let user = users::create(&store, &Username::parse("admin").unwrap(), &hash)
        .await
        .unwrap();
    let session = sessions::create(&store, user.id).await.unwrap();
    let cookie = || Some(("cookie", format!("berth_session={}", session.token)));
    let (status, _, html) = get(&app, "/monitoring", cookie()).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"server-cpu\""));
    assert!(
        html.contains("<svg class=\"chart\""),
        "the server's charts are drawn"
    );
    assert!(
        html.contains("shop / api"),
        "grouped by project and resource"
    );
    let at = html
        .find(&format!(">{name}</a>"))
        .expect("the container is in the table");
    let row = &html[at..at + html[at..].find("</tr>").unwrap()];
    // busybox is one program for every applet: `docker top` names it.
    assert!(row.contains("busybox"), "its process is named: {row}");
    assert!(row.contains("of 64 MiB"), "its memory limit shows: {row}");

    let (status, _, html) = get(
        &app,
        &format!("/monitoring/containers/{name}?range=24h"),
        cookie(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("<strong>busybox</strong>"),
        "the process table names it"
    );
    assert!(
        html.contains("<code>/busybox sleep 3600</code>"),
        "with its command line"
    );
    assert!(
        html.contains("<strong>24h</strong>"),
        "the range is the one asked for"
    );
    assert_eq!(html.matches("<figure class=\"chart\">").count(), 6);
    let (status, _, _) = get(&app, "/monitoring/containers/no-such-container", cookie()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
