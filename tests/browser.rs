//! berth in a real browser: Chromium driven through chromedriver (WebDriver)
//! with fantoccini, at the size of a 360 px phone, against the real berth
//! binary and the real Docker daemon. No mocks.
//!
//! The browser is Chromium from `BERTH_TEST_CHROMIUM` and the driver
//! chromedriver from `BERTH_TEST_CHROMEDRIVER` (both exported by tests/run),
//! falling back to `chromium` and `chromedriver` on PATH. Set
//! `BERTH_TEST_SCREENSHOTS=<dir>` to keep a screenshot of every step.
//!
//! On a failure the test saves a screenshot and the page source to the temp
//! dir, prints their paths, and prints the page's visible text.

mod common;

use std::fmt::Display;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{PASSWORD, TestApp};
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The width of a small phone: every page must be usable at this width.
const PHONE_WIDTH: u64 = 360;
const PHONE_HEIGHT: u64 = 800;
/// How long a page element may take to show up after a click or a navigation.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a new app may take to reach `running`.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_EVERY: Duration = Duration::from_millis(100);

#[tokio::test]
async fn a_newcomer_sets_up_berth_and_deploys_an_app_in_the_browser() {
    let started = Instant::now();
    // A catalogue template of the offline test image, from --templates-dir
    // (berth's own templates name images no test machine can pull).
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(templates.path().join("hello.yaml"), HELLO_TEMPLATE).unwrap();
    let mut app = TestApp::spawn_with(common::Options {
        extra_args: vec![
            "--templates-dir".into(),
            templates.path().display().to_string(),
        ],
        ..Default::default()
    })
    .await;
    let token = app
        .setup_token
        .clone()
        .expect("a fresh install prints a setup token");
    let project = app.unique_project("browser");
    let browser = Browser::launch().await;

    // The first visit goes to the setup page.
    browser.goto(&app.at("/")).await;
    browser.wait_for_path("/setup").await;
    browser.snapshot("01-setup").await;
    browser.assert_fits_phone().await;
    browser.fill("#f-token", &token).await;
    browser.fill("#f-username", "admin").await;
    browser.fill("#f-password", PASSWORD).await;
    browser.fill("#f-password_confirm", PASSWORD).await;
    browser
        .click("form[action='/setup'] button[type=submit]")
        .await;

    // Setup logs the admin in and shows the dashboard, with the engine reachable.
    browser.wait_for_path("/").await;
    browser.wait_for_text("#engine h2", "Docker engine").await;
    browser.wait_for_text("#engine", "Version").await;
    // The empty dashboard shows the getting-started checklist, nothing ticked
    // on a fresh install, each step linking to its page.
    browser
        .wait_for_text("#getting-started h2", "Getting started")
        .await;
    for (step, href) in [
        ("base-domain", "/settings#base-domain"),
        ("acme-email", "/certificates#acme"),
        ("dashboard-domain", "/settings#dashboard-domain"),
        ("first-app", "/#projects"),
    ] {
        let class = browser.attr(&format!("#check-{step}"), "class").await;
        browser
            .ensure(
                class.as_deref() == Some("todo"),
                format!("{step} is not ticked yet, got {class:?}"),
            )
            .await;
        let link = browser.attr(&format!("#check-{step} a"), "href").await;
        browser
            .ensure(
                link.as_deref().is_some_and(|l| l.ends_with(href)),
                format!("{step} links {href}, got {link:?}"),
            )
            .await;
    }
    browser.snapshot("02-dashboard").await;
    browser.assert_fits_phone().await;

    // Log out from the nav, then log in again.
    browser.click("nav form[action='/logout'] button").await;
    browser.wait_for_path("/login").await;
    browser.snapshot("03-login").await;
    browser.assert_fits_phone().await;
    browser.fill("#f-username", "admin").await;
    browser.fill("#f-password", PASSWORD).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser.wait_for_path("/").await;
    browser.wait_for_text("#engine h2", "Docker engine").await;

    // Create a project from the dashboard.
    browser.fill("#projects #f-name", &project).await;
    browser
        .click("form[action='/projects'] button[type=submit]")
        .await;
    browser.wait_for_path(&format!("/projects/{project}")).await;
    browser.wait_for_text("main h1", &project).await;
    browser.snapshot("04-project").await;
    browser.assert_fits_phone().await;

    // A typo in the app name: the error shows next to the name field and
    // nothing typed is lost.
    browser.fill("#new-app #f-name", "Bad_Name").await;
    browser.fill("#new-app #f-image", "berth-test/web").await;
    browser.fill("#new-app #f-port", "8080").await;
    browser.click("#new-app button[type=submit]").await;
    browser
        .wait_for_text("#new-app .field.has-error #e-name", "lowercase")
        .await;
    browser.snapshot("05-app-form-error").await;
    browser.assert_fits_phone().await;
    let described_by = browser.attr("#new-app #f-name", "aria-describedby").await;
    browser
        .ensure(
            described_by.as_deref() == Some("e-name"),
            "the name field points at its error",
        )
        .await;
    let image = browser.value("#new-app #f-image").await;
    browser
        .ensure(
            image == "berth-test/web",
            format!("the image field kept what was typed, got {image:?}"),
        )
        .await;
    let port = browser.value("#new-app #f-port").await;
    browser
        .ensure(
            port == "8080",
            format!("the port field kept what was typed, got {port:?}"),
        )
        .await;

    // Fix the name and deploy.
    browser.fill("#new-app #f-name", "web").await;
    browser.click("#new-app button[type=submit]").await;
    browser
        .wait_for_path(&format!("/projects/{project}/apps/web"))
        .await;
    browser.wait_for_status("running").await;
    browser.snapshot("06-app-running").await;
    let facts = browser.text("main .facts").await;
    browser
        .ensure(
            facts.contains("berth-test/web"),
            format!("the app page shows its image, got {facts:?}"),
        )
        .await;
    browser.assert_fits_phone().await;
    let address = browser
        .attr("#app-address", "href")
        .await
        .unwrap_or_default();
    browser
        .ensure(
            address.starts_with("http://"),
            format!("the app shows its local address, got {address:?}"),
        )
        .await;

    // Back on the dashboard, the first-app step is ticked; the others are not.
    browser.goto(&app.at("/")).await;
    browser
        .wait_for_text("#check-first-app", "1 app so far")
        .await;
    let ticked = browser.attr("#check-first-app", "class").await;
    browser
        .ensure(
            ticked.as_deref() == Some("done"),
            format!("the first-app step is ticked, got {ticked:?}"),
        )
        .await;
    let base = browser.attr("#check-base-domain", "class").await;
    browser
        .ensure(
            base.as_deref() == Some("todo"),
            format!("the base domain is still localhost, got {base:?}"),
        )
        .await;
    browser.snapshot("06b-checklist-ticked").await;

    // The address serves the app.
    browser.goto(&address).await;
    browser.wait_for_text("body", "berth-test-web").await;
    browser.snapshot("07-the-app").await;

    // The domains tab links the app's default host through berth's edge;
    // Chromium resolves *.localhost to loopback by itself.
    browser
        .goto(&app.at(&format!("/projects/{project}/apps/web/domains")))
        .await;
    browser.wait_for_text("#default-host", "default host").await;
    browser.snapshot("08-domains").await;
    browser.assert_fits_phone().await;
    let site = format!("http://web.{project}.localhost:{}/", app.edge_http_port());
    let linked = browser
        .attr("#default-host a", "href")
        .await
        .unwrap_or_default();
    browser
        .ensure(
            linked == site,
            format!("the default host links {site}, got {linked:?}"),
        )
        .await;
    browser.goto(&site).await;
    browser.wait_for_text("body", "berth-test-web").await;
    browser.snapshot("09-the-app-through-the-edge").await;

    // Environment: paste a .env, see the diff (secret masked), save and redeploy.
    browser
        .goto(&app.at(&format!("/projects/{project}/apps/web")))
        .await;
    browser.click("nav.tabs a[href$='/env']").await;
    browser
        .wait_for_path(&format!("/projects/{project}/apps/web/env"))
        .await;
    browser.click("#env-to-bulk").await;
    browser.wait_for_text("label[for=env-text]", ".env").await;
    let pasted = "# pasted from my laptop\nexport GREETING=\"hello world\"\nAPI_TOKEN=browser-secret-1\nURL=http://${HOST}/x\nHOST=example.internal\n";
    let leaving_warns = async || {
        let script = "var e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented;";
        browser.client.execute(script, Vec::new()).await.ok() == Some(Value::Bool(true))
    };
    browser
        .ensure(
            !leaving_warns().await,
            "no warning before anything is typed",
        )
        .await;
    browser.fill("#env-text", pasted).await;
    browser
        .ensure(
            leaving_warns().await,
            "leaving with unsaved changes warns (web/static/env.js)",
        )
        .await;
    browser.snapshot("10-env-pasted").await;
    browser.assert_fits_phone().await;
    browser.click("#env-review").await;
    browser
        .wait_for_path(&format!("/projects/{project}/apps/web/env/review"))
        .await;
    let diff = browser.wait_for_text("#env-diff", "GREETING").await;
    browser
        .ensure(
            diff.contains("API_TOKEN")
                && diff.contains("HOST")
                && !diff.contains("browser-secret-1"),
            format!("the diff lists every key with the secret masked, got {diff:?}"),
        )
        .await;
    browser.snapshot("11-env-review").await;
    browser.assert_fits_phone().await;
    browser.click("#env-save-redeploy").await;
    // Saving redeploys: the browser lands on the deployment's page.
    browser.wait_for_deployment("succeeded").await;
    let (containers, _) = common::docker_objects_of(&project);
    let inspect = Command::new("docker")
        .args(["inspect", "-f", "{{json .Config.Env}}", &containers[0]])
        .output()
        .expect("docker inspect");
    let env = String::from_utf8_lossy(&inspect.stdout).into_owned();
    browser
        .ensure(
            env.contains("\"GREETING=hello world\"")
                && env.contains("\"URL=http://example.internal/x\"")
                && env.contains("\"API_TOKEN=browser-secret-1\""),
            format!("the redeployed container has the saved environment, got {env}"),
        )
        .await;
    browser
        .goto(&app.at(&format!("/projects/{project}/apps/web/env")))
        .await;
    browser.wait_for_text("main h1", "Environment").await;
    browser.snapshot("12-env-saved").await;
    browser.assert_fits_phone().await;

    // Deployments: redeploy from the UI and watch the log arrive live (server-sent events).
    browser
        .goto(&app.at(&format!("/projects/{project}/apps/web/deployments")))
        .await;
    browser.wait_for_text("main h1", "Deployments").await;
    browser.click("form[action$='/deploy'] button").await;
    browser
        .wait_for_path(&format!("/projects/{project}/apps/web/deployments/3"))
        .await;
    browser
        .wait_for_text("#deploy-log", "deployment #3 succeeded")
        .await;
    browser
        .wait_for_text("#deployment-status", "succeeded")
        .await;
    let ended = browser.attr("#deploy-log", "data-ended").await;
    browser
        .ensure(
            ended.as_deref() == Some("succeeded"),
            format!("the log was streamed live to its end (data-ended = {ended:?})"),
        )
        .await;
    browser.snapshot("13-deployment-log").await;
    browser.assert_fits_phone().await;

    // Storage: give the app a volume from its page, redeploy, and find the
    // volume on the Storage page with its owner and the size Docker measured.
    let app_page = format!("/projects/{project}/apps/web");
    let docker_volume = format!("berth_{project}_web_data");
    browser.goto(&app.at(&app_page)).await;
    browser.wait_for_status("running").await;
    browser.wait_for_text("#storage", "No volumes").await;
    browser.click("#storage details > summary").await;
    browser.fill("#add-volume #f-target", "/data").await;
    browser.click("#add-volume button[type=submit]").await;
    browser.wait_for_path(&app_page).await;
    let mount = browser.row_cells("#volumes", "data").await;
    browser
        .ensure(
            mount.get(1).map(String::as_str) == Some("/data")
                && mount.get(2).map(String::as_str) == Some(docker_volume.as_str()),
            format!("the app lists the volume data at /data from {docker_volume}, got {mount:?}"),
        )
        .await;
    browser.snapshot("14-volume-added").await;
    browser.assert_fits_phone().await;

    // The volume is mounted from the next deploy: redeploy from the app page.
    browser
        .click(&format!("form[action='{app_page}/redeploy'] button"))
        .await;
    browser.wait_for_deployment("succeeded").await;
    browser
        .wait_for_text(
            "#deploy-log",
            &format!("mounting volume {docker_volume} at /data"),
        )
        .await;
    browser.snapshot("15-redeployed-with-volume").await;
    browser.assert_fits_phone().await;

    // The Storage page, from the nav, lists the volume with its owner and size.
    browser.click("nav a[href='/storage']").await;
    browser.wait_for_path("/storage").await;
    browser.wait_for_text("main h1", "Storage").await;
    let row = browser.row_cells("#storage-volumes", &docker_volume).await;
    browser
        .ensure(
            row.get(1).map(String::as_str) == Some(format!("{project}/web at /data").as_str()),
            format!("the volume's owner is {project}/web at /data, got {row:?}"),
        )
        .await;
    let size = row.get(2).cloned().unwrap_or_default();
    browser
        .ensure(
            is_human_size(&size),
            format!("the volume's size as Docker measures it, got {size:?} (row {row:?})"),
        )
        .await;
    browser
        .ensure(
            row.get(3).map(String::as_str) == Some("yes"),
            format!("the volume is in use by the running app, got {row:?}"),
        )
        .await;
    browser.snapshot("16-storage").await;
    browser.assert_fits_phone().await;

    // The catalogue: find the template by a word of its description, install
    // it into the project after a preview, and open its route through the edge.
    browser
        .goto(&app.at(&format!("/projects/{project}/catalogue")))
        .await;
    browser.fill("#f-q", "greets").await;
    browser.click("#catalogue-search button").await;
    browser.wait_for_text("#templates", "Hello page").await;
    browser
        .ensure(
            browser
                .text("#templates")
                .await
                .lines()
                .all(|l| !l.contains("Gitea")),
            "the search leaves out templates that do not match",
        )
        .await;
    browser.snapshot("17-catalogue").await;
    browser.assert_fits_phone().await;
    browser
        .click(&format!(
            "#template-hello a[href='/projects/{project}/install/hello']"
        ))
        .await;
    browser
        .wait_for_path(&format!("/projects/{project}/install/hello"))
        .await;
    browser.fill("#f-name", "hello").await;
    browser.click("button[value=preview]").await;
    browser
        .wait_for_text("#plan-services", "berth-test/web")
        .await;
    browser
        .wait_for_text("#plan-routes", &format!("hello.{project}.localhost"))
        .await;
    browser.snapshot("18-install-preview").await;
    browser.assert_fits_phone().await;
    browser.click("button[value=install]").await;
    let stack_page = format!("/projects/{project}/stacks/hello");
    browser.wait_for_path(&stack_page).await;
    browser
        .poll(
            "see the stack running",
            DEPLOY_TIMEOUT,
            async |c: &Client| {
                c.refresh().await.map_err(seen)?;
                let status = text_of(c, "#stack-status").await?;
                if status == "running" {
                    Ok(())
                } else {
                    Err(format!("it is {status:?}"))
                }
            },
        )
        .await;
    browser.snapshot("19-stack").await;
    browser.assert_fits_phone().await;
    let url = browser
        .attr("#stack-routes a", "href")
        .await
        .unwrap_or_default();
    browser
        .ensure(
            url == app.edge_url(&format!("hello.{project}.localhost"), "/"),
            format!("the stack links its route through the edge, got {url:?}"),
        )
        .await;
    // Chromium resolves *.localhost to this machine: the edge serves the page.
    browser.goto(&url).await;
    browser.wait_for_text("h1", "berth-test-web").await;
    browser.snapshot("20-stack-route").await;

    browser.close().await;
    println!("browser test took {:.1?}", started.elapsed());
}

/// A berth template of the offline web image: one service, one route.
const HELLO_TEMPLATE: &str = r#"metadata:
  name: Hello page
  description: A static page that greets whoever opens it.
  category: test
  service: web
  port: 8080
  version: "1"
routes:
  - service: web
    port: 8080
compose:
  services:
    web:
      image: berth-test/web:latest
"#;

/// A headless Chromium at phone size, with its chromedriver and a fresh profile.
/// Fields drop in order: the client, then chromedriver (with Chromium), then the profile.
struct Browser {
    client: Client,
    driver: Chromedriver,
    profile: tempfile::TempDir,
}

impl Browser {
    async fn launch() -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("berth-chromium-")
            .tempdir()
            .expect("temp dir for the browser profile");
        let driver = Chromedriver::start(&profile.path().join("chromedriver.log")).await;
        let mut options = json!({
            // Chrome keeps windows at least 500 px wide, so the phone is emulated:
            // a 360 px viewport that honours `<meta name="viewport">` like a phone does.
            "mobileEmulation": {
                "deviceMetrics": { "width": PHONE_WIDTH, "height": PHONE_HEIGHT, "pixelRatio": 1.0, "mobile": true, "touch": true },
            },
            "args": [
                "--no-sandbox",
                "--headless=new",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-crash-reporter",
                format!("--window-size={PHONE_WIDTH},{PHONE_HEIGHT}"),
                format!("--user-data-dir={}", profile.path().join("user-data").display()),
            ],
        });
        if let Some(binary) = chromium() {
            options["binary"] = Value::String(binary.display().to_string());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start Chromium: {e}\n{}",
                    driver.log_tail()
                )
            });
        Browser {
            client,
            driver,
            profile,
        }
    }

    async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(format!("could not open {url}: {e}")).await;
        }
    }

    /// Types `text` into the field at `selector`, replacing what was there.
    async fn fill(&self, selector: &str, text: &str) {
        self.poll(
            &format!("fill {selector} with {text:?}"),
            STEP_TIMEOUT,
            async |c: &Client| {
                let field = c.find(Locator::Css(selector)).await.map_err(seen)?;
                field.clear().await.map_err(seen)?;
                field.send_keys(text).await.map_err(seen)?;
                let value = field.prop("value").await.map_err(seen)?.unwrap_or_default();
                if value == text {
                    Ok(())
                } else {
                    Err(format!("the field holds {value:?}"))
                }
            },
        )
        .await
    }

    async fn click(&self, selector: &str) {
        self.poll(
            &format!("click {selector}"),
            STEP_TIMEOUT,
            async |c: &Client| {
                c.find(Locator::Css(selector))
                    .await
                    .map_err(seen)?
                    .click()
                    .await
                    .map_err(seen)
            },
        )
        .await
    }

    /// The visible text of the element at `selector`, once it is there.
    async fn text(&self, selector: &str) -> String {
        self.poll(
            &format!("read {selector}"),
            STEP_TIMEOUT,
            async |c: &Client| text_of(c, selector).await,
        )
        .await
    }

    async fn value(&self, selector: &str) -> String {
        self.poll(
            &format!("read the value of {selector}"),
            STEP_TIMEOUT,
            async |c: &Client| {
                Ok(c.find(Locator::Css(selector))
                    .await
                    .map_err(seen)?
                    .prop("value")
                    .await
                    .map_err(seen)?
                    .unwrap_or_default())
            },
        )
        .await
    }

    async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.poll(
            &format!("read {name} of {selector}"),
            STEP_TIMEOUT,
            async |c: &Client| {
                c.find(Locator::Css(selector))
                    .await
                    .map_err(seen)?
                    .attr(name)
                    .await
                    .map_err(seen)
            },
        )
        .await
    }

    /// Waits until the element at `selector` contains `text`; returns its whole text.
    async fn wait_for_text(&self, selector: &str, text: &str) -> String {
        self.poll(
            &format!("see {text:?} in {selector}"),
            STEP_TIMEOUT,
            async |c: &Client| {
                let shown = text_of(c, selector).await?;
                if shown.contains(text) {
                    Ok(shown)
                } else {
                    Err(format!("it shows {shown:?}"))
                }
            },
        )
        .await
    }

    /// Waits until the browser is on `path` (any query string allowed).
    async fn wait_for_path(&self, path: &str) {
        self.poll(
            &format!("be on {path}"),
            STEP_TIMEOUT,
            async |c: &Client| {
                let url = c.current_url().await.map_err(seen)?;
                if url.path() == path {
                    Ok(())
                } else {
                    Err(format!("on {url}"))
                }
            },
        )
        .await
    }

    /// Right after a deploy button: waits to be on a deployment page and for
    /// its status badge to settle on `expected` (the log streams live).
    async fn wait_for_deployment(&self, expected: &str) {
        const SETTLED: [&str; 3] = ["succeeded", "failed", "cancelled"];
        let status = self
            .poll(
                &format!("see the deployment {expected}"),
                DEPLOY_TIMEOUT,
                async |c: &Client| {
                    let url = c.current_url().await.map_err(seen)?;
                    if !url.path().contains("/deployments/") {
                        return Err(format!("on {url}"));
                    }
                    let status = text_of(c, "#deployment-status").await?;
                    if status == expected || SETTLED.contains(&status.as_str()) {
                        Ok(status)
                    } else {
                        Err(format!("it is {status}"))
                    }
                },
            )
            .await;
        if status != expected {
            let reason = text_of(&self.client, "#deployment-reason")
                .await
                .unwrap_or_default();
            self.fail(format!("the deployment {status}, not {expected}: {reason}"))
                .await;
        }
    }

    /// The visible text of each cell of the body row of the table at `table`
    /// whose first cell starts with `first`, once there is one.
    async fn row_cells(&self, table: &str, first: &str) -> Vec<String> {
        self.poll(
            &format!("find the row {first:?} in {table}"),
            STEP_TIMEOUT,
            async |c: &Client| {
                let rows = c
                    .find_all(Locator::Css(&format!("{table} tbody tr")))
                    .await
                    .map_err(seen)?;
                let mut seen_rows = Vec::new();
                for row in rows {
                    let mut cells = Vec::new();
                    for cell in row.find_all(Locator::Css("td")).await.map_err(seen)? {
                        cells.push(cell.text().await.map_err(seen)?.trim().to_owned());
                    }
                    if cells.first().is_some_and(|text| text.starts_with(first)) {
                        return Ok(cells);
                    }
                    seen_rows.push(cells);
                }
                Err(format!("the rows are {seen_rows:?}"))
            },
        )
        .await
    }

    /// On an app page, waits until the status badge reads `expected`; the page
    /// refreshes itself while the status is transitional.
    async fn wait_for_status(&self, expected: &str) {
        const SETTLED: [&str; 4] = ["running", "stopped", "crashed", "failed"];
        let status = self
            .poll(
                &format!("see the app {expected}"),
                DEPLOY_TIMEOUT,
                async |c: &Client| {
                    let status = text_of(c, "#app-status").await?;
                    if status == expected || SETTLED.contains(&status.as_str()) {
                        Ok(status)
                    } else {
                        Err(format!("it is {status}"))
                    }
                },
            )
            .await;
        if status != expected {
            let detail = self.client.find(Locator::Css("#app-detail")).await;
            let detail = match detail {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            self.fail(format!("the app became {status}, not {expected}: {detail}"))
                .await;
        }
    }

    /// The page lays out at phone width and does not scroll sideways.
    async fn assert_fits_phone(&self) {
        let (scroll_width, inner_width) = self.widths().await;
        self.ensure(
            inner_width == PHONE_WIDTH,
            format!("the page to lay out {PHONE_WIDTH} px wide, not {inner_width} px (is <meta name=\"viewport\"> missing?)"),
        )
        .await;
        self.ensure(
            scroll_width <= inner_width,
            format!("the page not to scroll sideways, but it is {scroll_width} px wide in a {inner_width} px window"),
        )
        .await;
    }

    async fn widths(&self) -> (u64, u64) {
        let script = "return [document.documentElement.scrollWidth, window.innerWidth];";
        let widths = match self.client.execute(script, Vec::new()).await {
            Ok(value) => value,
            Err(e) => self.fail(format!("could not measure the page: {e}")).await,
        };
        match (widths[0].as_u64(), widths[1].as_u64()) {
            (Some(scroll), Some(inner)) => (scroll, inner),
            _ => self.fail(format!("unexpected page widths {widths}")).await,
        }
    }

    /// Saves a screenshot of this step to `$BERTH_TEST_SCREENSHOTS`, when set.
    async fn snapshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("BERTH_TEST_SCREENSHOTS") else {
            return;
        };
        let png = match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => {
                self.fail(format!("could not take screenshot {name}: {e}"))
                    .await
            }
        };
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png)
            .expect("screenshot written");
    }

    async fn ensure(&self, ok: bool, what: impl Display) {
        if !ok {
            self.fail(format!("expected {what}")).await;
        }
    }

    /// Retries `attempt` until it succeeds or `timeout` passes; failing attempts
    /// (element not there yet, stale after a reload, wrong text) say what they saw.
    async fn poll<T>(
        &self,
        what: &str,
        timeout: Duration,
        attempt: impl AsyncFn(&Client) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            match attempt(&self.client).await {
                Ok(value) => return value,
                Err(last) if Instant::now() >= deadline => {
                    self.fail(format!("could not {what} within {timeout:?}; last: {last}"))
                        .await;
                }
                Err(_) => tokio::time::sleep(POLL_EVERY).await,
            }
        }
    }

    /// Panics with the page's URL and visible text, and paths to a screenshot
    /// and the page source saved to the temp dir.
    async fn fail(&self, message: String) -> ! {
        let stem = std::env::temp_dir().join(format!("berth-browser-{}", common::hex_id()));
        let url = match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("(unknown: {e})"),
        };
        let screenshot = match self.client.screenshot().await {
            Ok(png) => save(&stem.with_extension("png"), &png),
            Err(e) => format!("(no screenshot: {e})"),
        };
        let source = match self.client.source().await {
            Ok(html) => save(&stem.with_extension("html"), html.as_bytes()),
            Err(e) => format!("(no page source: {e})"),
        };
        let text = text_of(&self.client, "body")
            .await
            .unwrap_or_else(|e| format!("(no page text: {e})"));
        panic!(
            "{message}\n  page: {url}\n  screenshot: {screenshot}\n  source: {source}\n  page text:\n{text}\n"
        );
    }

    /// Ends the browser session (Chromium quits), then stops chromedriver.
    async fn close(self) {
        let Browser {
            client,
            driver,
            profile,
        } = self;
        client.close().await.expect("the browser session closes");
        drop(driver);
        drop(profile);
    }
}

/// chromedriver on a free local port, killed (with the Chromium it started) on drop.
struct Chromedriver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Chromedriver {
    async fn start(log: &Path) -> Chromedriver {
        let program = env_or("BERTH_TEST_CHROMEDRIVER", "chromedriver");
        let port = free_port();
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that drop can end Chromium with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e} (install chromium-driver or set BERTH_TEST_CHROMEDRIVER)"));
        let mut driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        };
        driver.wait_until_ready().await;
        driver
    }

    async fn wait_until_ready(&mut self) {
        let status = format!("{}/status", self.url);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = http.get(&status).send().await
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == Value::Bool(true)
            {
                return;
            }
            if let Some(exit) = self.child.try_wait().expect("chromedriver status") {
                panic!(
                    "chromedriver exited with {exit} before it was ready\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready within 20 s\n{}",
                self.log_tail()
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "chromedriver log (last lines):\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any Chromium left over after a failure.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Chromium binary to drive, if one is named or on PATH; otherwise
/// chromedriver looks for one itself.
fn chromium() -> Option<PathBuf> {
    if let Some(named) = std::env::var_os("BERTH_TEST_CHROMIUM").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(named));
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
}

fn env_or(var: &str, fallback: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free local port")
        .local_addr()
        .unwrap()
        .port()
}

async fn text_of(client: &Client, selector: &str) -> Result<String, String> {
    let element = client.find(Locator::Css(selector)).await.map_err(seen)?;
    Ok(element.text().await.map_err(seen)?.trim().to_owned())
}

/// A size as berth shows one ("0 B", "4.1 KB"), not "unknown".
fn is_human_size(text: &str) -> bool {
    let Some((number, unit)) = text.split_once(' ') else {
        return false;
    };
    ["B", "KB", "MB", "GB", "TB"].contains(&unit) && number.parse::<f64>().is_ok()
}

/// A WebDriver error as one polling attempt saw it.
fn seen(error: CmdError) -> String {
    error.to_string()
}

fn save(path: &Path, bytes: &[u8]) -> String {
    match std::fs::write(path, bytes) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(could not write {}: {e})", path.display()),
    }
}
