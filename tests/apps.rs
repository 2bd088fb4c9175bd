//! Deploying an image from the dashboard against the real Docker daemon:
//! create, reach it on its published port, restart, stop, crash detection,
//! failed pulls, delete, and nothing left behind.

mod common;

use std::time::{Duration, Instant};

use common::{
    TestApp, app_address, docker_objects_of, docker_out, fetch_text, location, started_at,
};

/// Polls the app page until its logs element shows exactly `count` lines
/// ending in `response:404`; the logs' text.
async fn wait_for_logs_with_404s(app: &TestApp, project: &str, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let html = app.get_html(&format!("/projects/{project}/apps/web")).await;
        let logs = html
            .split_once("id=\"logs\"")
            .and_then(|(_, rest)| rest.split_once("</pre>"))
            .map(|(logs, _)| logs.to_owned())
            .expect("the app page has a logs element");
        let found = logs
            .lines()
            .filter(|l| l.trim_end().ends_with("response:404"))
            .count();
        assert!(found <= count, "more 404s than requests made: {logs}");
        if found == count {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "the app page's logs never showed {count} 404 answers: {logs}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_app_from_an_image_runs_restarts_and_is_deleted_without_leftovers() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("web").await;

    let response = app
        .create_app(&project, "web", "berth-test/web", "8080", "")
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("/projects/{project}/apps/web"));

    let html = app.wait_for_status(&project, "web", "running").await;
    let address = app_address(&html).expect("a running app shows its address");
    assert!(
        address.starts_with("http://") && !address.contains("127.0.0.1"),
        "its container's address on the project network: {address}"
    );
    assert!(fetch_text(&address).await.contains("berth-test-web"));

    // The container carries berth's labels, runs unless-stopped, and publishes nothing.
    let (containers, networks) = docker_objects_of(&project);
    assert_eq!((containers.len(), networks.len()), (1, 1));
    let inspect = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{index .Config.Labels \"berth.managed\"}} {{index .Config.Labels \"berth.app\"}} {{.HostConfig.RestartPolicy.Name}} {{range $p, $b := .NetworkSettings.Ports}}{{range $b}}{{.HostIp}}{{end}}{{end}}",
            &containers[0],
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        "true web unless-stopped"
    );

    // The page shows the container's logs: busybox httpd logs each answer
    // (`[client]: response:404`), and only our requests ask for a missing page.
    let missing = format!("/missing-{}", common::hex_id());
    let response = reqwest::get(format!("{address}{missing}")).await.unwrap();
    assert_eq!(response.status(), 404);
    let logs = wait_for_logs_with_404s(&app, &project, 1).await;
    assert!(logs.len() < 200_000, "the page shows a bounded tail");
    let started_before = started_at(&containers[0]);

    // Restart: the container really starts again, still running, still serving.
    let response = app
        .post_form(
            &format!("/projects/{project}/apps/web"),
            &format!("/projects/{project}/apps/web/restart"),
            &[],
        )
        .await;
    assert_eq!(response.status(), 303);
    let deadline = Instant::now() + Duration::from_secs(30);
    while started_at(&containers[0]) == started_before {
        assert!(
            Instant::now() < deadline,
            "the restart never restarted the container (StartedAt {started_before})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let html = app.wait_for_status(&project, "web", "running").await;
    let address = app_address(&html).expect("address after restart");
    assert!(fetch_text(&address).await.contains("berth-test-web"));
    // The restarted process serves and logs: its request reaches the page.
    let response = reqwest::get(format!("{address}{missing}")).await.unwrap();
    assert_eq!(response.status(), 404);
    wait_for_logs_with_404s(&app, &project, 2).await;

    // Stop: shown as stopped (not crashed), no address.
    let response = app
        .post_form(
            &format!("/projects/{project}/apps/web"),
            &format!("/projects/{project}/apps/web/stop"),
            &[],
        )
        .await;
    assert_eq!(response.status(), 303);
    let html = app.wait_for_status(&project, "web", "stopped").await;
    assert!(app_address(&html).is_none());

    // Start again.
    app.post_form(
        &format!("/projects/{project}/apps/web"),
        &format!("/projects/{project}/apps/web/start"),
        &[],
    )
    .await;
    app.wait_for_status(&project, "web", "running").await;

    // Delete without typing the name: nothing happens, and the page says why.
    let response = app
        .post_form(
            &format!("/projects/{project}/apps/web"),
            &format!("/projects/{project}/apps/web/delete"),
            &[("confirm", "wbe")],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Nothing was deleted")
    );
    app.wait_for_status(&project, "web", "running").await;

    // Delete: the container and, the project now being empty, its network are gone.
    let response = app
        .post_form(
            &format!("/projects/{project}/apps/web"),
            &format!("/projects/{project}/apps/web/delete"),
            &[("confirm", "web")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        app.get(&format!("/projects/{project}/apps/web"))
            .await
            .status(),
        404
    );
    assert_eq!(
        docker_objects_of(&project),
        (vec![], vec![]),
        "no labelled container or network is left"
    );
}

#[tokio::test]
async fn bad_input_is_reported_per_field_and_keeps_what_was_typed() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("form").await;

    let response = app
        .create_app(
            &project,
            "Bad_Name",
            "nginx:1.27",
            "99999",
            "echo 'unclosed",
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("may only contain lowercase letters"),
        "{html}"
    );
    assert!(html.contains("must be a number from 1 to 65535"));
    assert!(html.contains("unclosed"));
    assert!(
        html.contains("value=\"Bad_Name\""),
        "the typed name is kept"
    );
    assert!(
        html.contains("value=\"nginx:1.27\""),
        "the typed image is kept"
    );
    assert!(html.contains("value=\"99999\""));
    let html = app.get_html(&format!("/projects/{project}")).await;
    assert!(
        html.contains("No apps, stacks or databases in this project yet"),
        "nothing was created"
    );

    let response = app.create_app(&project, "ok", "UPPER/case", "80", "").await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("invalid path part"));

    // A duplicate project name is a field error too.
    let response = app.post_form("/", "/projects", &[("name", &project)]).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("already exists"), "{html}");
    assert!(html.contains(&format!("value=\"{project}\"")));

    // An oversized body is refused without effect.
    let big = "x".repeat(200 * 1024);
    let response = app.create_app(&project, "big", &big, "80", "").await;
    assert!(response.status().is_client_error(), "{}", response.status());
}

#[tokio::test]
async fn an_app_that_exits_on_its_own_shows_as_crashed_within_seconds() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("crash").await;
    let response = app
        .create_app(&project, "boom", "berth-test/crash", "8080", "")
        .await;
    assert_eq!(response.status(), 303);
    let started = Instant::now();
    let html = app.wait_for_status(&project, "boom", "crashed").await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(html.contains("exited with code 3"), "{html}");
    assert!(
        html.contains("berth-test-crash: starting"),
        "its last log lines are on the page"
    );
}

#[tokio::test]
async fn a_failed_pull_shows_the_daemons_error() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("pull").await;
    // Port 1 on loopback: the daemon tries and fails at once, without leaving this machine.
    let response = app
        .create_app(&project, "nope", "127.0.0.1:1/berth-test/nope:1", "80", "")
        .await;
    assert_eq!(response.status(), 303);
    let html = app.wait_for_status(&project, "nope", "failed").await;
    assert!(
        html.contains("127.0.0.1:1"),
        "the daemon's message names the registry: {html}"
    );
}

#[tokio::test]
async fn without_docker_the_dashboard_explains_and_the_rest_keeps_working() {
    let mut app = TestApp::spawn_with(common::Options {
        docker_host: Some("unix:///nonexistent/berth-test.sock".into()),
        ..common::Options::default()
    })
    .await;
    app.setup_admin().await;
    let html = app.get_html("/").await;
    assert!(html.contains("berth cannot reach Docker"), "{html}");
    assert!(
        html.contains("unix:///nonexistent/berth-test.sock"),
        "it says what it tried"
    );
    assert!(html.contains("--docker-host"), "and how to fix it");
    let project = app.create_project("nodocker").await;
    let response = app
        .create_app(&project, "web", "berth-test/web", "8080", "")
        .await;
    assert_eq!(response.status(), 303);
    let html = app.wait_for_status(&project, "web", "failed").await;
    assert!(html.contains("cannot reach the Docker engine"), "{html}");
}

#[tokio::test]
async fn after_a_crash_of_berth_itself_status_is_reconciled_from_docker() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("reconcile").await;
    app.create_app(&project, "web", "berth-test/web", "8080", "")
        .await;
    app.wait_for_status(&project, "web", "running").await;

    let path = format!("/projects/{project}/apps/web");
    let (containers, _) = docker_objects_of(&project);
    assert_eq!(containers.len(), 1);
    let container = containers[0].clone();

    // berth dies; while it is down the container is stopped behind its back.
    // `docker stop` counts as a manual stop: unless-stopped does not bring it
    // back, so only berth's reconcile at start can change the row that says
    // `running` (no event reaches a berth that is not there).
    let app = app
        .restart_on_same_data_after(|| {
            let out = std::process::Command::new("docker")
                .args(["stop", "-t", "5", &container])
                .output()
                .unwrap();
            assert!(out.status.success());
        })
        .await;
    assert!(
        app.setup_token.is_none(),
        "an installed berth prints no setup token"
    );
    assert_eq!(app.login("admin", common::PASSWORD).await.status(), 303);
    let docker_state = || {
        let out = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{.State.Status}}", &container])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let html = loop {
        let html = app.get_html(&path).await;
        let status = common::app_status(&html);
        if status == "crashed" {
            break html;
        }
        assert!(
            Instant::now() < deadline,
            "berth still shows {status:?} for a container Docker says is {}",
            docker_state()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(docker_state(), "exited", "nothing started it again");
    assert!(
        html.contains("exited with code"),
        "the page says how it ended"
    );
    assert!(
        common::app_address(&html).is_none(),
        "no address for a stopped container"
    );
}

#[tokio::test]
async fn an_image_missing_locally_is_pulled_then_run() {
    let registry = common::LocalRegistry::start().await;
    let tag = format!("berth-test/pulled:{}", &common::hex_id()[..8]);
    let image = registry.push_and_forget("berth-test/web:latest", &tag);
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("pull").await;
    let response = app.create_app(&project, "pulled", &image, "8080", "").await;
    assert_eq!(response.status(), 303);
    let html = app.wait_for_status(&project, "pulled", "running").await;
    assert!(
        fetch_text(&app_address(&html).unwrap())
            .await
            .contains("berth-test-web")
    );
    let delete = format!("/projects/{project}/apps/pulled");
    app.post_form(
        &delete,
        &format!("{delete}/delete"),
        &[("confirm", "pulled")],
    )
    .await;
    let _ = std::process::Command::new("docker")
        .args(["rmi", &image])
        .output();
}

/// The edge goes straight to the app's container on its project network:
/// nothing is published on the host, the app page shows the container's
/// address, and the dashboard says how apps are reached.
#[tokio::test]
async fn an_app_is_served_straight_from_its_container_with_no_published_port() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("direct").await;
    let created = app
        .create_app(&project, "web", "berth-test/web:latest", "8080", "")
        .await;
    assert_eq!(created.status(), 303);
    let html = app.wait_for_status(&project, "web", "running").await;
    let address = common::app_address(&html).expect("the app page shows its address");
    assert!(
        !address.contains("127.0.0.1"),
        "the container's own address, not a published port: {address}"
    );
    let container = docker_out(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.project={project}"),
    ]);
    assert!(!container.is_empty());
    assert_eq!(
        docker_out(&["port", &container]),
        "",
        "no port is published"
    );
    let page = app
        .get_via_edge(&format!("web.{project}.localhost"), "/")
        .await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("berth-test-web"));
    let dashboard = app.get_html("/").await;
    assert!(
        dashboard.contains("straight to containers"),
        "the dashboard says how apps are reached"
    );
}

/// Where berth is told the host cannot reach Docker's networks, apps
/// publish their port on 127.0.0.1 and the edge goes there; the dashboard
/// says so.
#[tokio::test]
async fn with_publish_app_ports_the_edge_goes_through_a_loopback_port_and_says_so() {
    let mut app = TestApp::spawn_with(common::Options {
        extra_args: vec!["--publish-app-ports".into()],
        ..Default::default()
    })
    .await;
    app.setup_admin().await;
    let project = app.create_project("published").await;
    app.create_app(&project, "web", "berth-test/web:latest", "8080", "")
        .await;
    let html = app.wait_for_status(&project, "web", "running").await;
    let address = common::app_address(&html).unwrap();
    assert!(address.starts_with("http://127.0.0.1:"), "{address}");
    let container = docker_out(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.project={project}"),
    ]);
    assert!(docker_out(&["port", &container]).contains("127.0.0.1:"));
    let page = app
        .get_via_edge(&format!("web.{project}.localhost"), "/")
        .await;
    assert_eq!(page.status(), 200);
    let dashboard = app.get_html("/").await;
    assert!(
        dashboard.contains("--publish-app-ports"),
        "the dashboard says so"
    );
}
