//! The edge under attack, end to end with the real berth binary: a flood of
//! idle sockets cannot take the dashboard down with it, no app or static
//! site can take a path on the dashboard's own host, and the dashboard's
//! cookies are Secure only when the edge says the browser came over HTTPS.

mod common;
#[path = "common/pebble.rs"]
mod pebble;

use std::time::Duration;

use common::{Api, Options, PASSWORD, TestApp, csrf_token};
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
    let project = app.create_web_app("dashhost").await;
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

/// The `name=value` part of a `Set-Cookie` value, and its attributes.
fn cookie_parts(set_cookie: &str) -> (&str, &str) {
    set_cookie.split_once(';').unwrap_or((set_cookie, ""))
}

#[tokio::test]
async fn over_https_through_the_edge_cookies_are_secure_host_cookies_and_a_local_claim_of_https_is_not_believed()
 {
    const DOMAIN: &str = "berth.example.test";
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    assert_eq!(dashboard_domain(&app, DOMAIN).await.status(), 303);
    let (cert, key, root) = pebble::rcgen_cert(&[DOMAIN], 2020, 2099);
    let uploaded = app
        .post_form(
            "/certificates",
            "/certificates/upload",
            &[("domain", DOMAIN), ("certificate", &cert), ("key", &key)],
        )
        .await;
    assert_eq!(
        uploaded.status(),
        303,
        "the dashboard's certificate is uploaded"
    );
    let edge = app.edge_https.trim_start_matches("https://").to_owned();
    let https =
        |method: &'static str, path: String, headers: Vec<(&'static str, String)>, body: String| {
            let (edge, root) = (edge.clone(), root.clone());
            async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                pebble::https_request(&edge, DOMAIN, method, &path, &headers, &body, &root)
                    .await
                    .expect("the dashboard answers over HTTPS")
            }
        };

    // The login page over HTTPS sets its CSRF cookie under the __Host- name, Secure.
    let page = https("GET", "/login".into(), vec![], String::new()).await;
    assert_eq!(page.status, 200);
    let set = page
        .header("set-cookie")
        .expect("the login page sets its cookie");
    let (csrf_cookie, attributes) = cookie_parts(set);
    assert!(csrf_cookie.starts_with("__Host-berth_csrf="), "{set}");
    assert!(
        attributes.contains("; Secure") && attributes.contains("Path=/"),
        "{set}"
    );
    assert!(!attributes.contains("Domain"), "{set}");
    let csrf = csrf_token(&String::from_utf8_lossy(&page.body));

    let form = format!(
        "csrf={csrf}&username=admin&password={}",
        PASSWORD.replace(' ', "+")
    );
    let login = https(
        "POST",
        "/login".into(),
        vec![
            ("Cookie", csrf_cookie.to_owned()),
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ],
        form,
    )
    .await;
    assert_eq!(
        login.status,
        303,
        "{}",
        String::from_utf8_lossy(&login.body)
    );
    let set = login.header("set-cookie").expect("a session cookie");
    let (session, attributes) = cookie_parts(set);
    assert!(session.starts_with("__Host-berth_session="), "{set}");
    assert!(
        attributes.contains("; Secure") && attributes.contains("HttpOnly"),
        "{set}"
    );
    let home = https(
        "GET",
        "/".into(),
        vec![("Cookie", session.to_owned())],
        String::new(),
    )
    .await;
    assert_eq!(
        home.status, 200,
        "the __Host- cookie is the session over HTTPS"
    );
    // The same token under the plain name (as a sibling subdomain could
    // plant it) is not the session over HTTPS.
    let planted = session.replacen("__Host-", "", 1);
    let home = https("GET", "/".into(), vec![("Cookie", planted)], String::new()).await;
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/login"));

    // The webhook URL, which carries its secret, is shown as https.
    let project = app.create_project("hooks").await;
    let created = app
        .create_app(&project, "web", "berth-test/web", "8080", "")
        .await;
    assert_eq!(created.status(), 303);
    let deployments = https(
        "GET",
        format!("/projects/{project}/apps/web/deployments"),
        vec![("Cookie", session.to_owned())],
        String::new(),
    )
    .await;
    let html = String::from_utf8_lossy(&deployments.body);
    assert!(
        html.contains(&format!("https://{DOMAIN}")) && html.contains("/hooks/"),
        "{html}"
    );

    // A local process talking to the dashboard's own listener may claim
    // HTTPS; without the edge's secret it gets plain cookies, so a browser
    // there keeps a working login (audit L1).
    let fresh = reqwest::Client::new();
    for path in ["/login", "/setup"] {
        let response = fresh
            .get(app.at(path))
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            assert!(
                !set.contains("Secure") && !set.starts_with("__Host-"),
                "{set}"
            );
        }
    }
    let response = fresh
        .get(app.at("/login"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(
        response.headers().get("set-cookie").is_some(),
        "the check above saw a cookie"
    );
    app.stop();
}
