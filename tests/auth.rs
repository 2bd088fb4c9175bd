//! Setup, login, logout, CSRF, throttling and the admin CLI, through the real binary and its HTML forms.

mod common;

use common::{PASSWORD, TestApp, csrf_token, location};

#[tokio::test]
async fn a_fresh_install_sends_everyone_to_setup_and_needs_the_printed_token() {
    let app = TestApp::spawn().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/setup");

    // A wrong token creates nothing, and what was typed comes back.
    let response = app
        .post_form(
            "/setup",
            "/setup",
            &[
                ("token", "not-the-token"),
                ("username", "admin"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("does not match the token printed"), "{html}");
    assert!(
        html.contains("value=\"admin\""),
        "the username stays filled in"
    );
    assert!(!html.contains(PASSWORD), "passwords are never echoed back");
    assert_eq!(location(&app.get("/").await), "/setup", "still unclaimed");

    // Mismatched passwords and a bad username are reported per field.
    let token = app.setup_token.clone().unwrap();
    let response = app
        .post_form(
            "/setup",
            "/setup",
            &[
                ("token", &token),
                ("username", "bad name"),
                ("password", "short"),
                ("password_confirm", "other"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("may only contain letters"), "{html}");
    assert!(html.contains("at least 8 characters"), "{html}");
    assert!(html.contains("does not match the password"), "{html}");

    app.setup_admin().await;
    let dashboard = app.get_html("/").await;
    assert!(dashboard.contains("Docker engine"));

    // Once claimed, setup is closed.
    let response = app.get("/setup").await;
    assert_eq!(location(&response), "/login");
}

#[tokio::test]
async fn state_changing_forms_without_the_csrf_token_are_refused() {
    let app = TestApp::spawn().await;
    app.setup_admin().await;
    let response = app
        .http
        .post(app.at("/projects"))
        .form(&[("name", "nocsrf")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = app
        .http
        .post(app.at("/projects"))
        .form(&[("name", "nocsrf"), ("csrf", "0000")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let html = app.get_html("/").await;
    assert!(!html.contains("nocsrf"), "nothing was created");

    // The login form needs its token too.
    let fresh = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = fresh
        .post(app.at("/login"))
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn login_logout_ends_the_session_on_the_server_and_cookie_flags() {
    let app = TestApp::spawn().await;
    app.setup_admin().await;

    // Log out: the session ends on the server. The old cookie, replayed by
    // a browser that did not drop it (or by whoever copied it), gets the
    // login page, not just a browser that forgot it.
    let browser = Browser::open(&app).await;
    let session = browser.log_in(None).await;
    let html = browser.get("/", &session).await.text().await.unwrap();
    let response = browser
        .client
        .post(app.at("/logout"))
        .header("cookie", &session)
        .form(&[("csrf", csrf_token(&html))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login");
    let cleared = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("berth_session="))
        .expect("logout clears the cookie");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let replayed = browser.get("/", &session).await;
    assert_eq!(replayed.status(), 303, "the old session cookie is refused");
    assert_eq!(location(&replayed), "/login");

    let response = app.login("admin", "wrong password").await;
    assert_eq!(response.status(), 401);
    let html = response.text().await.unwrap();
    assert!(html.contains("Wrong username or password"));
    assert!(
        html.contains("value=\"admin\""),
        "the username stays filled in"
    );

    let response = app.login("admin", PASSWORD).await;
    assert_eq!(response.status(), 303);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("berth_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP cannot carry a Secure cookie"
    );
    assert_eq!(app.get("/").await.status(), 200);
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled() {
    let app = TestApp::spawn().await;
    app.setup_admin().await;
    let (client, csrf) = login_form_client(&app).await;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        let response = client
            .post(app.at("/login"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("username", "admin"),
                ("password", "guess-guess"),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(statuses[10], 429, "the 11th attempt is refused");
    // Even the right password is refused while throttled.
    let response = client
        .post(app.at("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "admin"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
}

#[tokio::test]
async fn fifty_parallel_wrong_logins_check_at_most_ten_passwords_in_bounded_memory() {
    let app = TestApp::spawn().await;
    app.setup_admin().await;
    let (client, csrf) = login_form_client(&app).await;
    let mut attempts = tokio::task::JoinSet::new();
    for n in 0..50 {
        let client = client.clone();
        let url = app.at("/login");
        let csrf = csrf.clone();
        attempts.spawn(async move {
            client
                .post(url)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("username", "admin"),
                    ("password", &format!("wrong-guess-{n}")),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let statuses = attempts.join_all().await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 50, "{statuses:?}");
    assert!(
        checked <= 10,
        "{checked} passwords were checked: {statuses:?}"
    );
    assert!(checked >= 1, "{statuses:?}");
    // Peak resident memory of berth over its whole life so far.
    let peak_kib = common::peak_rss_kib(app.pid());
    assert!(peak_kib < 150 * 1024, "peak RSS {peak_kib} KiB");
}

#[tokio::test]
async fn the_admin_cli_creates_admins_and_resets_passwords() {
    let mut app = TestApp::spawn().await;
    let out = app.cli(
        &["admin", "create", "--username", "ops", "--password-stdin"],
        Some("first password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.login("ops", "first password").await.status(), 303);

    let out = app.cli(
        &["admin", "create", "--username", "ops2", "--password-stdin"],
        Some("short\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));

    let out = app.cli(
        &[
            "admin",
            "reset-password",
            "--username",
            "ops",
            "--password-stdin",
        ],
        Some("second password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The reset ended the session we had.
    assert_eq!(location(&app.get("/").await), "/login");
    assert_eq!(app.login("ops", "first password").await.status(), 401);
    assert_eq!(app.login("ops", "second password").await.status(), 303);

    let out = app.cli(
        &[
            "admin",
            "reset-password",
            "--username",
            "nobody",
            "--password-stdin",
        ],
        Some("whatever123\n"),
    );
    assert!(!out.status.success());
    assert!(app.stop(), "berth exits cleanly on SIGTERM");
}

#[tokio::test]
async fn version_and_healthz_answer() {
    let out = std::process::Command::new(common::BERTH)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("berth "));
    let app = TestApp::spawn().await;
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", app.pid())).unwrap();
    assert_eq!(comm.trim(), "berth", "ps and btop show berth");
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.get("/static/style.css").await.status(), 200);
}

#[tokio::test]
async fn berths_files_are_private_and_what_a_crashed_build_left_is_removed_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    app.setup_admin().await;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let data = app.data_dir.clone();
    assert_eq!(mode(&data), 0o700);
    for file in ["berth.db", "berth.db-wal", "berth.db-shm", "secret.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&data.join("builds")), 0o700);
    // A build cut off by a crash leaves its clone and its key file behind.
    let app = app
        .restart_on_same_data_after(|| {
            std::fs::create_dir_all(data.join("builds/42/src")).unwrap();
            std::fs::write(data.join("builds/42.key"), "PRIVATE KEY").unwrap();
            crate::set_mode(&data.join("berth.db"), 0o644);
        })
        .await;
    assert!(!app.data_dir.join("builds/42").exists());
    assert!(!app.data_dir.join("builds/42.key").exists());
    assert_eq!(mode(&app.data_dir.join("berth.db")), 0o600);
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A browser of its own (cookies kept, redirects not followed) that has
/// opened the login page, and the CSRF token that page gave it.
async fn login_form_client(app: &TestApp) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = client
        .get(app.at("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_token(&html);
    (client, csrf)
}

/// A browser that keeps no cookies itself: each request sends exactly the
/// cookies the test gives it, so a test can replay an old one.
struct Browser {
    app_url: String,
    client: reqwest::Client,
    /// The pre-session CSRF cookie (`berth_csrf=…`) and the login form's token.
    csrf_cookie: String,
    csrf: String,
}

impl Browser {
    async fn open(app: &TestApp) -> Browser {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = client.get(app.at("/login")).send().await.unwrap();
        let csrf_cookie = set_cookie(&page, "berth_csrf").expect("the login page sets its cookie");
        let csrf = csrf_token(&page.text().await.unwrap());
        Browser {
            app_url: app.url.clone(),
            client,
            csrf_cookie,
            csrf,
        }
    }

    /// Logs in as admin sending `session` (a `berth_session=…` pair) along;
    /// returns the new session cookie.
    async fn log_in(&self, session: Option<&str>) -> String {
        let cookies = [Some(self.csrf_cookie.as_str()), session]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
        let response = self
            .client
            .post(format!("{}/login", self.app_url))
            .header("cookie", cookies)
            .form(&[
                ("csrf", self.csrf.as_str()),
                ("username", "admin"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        set_cookie(&response, "berth_session").expect("a session cookie")
    }

    async fn get(&self, path: &str, session: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.app_url))
            .header("cookie", session)
            .send()
            .await
            .unwrap()
    }
}

/// The `name=value` part of the response's `Set-Cookie` for `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

#[tokio::test]
async fn a_login_gives_a_new_session_and_ends_the_one_the_browser_came_with() {
    let app = TestApp::spawn().await;
    app.setup_admin().await;
    let browser = Browser::open(&app).await;
    let first = browser.log_in(None).await;
    assert_eq!(browser.get("/", &first).await.status(), 200);

    let second = browser.log_in(Some(&first)).await;
    assert_ne!(first, second, "a new session id at every login");
    assert_eq!(browser.get("/", &second).await.status(), 200);
    let replayed = browser.get("/", &first).await;
    assert_eq!(
        replayed.status(),
        303,
        "the old session ended on the server"
    );
    assert_eq!(location(&replayed), "/login");
}
