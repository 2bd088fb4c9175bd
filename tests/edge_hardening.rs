//! The edge under attack, end to end with the real berth binary: a flood of
//! idle sockets cannot take the dashboard down with it, and no app or
//! static site can take a path on the dashboard's own host.

mod common;

use std::time::Duration;

use common::{Api, Options, TestApp};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Whether the peer closes `stream` within `max`.
async fn closed_within(stream: &mut TcpStream, max: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(max, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Sets the dashboard's domain from the settings page.
async fn dashboard_domain(app: &TestApp, domain: &str) -> reqwest::Response {
    app.post_form(
        "/settings",
        "/settings/dashboard-domain",
        &[("domain", domain)],
    )
    .await
}

#[tokio::test]
async fn the_dashboard_keeps_answering_while_idle_sockets_flood_the_edge() {
    // 256 descriptors: without caps, 400 idle sockets exhaust them and
    // neither the edge nor the dashboard can accept any more.
    let mut app = TestApp::spawn_with(Options {
        open_files: Some(256),
        ..Options::default()
    })
    .await;
    app.setup_admin().await;
    assert_eq!(
        dashboard_domain(&app, "berth.example.test").await.status(),
        303
    );

    let edge: std::net::SocketAddr = format!("127.0.0.1:{}", app.edge_http_port())
        .parse()
        .unwrap();
    let mut flood = Vec::new();
    for _ in 0..400 {
        // From another loopback address: one client, as an attacker would be.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        flood.push(socket.connect(edge).await.unwrap());
    }
    let mut closed = 0;
    for stream in &mut flood {
        if closed_within(stream, Duration::from_millis(50)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 300,
        "most of the flood is closed at once, {closed} of 400 were"
    );

    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "the dashboard's own listener answers");
    // The edge answers other clients too: over plain HTTP, before its
    // certificate, the dashboard's domain says it is served over HTTPS only.
    let login = app.get_via_edge("berth.example.test", "/login").await;
    assert_eq!(
        login.status(),
        403,
        "and so does the edge, to other clients"
    );
    assert!(login.text().await.unwrap().contains("HTTPS"));
    drop(flood);
    app.stop();
}

#[tokio::test]
async fn no_app_or_static_site_can_take_a_path_on_the_dashboards_host() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("dashhost").await;
    let response = app
        .create_app(&project, "web", "berth-test/web", "8080", "")
        .await;
    assert_eq!(response.status(), 303);
    let api = Api::new(&app);
    let domains = format!("/api/v1/projects/{project}/apps/web/domains");

    // A domain the app already has cannot become the dashboard's.
    let (status, body) = api
        .send(
            &app,
            reqwest::Method::POST,
            &domains,
            Some(json!({"host": "taken.example.test", "path_prefix": "/"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let response = dashboard_domain(&app, "taken.example.test").await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("id=\"e-domain\""), "{page}");
    assert!(page.contains(&format!("{project}/web")), "{page}");

    assert_eq!(
        dashboard_domain(&app, "berth.example.test").await.status(),
        303
    );
    let site = app.data_dir.join("static/phishing");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "phishing").unwrap();
    for body in [
        json!({"host": "berth.example.test", "path_prefix": "/login"}),
        json!({"host": "berth.example.test", "path_prefix": "/"}),
        json!({"host": "berth.example.test", "path_prefix": "/x", "static_dir": site.display().to_string()}),
    ] {
        let (status, answer) = api
            .send(&app, reqwest::Method::POST, &domains, Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert!(
            answer.to_string().contains("dashboard's domain"),
            "{answer}"
        );
    }
    let response = app
        .post_form(
            &format!("/projects/{project}/apps/web/domains"),
            &format!("/projects/{project}/apps/web/domains"),
            &[("host", "berth.example.test"), ("path_prefix", "/login")],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("berth.example.test is the dashboard")
    );

    // The dashboard still answers there, not the app: over plain HTTP,
    // before its certificate, with its own "HTTPS only" page.
    let login = app.get_via_edge("berth.example.test", "/login").await;
    assert_eq!(login.status(), 403);
    let page = login.text().await.unwrap();
    assert!(page.contains("berth dashboard"), "{page}");
    assert!(!page.contains("berth-test-web"), "{page}");
}
