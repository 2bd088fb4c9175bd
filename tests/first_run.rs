//! The first start on a real server: `berth serve --dashboard-domain D`
//! against a real ACME CA (Pebble, whose DNS answers 127.0.0.1 for every
//! name), with a TLS client that trusts only Pebble's root.

mod common;
#[path = "common/pebble.rs"]
mod pebble;

use std::time::Duration;

use common::{Options, PASSWORD, TestApp, csrf_token};
use pebble::{Pebble, free_port, https_get, https_request, served_names};

const DOMAIN: &str = "berth.berth.test";

fn edge_https(app: &TestApp) -> String {
    app.edge_https.trim_start_matches("https://").to_owned()
}

#[tokio::test]
async fn serve_with_a_dashboard_domain_serves_the_login_page_over_https_with_hsts_and_the_printed_token_works()
 {
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port, tls_port).await;
    let mut options = Options::for_pebble(http_port, tls_port, &pebble.ca_bundle);
    options.acme_directory = Some(pebble.directory.clone());
    options
        .extra_args
        .extend(["--dashboard-domain".into(), DOMAIN.into()]);
    let app = TestApp::spawn_with(options).await;
    assert!(
        app.url.starts_with("http://127.0.0.1:"),
        "the dashboard's own listener stays on loopback: {}",
        app.url
    );
    let token = app
        .setup_token
        .clone()
        .expect("a fresh install prints a token");

    let issued = app
        .wait_for_output(
            &format!("certificate for {DOMAIN} issued"),
            Duration::from_secs(60),
        )
        .await;
    let url = format!("https://{DOMAIN}:{tls_port}/");
    assert!(issued.ends_with(&format!("open {url}")), "{issued}");

    let root = pebble.issuing_root().await;
    let login = https_get(&edge_https(&app), DOMAIN, "/login", &root)
        .await
        .expect("the dashboard's domain is served with a certificate Pebble's root vouches for");
    assert_eq!(served_names(&login.peer_certificates[0]), [DOMAIN]);
    assert_eq!(
        login.status, 303,
        "no admin yet: the login page sends to setup"
    );
    assert_eq!(login.header("location"), Some("/setup"));
    assert_eq!(
        login.header("strict-transport-security"),
        Some("max-age=31536000")
    );

    // The printed token claims the install, over HTTPS at the domain.
    let setup = https_get(&edge_https(&app), DOMAIN, "/setup", &root)
        .await
        .unwrap();
    assert_eq!(setup.status, 200);
    let cookie = setup
        .header("set-cookie")
        .expect("the setup form sets its CSRF cookie");
    assert!(cookie.contains("; Secure"), "over HTTPS: {cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let csrf = csrf_token(&String::from_utf8_lossy(&setup.body));
    let form = format!(
        "csrf={csrf}&token={token}&username=admin&password={p}&password_confirm={p}",
        p = PASSWORD.replace(' ', "+")
    );
    let created = https_request(
        &edge_https(&app),
        DOMAIN,
        "POST",
        "/setup",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &form,
        &root,
    )
    .await
    .unwrap();
    assert_eq!(
        created.status,
        303,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert_eq!(created.header("location"), Some("/"));

    // Plain HTTP on the domain only redirects to HTTPS now.
    let plain = app.get_via_edge(DOMAIN, "/login").await;
    assert_eq!(plain.status(), 308);
    assert_eq!(
        common::location(&plain),
        format!("https://{DOMAIN}:{tls_port}/login")
    );
}

#[tokio::test]
async fn with_the_ca_unreachable_berth_says_why_and_never_serves_the_dashboard_over_plain_http() {
    // The harness's default ACME directory is a port nothing listens on.
    let app = TestApp::spawn_with(Options {
        extra_args: vec!["--dashboard-domain".into(), DOMAIN.into()],
        ..Options::default()
    })
    .await;
    assert!(app.url.starts_with("http://127.0.0.1:"), "{}", app.url);

    let message = app
        .wait_for_output(
            &format!("no certificate for {DOMAIN} yet from "),
            Duration::from_secs(30),
        )
        .await;
    assert!(message.contains("cannot reach the CA"), "{message}");
    assert!(message.contains("127.0.0.1:9"), "names the CA: {message}");
    assert!(message.contains("tries again in"), "{message}");

    // The public HTTP port routes the domain but answers no dashboard page.
    for path in ["/login", "/setup", "/"] {
        let response = app.get_via_edge(DOMAIN, path).await;
        assert_eq!(response.status(), 403, "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("<form"), "{path}: {body}");
    }
    // Still reachable as before, on the loopback listener.
    assert_eq!(app.get("/setup").await.status(), 200);
}
