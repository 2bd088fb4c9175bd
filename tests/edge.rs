//! The edge end to end: the real berth binary, the real Docker daemon, an
//! app from `berth-test/web` reached through berth's own proxy by host name.

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, location};
use serde_json::{Value, json};

/// Polls the edge until `host` answers 200 (the app's server may still be booting).
async fn text_via_edge(app: &TestApp, host: &str, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.get_via_edge(host, path).await;
        if response.status() == 200 {
            return response.text().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{host}{path} never answered 200 through the edge (last: {})",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn running_web_app(app: &mut TestApp, hint: &str) -> String {
    app.setup_admin().await;
    let project = app.create_project(hint).await;
    let response = app
        .create_app(&project, "web", "berth-test/web", "8080", "")
        .await;
    assert_eq!(response.status(), 303);
    app.wait_for_status(&project, "web", "running").await;
    project
}

#[tokio::test]
async fn an_app_answers_at_its_default_host_and_added_domains_through_the_edge() {
    let mut app = TestApp::spawn().await;
    let project = running_web_app(&mut app, "edge").await;
    let host = format!("web.{project}.localhost");
    assert!(
        text_via_edge(&app, &host, "/")
            .await
            .contains("berth-test-web")
    );

    // A host no route covers gets berth's 404, which names no app.
    let unknown = app.get_via_edge("nobody.localhost", "/").await;
    assert_eq!(unknown.status(), 404);
    let page = unknown.text().await.unwrap();
    assert!(
        !page.contains(&project) && !page.contains("berth-test-web"),
        "{page}"
    );

    // The domains tab links the default host through the edge's port.
    let tab = format!("/projects/{project}/apps/web/domains");
    let html = app.get_html(&tab).await;
    assert!(
        html.contains(&format!("http://{host}:{}/", app.edge_http_port())),
        "{html}"
    );

    // A domain added in the tab routes at once.
    let response = app
        .post_form(
            &tab,
            &tab,
            &[("host", "Shop.Example.test"), ("tls_mode", "none")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), tab);
    assert!(
        text_via_edge(&app, "shop.example.test", "/")
            .await
            .contains("berth-test-web")
    );
    assert!(app.get_html(&tab).await.contains("shop.example.test"));

    // A bad name is refused next to its field, with the input kept, and nothing changes.
    let response = app
        .post_form(
            &tab,
            &tab,
            &[("host", "bücher.test"), ("path_prefix", "/a b")],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"e-host\""), "{html}");
    assert!(html.contains("punycode"), "{html}");
    assert!(html.contains("value=\"bücher.test\""), "{html}");
    assert!(html.contains("id=\"e-path_prefix\""), "{html}");
    assert!(!app.get_html(&tab).await.contains("bücher"));

    // The same host and prefix twice is a conflict, shown on the form.
    let response = app
        .post_form(&tab, &tab, &[("host", "shop.example.test")])
        .await;
    assert_eq!(response.status(), 409);

    // Removing it stops the routing.
    let delete = format!("{tab}/delete");
    let response = app
        .post_form(
            &tab,
            &delete,
            &[("host", "shop.example.test"), ("path_prefix", "/")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        app.get_via_edge("shop.example.test", "/").await.status(),
        404
    );

    // A stopped app answers 502 naming the app, never an internal detail.
    let app_page = format!("/projects/{project}/apps/web");
    let response = app
        .post_form(&app_page, &format!("{app_page}/stop"), &[])
        .await;
    assert_eq!(response.status(), 303);
    app.wait_for_status(&project, "web", "stopped").await;
    let down = app.get_via_edge(&host, "/").await;
    assert_eq!(down.status(), 502);
    let page = down.text().await.unwrap();
    assert!(page.contains("web"), "{page}");
    assert!(!page.contains("127.0.0.1"), "{page}");

    // Started again, it is back at its new port.
    let response = app
        .post_form(&app_page, &format!("{app_page}/start"), &[])
        .await;
    assert_eq!(response.status(), 303);
    app.wait_for_status(&project, "web", "running").await;
    assert!(
        text_via_edge(&app, &host, "/")
            .await
            .contains("berth-test-web")
    );
}

struct Api<'a> {
    app: &'a TestApp,
    token: String,
}

impl Api<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.app.api(&self.token, method, path, body).await
    }
}

#[tokio::test]
async fn the_api_adds_lists_and_removes_domains_and_static_sites() {
    let mut app = TestApp::spawn().await;
    let project = running_web_app(&mut app, "edgeapi").await;
    let out = app.cli(&["token", "create", "--name", "edge"], None);
    assert!(out.status.success());
    let api = Api {
        app: &app,
        token: String::from_utf8(out.stdout).unwrap().trim().to_owned(),
    };
    let domains = format!("/api/v1/projects/{project}/apps/web/domains");

    // Static sites live under the static root (<data dir>/static by default).
    let site = app.data_dir.join("static/docs");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<h1>docs home</h1>").unwrap();
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &domains,
            Some(json!({
                "host": "docs.test",
                "path_prefix": "/docs",
                "static_dir": site.display().to_string(),
                "spa_fallback": true,
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["path_prefix"], "/docs");
    assert_eq!(body["redirect_https"], true);
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &domains,
            Some(json!({"host": "docs.test", "path_prefix": "/api", "strip_prefix": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    assert!(
        text_via_edge(&app, "docs.test", "/docs/")
            .await
            .contains("docs home")
    );
    assert!(
        text_via_edge(&app, "docs.test", "/docs/guide/intro")
            .await
            .contains("docs home")
    );
    // The app's httpd gets /api/ stripped to /.
    assert!(
        text_via_edge(&app, "docs.test", "/api/")
            .await
            .contains("berth-test-web")
    );

    let (status, body) = api.send(reqwest::Method::GET, &domains, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["default_host"], format!("web.{project}.localhost"));
    assert_eq!(body["domains"].as_array().unwrap().len(), 2);

    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &domains,
            Some(json!({"host": "a.*.test", "static_dir": "/nonexistent/berth-site"})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["fields"]["host"]
            .as_str()
            .unwrap()
            .contains("wildcard"),
        "{body}"
    );
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &domains,
            Some(json!({"host": "b.test", "static_dir": "/nonexistent/berth-site"})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(body["fields"]["static_dir"].is_string(), "{body}");
    let (status, _) = api
        .send(
            reqwest::Method::POST,
            &domains,
            Some(json!({"host": "docs.test", "path_prefix": "/docs/"})),
        )
        .await;
    assert_eq!(status, 409);

    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("{domains}/docs.test?path_prefix=/docs"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(app.get_via_edge("docs.test", "/docs/").await.status(), 404);
    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("{domains}/docs.test"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("{domains}/docs.test"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_dashboard_is_routed_through_the_edge_at_its_own_domain_but_never_answers_plain_http() {
    let app = TestApp::spawn().await;
    app.setup_admin().await;
    assert_eq!(
        app.get_via_edge("berth.example.test", "/login")
            .await
            .status(),
        404
    );

    let response = app
        .post_form(
            "/settings",
            "/settings/dashboard-domain",
            &[("domain", "*.example.test")],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("id=\"e-domain\""));

    let response = app
        .post_form(
            "/settings",
            "/settings/dashboard-domain",
            &[("domain", "berth.example.test")],
        )
        .await;
    assert_eq!(response.status(), 303);
    // Routed (no 404), but without a certificate plain HTTP gets no login
    // form: a password must never cross the internet in clear.
    let login = app.get_via_edge("berth.example.test", "/login").await;
    assert_eq!(login.status(), 403);
    let body = login.text().await.unwrap();
    assert!(body.contains("only over HTTPS"), "{body}");
    assert!(!body.contains("name=\"password\""));
    assert!(app.get_html("/settings").await.contains(&format!(
        "http://berth.example.test:{}/",
        app.edge_http_port()
    )));

    let response = app
        .post_form("/settings", "/settings/dashboard-domain", &[("domain", "")])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        app.get_via_edge("berth.example.test", "/login")
            .await
            .status(),
        404
    );
}

#[test]
fn a_port_already_in_use_stops_berth_with_the_port_and_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BERTH)
        .arg("serve")
        .arg("--data-dir")
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"])
        .args(["--http-listen", &addr])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(stderr.contains("--http-listen"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("dashboard:"), "{stdout}");
}

#[tokio::test]
async fn static_sites_stay_inside_the_static_root_and_no_symlink_leads_out() {
    let mut app = TestApp::spawn().await;
    let project = running_web_app(&mut app, "statics").await;
    let out = app.cli(&["token", "create", "--name", "statics"], None);
    assert!(out.status.success());
    let api = Api {
        app: &app,
        token: String::from_utf8(out.stdout).unwrap().trim().to_owned(),
    };
    let domains = format!("/api/v1/projects/{project}/apps/web/domains");

    // Directories that would publish the host, or berth's own secrets, are refused.
    let data_dir = app.data_dir.display().to_string();
    let outside = tempfile::tempdir().unwrap();
    let outside_dir = outside.path().display().to_string();
    let escaping = format!("{}/static/../..", app.data_dir.display());
    for dir in [
        "/",
        "/etc",
        &data_dir,
        "/srv/x/../..",
        &outside_dir,
        &escaping,
    ] {
        let (status, body) = api
            .send(
                reqwest::Method::POST,
                &domains,
                Some(json!({"host": "files.test", "static_dir": dir})),
            )
            .await;
        assert_eq!(status, 422, "{dir}: {body}");
        assert!(body["fields"]["static_dir"].is_string(), "{dir}: {body}");
    }

    // Inside an allowed site, links out of it answer 404; a link inside works.
    std::fs::write(outside.path().join("secret.txt"), "not for the internet").unwrap();
    let site = app.data_dir.join("static/site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<h1>site home</h1>").unwrap();
    std::os::unix::fs::symlink("/etc", site.join("etc")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), site.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(app.data_dir.join("secret.key"), site.join("key.txt")).unwrap();
    std::os::unix::fs::symlink("index.html", site.join("home.html")).unwrap();
    let (status, body) = api
        .send(
            reqwest::Method::POST,
            &domains,
            Some(json!({"host": "files.test", "static_dir": site.display().to_string()})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        text_via_edge(&app, "files.test", "/")
            .await
            .contains("site home")
    );
    assert!(
        text_via_edge(&app, "files.test", "/home.html")
            .await
            .contains("site home")
    );
    for path in ["/etc/passwd", "/etc/hostname", "/leak.txt", "/key.txt"] {
        let response = app.get_via_edge("files.test", path).await;
        assert_eq!(response.status(), 404, "{path}");
    }
}
