//! The test harness: starts the real `berth` binary on a random port against
//! a fresh data dir and the real Docker daemon, with typed helpers for the
//! HTML forms and the API, and a guard that removes every Docker object the
//! test's projects left behind.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod git;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");
pub const PASSWORD: &str = "correct horse battery";

/// A running berth.
pub struct TestApp {
    pub url: String,
    pub setup_token: Option<String>,
    pub data_dir: PathBuf,
    /// The edge's listeners as berth printed them: `http://127.0.0.1:PORT`, `https://127.0.0.1:PORT`.
    pub edge_http: String,
    pub edge_https: String,
    /// HTTP client with a cookie jar that never follows redirects, so tests see them.
    pub http: reqwest::Client,
    /// What berth printed on stdout after its dashboard line.
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
    projects: Vec<String>,
}

#[derive(Default)]
pub struct Options {
    pub docker_host: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Fixed edge addresses (e.g. `127.0.0.1:5002` for an ACME server that
    /// must know the port before berth starts); a free port by default.
    pub http_listen: Option<String>,
    pub https_listen: Option<String>,
    /// The ACME directory (`--acme-directory`); by default one nothing listens on.
    pub acme_directory: Option<String>,
    /// More `berth serve` arguments, e.g. `--acme-ca-bundle FILE`.
    pub extra_args: Vec<String>,
    /// Start berth with this open-file limit (soft and hard), via prlimit(1).
    pub open_files: Option<u64>,
}

impl Options {
    /// berth on the ports Pebble validates, trusting Pebble's HTTPS root
    /// (`ca_bundle`), with the certificate task looking every second.
    pub fn for_pebble(http_port: u16, tls_port: u16, ca_bundle: &Path) -> Options {
        Options {
            http_listen: Some(format!("127.0.0.1:{http_port}")),
            https_listen: Some(format!("127.0.0.1:{tls_port}")),
            extra_args: vec![
                "--acme-ca-bundle".into(),
                ca_bundle.display().to_string(),
                "--acme-check-interval-secs".into(),
                "1".into(),
            ],
            ..Options::default()
        }
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> TestApp {
        let (tmp, data_dir) = match options.data_dir {
            Some(dir) => (None, dir),
            None => {
                let tmp = tempfile::tempdir().expect("temp dir");
                let dir = tmp.path().join("data");
                (Some(tmp), dir)
            }
        };
        let mut cmd = match options.open_files {
            Some(n) => {
                // prlimit execs berth, so the pid stays berth's.
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={n}:{n}")).arg("--").arg(BERTH);
                cmd
            }
            None => Command::new(BERTH),
        };
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0"])
            // The tests' git repositories are temporary directories.
            .arg("--git-file-root")
            .arg(std::env::temp_dir())
            // Tests run in parallel: each berth's edge gets free ports unless told otherwise.
            .args([
                "--http-listen",
                options.http_listen.as_deref().unwrap_or("127.0.0.1:0"),
            ])
            .args([
                "--https-listen",
                options.https_listen.as_deref().unwrap_or("127.0.0.1:0"),
            ])
            // Domains default to ACME: tests must never reach Let's Encrypt. Nothing
            // listens on port 9, so attempts fail at once; ACME tests set Pebble's directory.
            .args([
                "--acme-directory",
                options
                    .acme_directory
                    .as_deref()
                    .unwrap_or("https://127.0.0.1:9/directory"),
            ])
            // Everything this berth creates carries the label tests/run's cleanup check looks for.
            .args([
                "--object-label",
                &format!("berth.test=e2e-{}", std::process::id()),
            ])
            .env(
                "RUST_LOG",
                std::env::var("BERTH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(host) = &options.docker_host {
            cmd.args(["--docker-host", host]);
        }
        cmd.args(&options.extra_args);
        let mut child = cmd.spawn().expect("berth starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut url = None;
        let mut setup_token = None;
        let mut edge_http = None;
        let mut edge_https = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        // berth prints the setup token (on a fresh install) before the dashboard line, which comes last.
        while url.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("berth prints its dashboard address within 30 s");
            if let Some(u) = line.strip_prefix("dashboard: ") {
                url = Some(u.to_owned());
            } else if let Some(t) = line.strip_prefix("setup token: ") {
                setup_token = Some(t.to_owned());
            } else if let Some(a) = line.strip_prefix("edge http: ") {
                edge_http = Some(a.to_owned());
            } else if let Some(a) = line.strip_prefix("edge https: ") {
                edge_https = Some(a.to_owned());
            }
        }
        // Keep reading stdout in the background so berth never blocks on it;
        // what it prints later is kept for `wait_for_output`.
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        std::thread::spawn({
            let output = output.clone();
            move || {
                while let Ok(line) = rx.recv() {
                    output.lock().unwrap().push(line);
                }
            }
        });
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        TestApp {
            url: url.expect("dashboard url"),
            setup_token,
            data_dir,
            edge_http: edge_http
                .expect("berth prints its edge http address before the dashboard line"),
            edge_https: edge_https
                .expect("berth prints its edge https address before the dashboard line"),
            http,
            output,
            child: Some(child),
            _tmp: tmp,
            projects: Vec::new(),
        }
    }

    /// The first line berth printed after its dashboard line that starts
    /// with `prefix`, waiting up to `max` for it.
    pub async fn wait_for_output(&self, prefix: &str, max: Duration) -> String {
        let deadline = Instant::now() + max;
        loop {
            let found = self
                .output
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "berth never printed a line starting with {prefix:?}; it printed {:?}",
                self.output.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The edge's plain HTTP port.
    pub fn edge_http_port(&self) -> u16 {
        port_of(&self.edge_http)
    }

    pub fn edge_https_port(&self) -> u16 {
        port_of(&self.edge_https)
    }

    /// GET through the edge's HTTP listener as if `host` resolved to 127.0.0.1
    /// (a plain client: no cookies, no redirects followed).
    pub async fn get_via_edge(&self, host: &str, path: &str) -> reqwest::Response {
        self.edge_client(&[host])
            .get(self.edge_url(host, path))
            .send()
            .await
            .expect("the edge answers")
    }

    /// A plain client (no cookies, no redirects followed, 30 s timeout) that
    /// reaches the edge's HTTP listener for each of `hosts`; see [`TestApp::edge_url`].
    pub fn edge_client(&self, hosts: &[&str]) -> reqwest::Client {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.edge_http_port()));
        hosts
            .iter()
            .fold(reqwest::Client::builder(), |b, host| b.resolve(host, addr))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// `http://{host}:{edge port}{path}`, for a client from [`TestApp::edge_client`].
    pub fn edge_url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.edge_http_port())
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// One call to the JSON API with a bearer token: the status and the
    /// body (`Null` when the body is not JSON).
    pub async fn api(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.http.request(method, self.at(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("the API's body arrives");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.at(path)).send().await.expect("GET")
    }

    pub async fn get_html(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    /// Posts a form, taking the CSRF token from the page at `form_page` first.
    pub async fn post_form(
        &self,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let html = self.get_html(form_page).await;
        let csrf = csrf_token(&html);
        let mut all: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.http
            .post(self.at(action))
            .form(&all)
            .send()
            .await
            .expect("POST")
    }

    /// Setup with the printed token; leaves the client logged in.
    pub async fn setup_admin(&self) {
        let token = self
            .setup_token
            .clone()
            .expect("fresh install prints a setup token");
        let response = self
            .post_form(
                "/setup",
                "/setup",
                &[
                    ("token", &token),
                    ("username", "admin"),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ],
            )
            .await;
        assert_eq!(response.status(), 303, "setup redirects to the dashboard");
        assert_eq!(location(&response), "/");
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_form(
            "/login",
            "/login",
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// A project name unique to this test; its Docker objects are removed on drop.
    pub fn unique_project(&mut self, hint: &str) -> String {
        let name = format!("t{}-{}", hint, &hex_id()[..8]);
        self.projects.push(name.clone());
        name
    }

    pub async fn create_project(&mut self, hint: &str) -> String {
        let name = self.unique_project(hint);
        let response = self.post_form("/", "/projects", &[("name", &name)]).await;
        assert_eq!(response.status(), 303, "project {name} created");
        name
    }

    /// A project for this test (see [`TestApp::create_project`]) with the
    /// app `web` created in it from berth-test/web on port 8080; the project's name.
    pub async fn create_web_app(&mut self, hint: &str) -> String {
        let project = self.create_project(hint).await;
        let response = self
            .create_app(&project, "web", "berth-test/web", "8080", "")
            .await;
        assert_eq!(response.status(), 303, "app web created in {project}");
        project
    }

    pub async fn create_app(
        &self,
        project: &str,
        name: &str,
        image: &str,
        port: &str,
        command: &str,
    ) -> reqwest::Response {
        let page = format!("/projects/{project}");
        let action = format!("/projects/{project}/apps");
        self.post_form(
            &page,
            &action,
            &[
                ("name", name),
                ("image", image),
                ("port", port),
                ("command", command),
            ],
        )
        .await
    }

    /// The app's JSON as the API shows it, via an API token made with the CLI.
    pub async fn api_get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.at(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("API GET")
    }

    /// Polls the app page until its status badge reads `status`.
    pub async fn wait_for_status(&self, project: &str, app: &str, status: &str) -> String {
        let path = format!("/projects/{project}/apps/{app}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let html = self.get_html(&path).await;
            let shown = app_status(&html);
            if shown == status {
                return html;
            }
            assert!(
                Instant::now() < deadline,
                "app {project}/{app} never became {status}; last page:\n{html}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Deploys answer at once; this polls the app's deployments page until
    /// none is queued or running, and returns the newest one's status.
    pub async fn wait_for_deployments(&self, project: &str, app: &str) -> String {
        let path = format!("/projects/{project}/apps/{app}/deployments");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let html = self.get_html(&path).await;
            if !html.contains("deploy-queued") && !html.contains("deploy-running") {
                let marker = "class=\"status deploy-";
                let newest = html
                    .find(marker)
                    .map(|i| {
                        let rest = &html[i + marker.len()..];
                        rest[..rest.find('"').unwrap_or(0)].to_owned()
                    })
                    .unwrap_or_default();
                return newest;
            }
            assert!(
                Instant::now() < deadline,
                "deployments of {project}/{app} never ended; last page:\n{html}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs a berth CLI command against this app's data dir.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        run_cli(&self.data_dir, args, stdin)
    }

    /// The berth process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("berth is running").id()
    }

    /// Kills berth without warning (SIGKILL), as a crash or an OOM kill would;
    /// the data dir and Docker objects stay for the next start.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Kills berth (SIGKILL), runs `meanwhile`, and starts a new berth on the same data dir.
    pub async fn restart_on_same_data_after(mut self, meanwhile: impl FnOnce()) -> TestApp {
        self.kill9();
        meanwhile();
        let tmp = self._tmp.take();
        let projects = std::mem::take(&mut self.projects);
        let data_dir = self.data_dir.clone();
        drop(self);
        let mut next = TestApp::spawn_with(Options {
            data_dir: Some(data_dir),
            ..Options::default()
        })
        .await;
        next._tmp = tmp;
        next.projects = projects;
        next
    }

    /// Stops berth with SIGTERM and waits for it; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(mut child) => {
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    if let Some(status) = child.try_wait().unwrap() {
                        return status.success();
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            None => true,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
        for project in &self.projects {
            remove_project_objects(project);
        }
    }
}

/// The JSON API with a token made by the CLI. The methods without an app
/// name act on the app `web`.
pub struct Api {
    pub token: String,
}

impl Api {
    pub fn new(app: &TestApp) -> Api {
        let out = app.cli(
            &["token", "create", "--name", &format!("t{}", &hex_id()[..6])],
            None,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Api {
            token: String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        }
    }

    pub async fn send(
        &self,
        app: &TestApp,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        app.api(&self.token, method, path, body).await
    }

    pub async fn get(&self, app: &TestApp, path: &str) -> serde_json::Value {
        let (status, body) = self.send(app, reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(
        &self,
        app: &TestApp,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.send(app, reqwest::Method::POST, path, Some(body))
            .await
    }

    /// Polls deployment `number` of the app `web` until it is no longer queued or running.
    pub async fn wait_for_end(
        &self,
        app: &TestApp,
        project: &str,
        number: i64,
    ) -> serde_json::Value {
        self.wait_for_deployment(app, project, "web", number).await
    }

    /// Polls the deployment until it is no longer queued or running. It may
    /// not exist yet: an app's first deployment is recorded just after the
    /// app is created.
    pub async fn wait_for_deployment(
        &self,
        app: &TestApp,
        project: &str,
        name: &str,
        number: i64,
    ) -> serde_json::Value {
        let path = format!("/api/v1/projects/{project}/apps/{name}/deployments/{number}");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, dep) = self.send(app, reqwest::Method::GET, &path, None).await;
            assert!(status == 200 || status == 404, "GET {path}: {status} {dep}");
            if status == 200 && !matches!(dep["status"].as_str(), Some("queued" | "running")) {
                return dep;
            }
            assert!(
                Instant::now() < deadline,
                "deployment #{number} of {name} never ended: {dep}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Deletes an app through the API; the status.
    pub async fn delete_app(&self, app: &TestApp, project: &str, name: &str) -> u16 {
        let path = format!("/api/v1/projects/{project}/apps/{name}");
        self.send(app, reqwest::Method::DELETE, &path, None).await.0
    }

    /// Queues a deployment of the app `web` from its source; its number.
    pub async fn deploy(&self, app: &TestApp, project: &str) -> i64 {
        self.start(app, project, "web", "deploy").await
    }

    /// `POST /api/v1/projects/{project}/apps/{name}/{action}` (`deploy`,
    /// `redeploy`, `deployments/N/rollback`), which answers 202 with the
    /// deployment queued; its number.
    pub async fn start(&self, app: &TestApp, project: &str, name: &str, action: &str) -> i64 {
        let path = format!("/api/v1/projects/{project}/apps/{name}/{action}");
        let (status, dep) = self.post(app, &path, serde_json::json!({})).await;
        assert_eq!(status, 202, "POST {path}: {dep}");
        dep["number"].as_i64().unwrap()
    }

    /// Saves deploy settings of the app `web`.
    pub async fn settings(&self, app: &TestApp, project: &str, settings: serde_json::Value) {
        self.settings_of(app, project, "web", settings).await;
    }

    pub async fn settings_of(
        &self,
        app: &TestApp,
        project: &str,
        name: &str,
        settings: serde_json::Value,
    ) {
        let path = format!("/api/v1/projects/{project}/apps/{name}/deploy-settings");
        let (status, body) = self.post(app, &path, settings).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// A deployment's log (from the API) as one text.
pub fn deployment_log(dep: &serde_json::Value) -> String {
    dep["log"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

pub fn run_cli(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(BERTH)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("berth cli");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Runs a docker CLI listing and returns its lines.
pub fn docker_list(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Runs the docker CLI, which must succeed; its trimmed stdout.
pub fn docker_out(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker cli");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `State.StartedAt` of a container: it changes each time the container starts.
pub fn started_at(container: &str) -> String {
    docker_out(&["inspect", "-f", "{{.State.StartedAt}}", container])
}

/// Containers and the network berth made for `project`, found by label.
pub fn docker_objects_of(project: &str) -> (Vec<String>, Vec<String>) {
    let filter = format!("label=berth.project={project}");
    (
        docker_list(&["ps", "-aq", "--filter", &filter]),
        docker_list(&["network", "ls", "-q", "--filter", &filter]),
    )
}

fn remove_project_objects(project: &str) {
    let (containers, networks) = docker_objects_of(project);
    for id in containers {
        let _ = Command::new("docker").args(["rm", "-fv", &id]).output();
    }
    for id in networks {
        let _ = Command::new("docker").args(["network", "rm", &id]).output();
    }
    // berth keeps volumes when it removes containers; the test's go here.
    let filter = format!("label=berth.project={project}");
    for name in docker_list(&["volume", "ls", "-q", "--filter", &filter]) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &name])
            .output();
    }
    for id in docker_list(&["images", "-q", "--filter", &filter]) {
        let _ = Command::new("docker").args(["rmi", "-f", &id]).output();
    }
}

pub fn csrf_token(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("page has a CSRF field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The status badge on an app page.
pub fn app_status(html: &str) -> String {
    let marker = "id=\"app-status\" class=\"status status-";
    html.find(marker)
        .map(|i| {
            let rest = &html[i + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .unwrap_or_default()
}

/// The app's local address on its page, if running.
pub fn app_address(html: &str) -> Option<String> {
    let marker = "id=\"app-address\" href=\"";
    html.find(marker).map(|i| {
        let rest = &html[i + marker.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    })
}

pub fn hex_id() -> String {
    let mut buf = [0u8; 8];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut buf).unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fetches a URL on 127.0.0.1 with a plain client (no cookies), retrying briefly while the app boots.
pub async fn fetch_text(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match reqwest::get(url).await {
            Ok(r) if r.status().is_success() => return r.text().await.unwrap(),
            other => {
                assert!(Instant::now() < deadline, "{url} never answered: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Debian's `docker-registry` on a free 127.0.0.1 port with storage in a temp
/// dir: real pulls without the internet. Killed on drop.
pub struct LocalRegistry {
    pub addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl LocalRegistry {
    pub async fn start() -> LocalRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (tests/run installs it)");
        let registry = LocalRegistry {
            addr,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://{}/v2/", registry.addr);
        while !reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                Instant::now() < deadline,
                "the local registry never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        registry
    }

    /// Pushes a local image under `name:tag` and removes the local copy, so the next use must pull it.
    pub fn push_and_forget(&self, local: &str, name: &str) -> String {
        let remote = format!("{}/{name}", self.addr);
        let docker = |args: &[&str]| {
            let out = Command::new("docker").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        docker(&["tag", local, &remote]);
        docker(&["push", &remote]);
        docker(&["rmi", &remote]);
        remote
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("an address with a port")
}

/// The peak resident memory of process `pid` over its life so far (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}
