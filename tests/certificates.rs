//! Certificates end to end: the real binary, a real ACME CA (Pebble) that
//! validates against berth's own edge listeners, a real app container behind
//! the domain, and a TLS client that trusts only Pebble's root.

mod common;
#[path = "common/pebble.rs"]
mod pebble;

use std::time::{Duration, Instant};

use common::{Options, TestApp};
use pebble::{Pebble, free_port, https_get, rcgen_cert, serial_of, served_names};
use serde_json::{Value, json};

/// berth on the ports Pebble validates, trusting Pebble's HTTPS root, with
/// the certificate task looking every second.
async fn berth_with_pebble() -> (TestApp, Pebble, String) {
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start(http_port, tls_port).await;
    let app =
        TestApp::spawn_with(Options::for_pebble(http_port, tls_port, &pebble.ca_bundle)).await;
    app.setup_admin().await;
    let out = app.cli(&["token", "create", "--name", "certs"], None);
    assert!(out.status.success(), "token create");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    (app, pebble, token)
}

async fn api(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    app.api(token, method, path, body).await
}

/// Polls the certificate of `domain` until `done` holds for it.
async fn wait_for_cert(
    app: &TestApp,
    token: &str,
    domain: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, list) = api(
            app,
            token,
            reqwest::Method::GET,
            "/api/v1/certificates",
            None,
        )
        .await;
        assert_eq!(status, 200);
        let cert = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["domain"] == domain)
            .cloned();
        if let Some(cert) = cert.filter(|c| done(c)) {
            return cert;
        }
        assert!(
            Instant::now() < deadline,
            "certificate of {domain} never {what}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn add_domain(app: &TestApp, token: &str, project: &str, host: &str) {
    let (status, body) = api(
        app,
        token,
        reqwest::Method::POST,
        &format!("/api/v1/projects/{project}/apps/web/domains"),
        Some(json!({ "host": host, "tls_mode": "acme" })),
    )
    .await;
    assert!(
        status == 201 || status == 200,
        "add domain {host}: {status} {body}"
    );
}

#[tokio::test]
async fn a_domain_gets_a_certificate_from_the_ca_renews_it_and_keeps_it_when_renewal_fails() {
    let (mut app, pebble, token) = berth_with_pebble().await;
    let (status, _) = api(
        &app,
        &token,
        reqwest::Method::POST,
        "/api/v1/acme",
        Some(json!({ "email": "ops@example.com", "directory": pebble.directory, "challenge": "http-01" })),
    )
    .await;
    assert_eq!(status, 200, "ACME settings saved");
    let project = app.create_project("certs").await;
    let created = app
        .create_app(&project, "web", "berth-test/web", "8080", "")
        .await;
    assert_eq!(created.status(), 303);
    app.wait_for_status(&project, "web", "running").await;

    // HTTP-01: the domain is added; the background task obtains its certificate.
    add_domain(&app, &token, &project, "shop.berth.test").await;
    let first = wait_for_cert(&app, &token, "shop.berth.test", "issued", |c| {
        c["serial"].is_string()
    })
    .await;
    assert_eq!(first["names"], json!(["shop.berth.test"]));
    assert_eq!(first["state"], "valid");

    let root = pebble.issuing_root().await;
    let served = https_get(&edge(&app), "shop.berth.test", "/", &root)
        .await
        .expect("the edge serves a certificate Pebble's root vouches for");
    assert_eq!(
        served_names(&served.peer_certificates[0]),
        ["shop.berth.test"]
    );
    assert_eq!(served.status, 200, "the app answers through HTTPS");

    // Renew now: a new serial is served.
    let id = first["id"].as_i64().unwrap();
    let (status, _) = api(
        &app,
        &token,
        reqwest::Method::POST,
        &format!("/api/v1/certificates/{id}/renew"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let renewed = wait_for_cert(&app, &token, "shop.berth.test", "renewed", |c| {
        c["serial"] != first["serial"]
    })
    .await;
    let served_renewed = https_get(&edge(&app), "shop.berth.test", "/", &root)
        .await
        .unwrap();
    assert_eq!(
        serial_of(&served_renewed.peer_certificates[0]).replace(':', ""),
        renewed["serial"].as_str().unwrap().replace(':', ""),
        "the renewed certificate is the one served"
    );

    // The CA can no longer validate (the name points where nothing listens):
    // the renewal fails, the CA's error is shown, the old certificate stays.
    pebble.resolve_host_to("shop.berth.test", "127.0.0.2").await;
    api(
        &app,
        &token,
        reqwest::Method::POST,
        &format!("/api/v1/certificates/{id}/renew"),
        None,
    )
    .await;
    let failed = wait_for_cert(&app, &token, "shop.berth.test", "failed", |c| {
        c["last_error"].is_string()
    })
    .await;
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("urn:ietf:params:acme:error:"),
        "the CA's error: {error}"
    );
    assert_eq!(failed["serial"], renewed["serial"]);
    let still = https_get(&edge(&app), "shop.berth.test", "/", &root)
        .await
        .unwrap();
    assert_eq!(
        serial_of(&still.peer_certificates[0]),
        serial_of(&served_renewed.peer_certificates[0]),
        "the old certificate is still served"
    );
    let page = app.get_html("/certificates").await;
    assert!(page.contains("Last attempt failed"), "warning on the page");
    assert!(
        page.contains("urn:ietf:params:acme:error:"),
        "with the CA's error"
    );

    // TLS-ALPN-01 works too, answered on the HTTPS listener.
    let (status, _) = api(
        &app,
        &token,
        reqwest::Method::POST,
        "/api/v1/acme",
        Some(json!({ "email": "ops@example.com", "directory": pebble.directory, "challenge": "tls-alpn-01" })),
    )
    .await;
    assert_eq!(status, 200);
    add_domain(&app, &token, &project, "alpn.berth.test").await;
    wait_for_cert(&app, &token, "alpn.berth.test", "issued", |c| {
        c["serial"].is_string()
    })
    .await;
    let served = https_get(&edge(&app), "alpn.berth.test", "/", &root)
        .await
        .unwrap();
    assert_eq!(
        served_names(&served.peer_certificates[0]),
        ["alpn.berth.test"]
    );

    // After a restart the certificates are served from the data dir at once.
    let app2 = app.restart_on_same_data_after(|| {}).await;
    let root = pebble.issuing_root().await;
    let after = https_get(&edge(&app2), "alpn.berth.test", "/", &root)
        .await
        .unwrap();
    assert_eq!(
        served_names(&after.peer_certificates[0]),
        ["alpn.berth.test"]
    );
    app = app2;
    drop(app);
}

fn edge(app: &TestApp) -> String {
    app.edge_https.trim_start_matches("https://").to_owned()
}

async fn upload(app: &TestApp, domain: &str, cert: &str, key: &str) -> reqwest::Response {
    app.post_form(
        "/certificates",
        "/certificates/upload",
        &[("domain", domain), ("certificate", cert), ("key", key)],
    )
    .await
}

#[tokio::test]
async fn an_uploaded_certificate_is_checked_shown_and_served() {
    let app = TestApp::spawn().await;
    app.setup_admin().await;
    let (cert, key, root) = rcgen_cert(&["www.berth.test"], 2020, 2099);
    let (_, other_key, _) = rcgen_cert(&["www.berth.test"], 2020, 2099);
    let (old_cert, old_key, _) = rcgen_cert(&["www.berth.test"], 2020, 2021);
    let secret_line = key.lines().nth(1).unwrap().to_owned();

    let response = upload(&app, "www.berth.test", &cert, &other_key).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"e-key\""), "error next to the key field");
    assert!(html.contains("does not fit the certificate"));
    assert!(
        !html.contains(&secret_line),
        "a key never comes back into the page"
    );

    let response = upload(&app, "www.berth.test", &old_cert, &old_key).await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("expired on"));

    let response = upload(&app, "shop.berth.test", &cert, &key).await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("does not cover shop.berth.test")
    );

    let page = app.get_html("/certificates").await;
    assert!(page.contains("No certificates yet"), "nothing was saved");

    let response = upload(&app, "www.berth.test", &cert, &key).await;
    assert_eq!(response.status(), 303);
    let page = app.get_html("/certificates").await;
    assert!(page.contains("data-domain=\"www.berth.test\""));
    assert!(!page.contains(&secret_line));

    let served = https_get(&edge(&app), "www.berth.test", "/", &root)
        .await
        .expect("served over TLS");
    assert_eq!(
        served_names(&served.peer_certificates[0]),
        ["www.berth.test"]
    );
}

#[tokio::test]
async fn acme_settings_switch_to_staging_in_one_click_and_never_show_the_eab_key() {
    let app = TestApp::spawn().await;
    app.setup_admin().await;
    // The harness starts berth with `--acme-directory` pointing nowhere: the
    // page shows that default until a CA is chosen.
    let page = app.get_html("/certificates").await;
    assert!(page.contains(r#"value="custom" checked"#));
    assert!(page.contains("https://127.0.0.1:9/directory"));

    let save = |fields: Vec<(&'static str, &'static str)>| {
        let app = &app;
        async move {
            app.post_form("/certificates", "/certificates/settings", &fields)
                .await
        }
    };
    let response = save(vec![("directory", "production"), ("challenge", "http-01")]).await;
    assert_eq!(response.status(), 303);
    let page = app.get_html("/certificates").await;
    assert!(page.contains(r#"value="production" checked"#));

    let response = save(vec![("directory", "staging"), ("challenge", "http-01")]).await;
    assert_eq!(response.status(), 303);
    let page = app.get_html("/certificates").await;
    assert!(page.contains(r#"value="staging" checked"#));

    let response = save(vec![
        ("directory", "custom"),
        ("custom_url", "ftp://ca.example.com/dir"),
    ])
    .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("id=\"e-custom_url\""),
        "error next to the URL"
    );
    assert!(
        html.contains("ftp://ca.example.com/dir"),
        "what was typed stays"
    );

    const HMAC: &str = "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH";
    let response = save(vec![
        ("directory", "custom"),
        ("custom_url", "https://ca.example.com/acme/directory"),
        ("eab_key_id", "kid-2"),
        ("eab_hmac", HMAC),
        ("challenge", "tls-alpn-01"),
    ])
    .await;
    assert_eq!(response.status(), 303);
    let page = app.get_html("/certificates").await;
    assert!(page.contains("https://ca.example.com/acme/directory"));
    assert!(page.contains(r#"value="tls-alpn-01" checked"#));
    assert!(page.contains("A key is stored"));
    assert!(!page.contains(HMAC), "the HMAC key never comes back");
    let key_file = app.data_dir.join("certs/eab-hmac.key");
    let mode = std::fs::metadata(&key_file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
}

#[tokio::test]
async fn the_dashboard_domain_gets_a_certificate_and_the_dashboard_answers_over_https() {
    let (app, pebble, token) = berth_with_pebble().await;
    let response = app
        .post_form(
            "/certificates",
            "/certificates/settings",
            &[
                ("directory", "custom"),
                ("custom_url", pebble.directory.as_str()),
                ("challenge", "http-01"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303, "ACME settings saved from the page");
    let response = app
        .post_form(
            "/settings",
            "/settings/dashboard-domain",
            &[("domain", "berth.berth.test")],
        )
        .await;
    assert_eq!(response.status(), 303);

    wait_for_cert(&app, &token, "berth.berth.test", "issued", |c| {
        c["serial"].is_string()
    })
    .await;
    let root = pebble.issuing_root().await;
    let login = https_get(&edge(&app), "berth.berth.test", "/login", &root)
        .await
        .expect("the dashboard's domain is served with a trusted certificate");
    assert_eq!(
        served_names(&login.peer_certificates[0]),
        ["berth.berth.test"]
    );
    assert_eq!(login.status, 200);
    assert!(String::from_utf8_lossy(&login.body).contains("name=\"password\""));
}

#[tokio::test]
async fn an_upload_that_would_replace_another_domains_certificate_waits_for_confirmation() {
    let app = TestApp::spawn().await;
    app.setup_admin().await;
    let (www_cert, www_key, www_root) = rcgen_cert(&["www.berth.test"], 2020, 2099);
    let (shop_cert, shop_key, shop_root) =
        rcgen_cert(&["shop.berth.test", "www.berth.test"], 2020, 2099);
    assert_eq!(
        upload(&app, "www.berth.test", &www_cert, &www_key)
            .await
            .status(),
        303
    );

    // The page: refused with the names at stake, next to the confirmation box.
    let response = upload(&app, "shop.berth.test", &shop_cert, &shop_key).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"e-replace\""), "{html}");
    assert!(
        html.contains("www.berth.test (now the certificate of www.berth.test)"),
        "{html}"
    );
    assert!(
        !html.contains("data-domain=\"shop.berth.test\""),
        "nothing saved"
    );
    let served = https_get(&edge(&app), "www.berth.test", "/", &www_root)
        .await
        .expect("www keeps its own certificate");
    assert_eq!(
        served_names(&served.peer_certificates[0]),
        ["www.berth.test"]
    );

    // The API says the same under the field `replace`, and takes `replace: true`.
    let out = app.cli(&["token", "create", "--name", "certs"], None);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let body = |replace: bool| json!({"domain": "shop.berth.test", "certificate": shop_cert, "key": shop_key, "replace": replace});
    let (status, answer) = api(
        &app,
        &token,
        reqwest::Method::POST,
        "/api/v1/certificates",
        Some(body(false)),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["fields"]["replace"].is_string(), "{answer}");
    let (status, answer) = api(
        &app,
        &token,
        reqwest::Method::POST,
        "/api/v1/certificates",
        Some(body(true)),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let served = https_get(&edge(&app), "www.berth.test", "/", &shop_root)
        .await
        .expect("confirmed: www is served with the new certificate");
    assert_eq!(
        served_names(&served.peer_certificates[0]),
        ["shop.berth.test", "www.berth.test"]
    );

    // Confirmed from the page as well.
    let (other_cert, other_key, _) = rcgen_cert(&["www.berth.test", "shop.berth.test"], 2020, 2099);
    let response = app
        .post_form(
            "/certificates",
            "/certificates/upload",
            &[
                ("domain", "www.berth.test"),
                ("certificate", &other_cert),
                ("key", &other_key),
                ("replace", "1"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
}
