//! Managed databases through the API of a real `berth serve`, against real
//! Docker and the offline test images (berth-test/postgres is Debian's
//! PostgreSQL 15 acting like the official image; berth-test/mariadb and
//! berth-test/redis likewise, when they are built on this machine).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Api, TestApp, docker_list, docker_out};
use reqwest::Method;
use serde_json::{Value, json};

/// Polls the database until its readiness check passed and no action runs.
async fn wait_ready(app: &TestApp, api: &Api, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let db = api.get(app, path).await;
        if db["health"] == "healthy" && db["message"].is_null() && db["state"] == "running" {
            return db;
        }
        assert!(Instant::now() < deadline, "never ready: {db}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `docker exec` with an argument array; (exit code, stdout + stderr).
fn exec(args: &[&str]) -> (i32, String) {
    let out = Command::new("docker")
        .arg("exec")
        .args(args)
        .output()
        .expect("docker exec");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn psql(container: &str, user: &str, sql: &str) -> String {
    let (code, out) = exec(&[container, "psql", "-U", user, "-d", user, "-tAc", sql]);
    assert_eq!(code, 0, "psql {sql}: {out}");
    out.trim().to_owned()
}

/// Runs psql with `url` in a throw-away container on the project network,
/// the way an app of the project connects. Labelled for cleanup.
fn psql_on_network(project: &str, url: &str, sql: &str) -> (i32, String) {
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--label",
            &format!("berth.project={project}"),
            "--label",
            &format!("berth.test=e2e-{}", std::process::id()),
            "--network",
            &format!("berth_{project}"),
            "--entrypoint",
            "psql",
            "berth-test/postgres:latest",
            url,
            "-tAc",
            sql,
        ])
        .output()
        .expect("docker run");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    )
}

/// The environment of the app's running container, as `KEY=value` lines.
fn app_container_env(project: &str, app: &str) -> Vec<String> {
    let ids = docker_list(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.project={project}"),
        "--filter",
        &format!("label=berth.app={app}"),
    ]);
    assert_eq!(ids.len(), 1, "one running container of {app}: {ids:?}");
    docker_out(&[
        "inspect",
        "-f",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &ids[0],
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

fn env_value(env: &[String], key: &str) -> Option<String> {
    env.iter()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

async fn redeploy(app: &TestApp, api: &Api, project: &str, name: &str) {
    let number = api.start(app, project, name, "redeploy").await;
    let dep = api.wait_for_deployment(app, project, name, number).await;
    assert_eq!(dep["status"], "succeeded", "{dep}");
}

#[tokio::test]
async fn a_postgres_database_keeps_its_data_across_recreates_refuses_a_major_upgrade_and_feeds_an_app_by_reference()
 {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("db").await;
    let api = Api::new(&app);
    let dbs = format!("/api/v1/projects/{project}/databases");
    let path = format!("{dbs}/main");
    let container = format!("berth_{project}_main");
    let volume = format!("berth_{project}_main_data");

    let (status, created) = api
        .post(
            &app,
            &dbs,
            json!({"name": "main", "engine": "postgres", "version": "15", "image": "berth-test/postgres:latest"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["password"], "••••••••");
    assert_eq!(created["unpinned"], true, "a :latest tag is flagged");
    let db = wait_ready(&app, &api, &path).await;
    assert_eq!(db["container"], container);
    assert_eq!(db["volume"], volume);
    assert_eq!(db["host"], "main");
    assert_eq!(db["published"], json!([]));
    assert_eq!(
        docker_out(&["port", &container]),
        "",
        "no host port by default"
    );
    assert_eq!(
        docker_out(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}",
            &container
        ]),
        "unless-stopped"
    );
    let networks = docker_out(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        &container,
    ]);
    assert_eq!(
        networks,
        format!("berth_{project}"),
        "the project network only"
    );
    let labels = docker_out(&["inspect", "-f", "{{json .Config.Labels}}", &container]);
    let labels: Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["berth.kind"], "database");
    assert_eq!(labels["berth.resource"], "main");
    assert_eq!(labels["berth.service"], "main");

    let user = db["user"].as_str().unwrap().to_owned();
    psql(
        &container,
        &user,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (42)",
    );

    let revealed = api.get(&app, &format!("{path}?reveal=true")).await;
    let password = revealed["password"].as_str().unwrap().to_owned();
    let url = revealed["url"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 32);
    assert_eq!(
        url,
        format!("postgres://{user}:{password}@main:5432/{user}")
    );
    let plain = api.get(&app, &path).await.to_string();
    assert!(
        !plain.contains(&password),
        "masked unless revealed: {plain}"
    );
    let page = app
        .get_html(&format!("/projects/{project}/databases/main"))
        .await;
    assert!(!page.contains(&password) && page.contains(&format!("{user}:••••••••@main")));

    // A change of settings recreates the container on the same volume.
    let old_id = docker_out(&["inspect", "-f", "{{.Id}}", &container]);
    let port = free_port();
    let recreating = Instant::now();
    let (status, body) = api
        .send(&app, Method::PATCH, &path, Some(json!({"host_port": port})))
        .await;
    assert_eq!(status, 200, "{body}");
    eprintln!(
        "recreate (stop, start on the same volume, readiness): {} ms",
        recreating.elapsed().as_millis()
    );
    let new_id = docker_out(&["inspect", "-f", "{{.Id}}", &container]);
    assert_ne!(old_id, new_id, "recreated");
    assert_eq!(
        docker_out(&["port", &container]),
        format!("5432/tcp -> 127.0.0.1:{port}"),
        "published on 127.0.0.1 only"
    );
    wait_ready(&app, &api, &path).await;
    assert_eq!(psql(&container, &user, "SELECT x FROM t"), "42");

    // The major version never changes under the data.
    for change in [json!({"version": "16"}), json!({"image": "postgres:17"})] {
        let (status, body) = api
            .send(&app, Method::PATCH, &path, Some(change.clone()))
            .await;
        assert_eq!(status, 422, "{change}: {body}");
        let text = body.to_string();
        assert!(text.contains("Nothing was changed"), "{text}");
    }
    let (_, body) = api
        .send(&app, Method::PATCH, &path, Some(json!({"version": "16"})))
        .await;
    let text = body.to_string();
    assert!(
        text.contains("never changes the major version") && text.contains("restore"),
        "the reason and the way to move: {text}"
    );
    assert_eq!(
        docker_out(&["inspect", "-f", "{{.Id}}", &container]),
        new_id,
        "a refused change touches nothing"
    );
    assert_eq!(api.get(&app, &path).await["version"], "15");

    // "Use in app": the app's env keeps a reference; a deploy fills in the URL.
    let created = app
        .create_app(&project, "web", "berth-test/web", "8080", "")
        .await;
    assert_eq!(created.status(), 303);
    app.wait_for_status(&project, "web", "running").await;
    let (status, used) = api
        .post(&app, &format!("{path}/use-in-app"), json!({"app": "web"}))
        .await;
    assert_eq!(status, 200, "{used}");
    assert_eq!(used["variable"], "DATABASE_URL");
    let env = api
        .get(&app, &format!("/api/v1/projects/{project}/apps/web/env"))
        .await
        .to_string();
    assert!(
        env.contains("${database.main}") && !env.contains(&password),
        "the env store holds the reference: {env}"
    );
    let editor = app
        .get_html(&format!("/projects/{project}/apps/web/env"))
        .await;
    assert!(editor.contains("${database.main}") && !editor.contains(&password));
    redeploy(&app, &api, &project, "web").await;
    let env = app_container_env(&project, "web");
    assert_eq!(
        env_value(&env, "DATABASE_URL").as_deref(),
        Some(url.as_str())
    );
    assert_eq!(
        psql_on_network(&project, &url, "SELECT x FROM t"),
        (0, "42".to_owned()),
        "the URL works from the project network"
    );

    // A changed password reaches the app at its next deploy.
    let (status, body) = api
        .post(&app, &format!("{path}/rotate-password"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    wait_ready(&app, &api, &path).await;
    let rotated = api.get(&app, &format!("{path}?reveal=true")).await;
    let new_url = rotated["url"].as_str().unwrap().to_owned();
    assert_ne!(new_url, url);
    assert_ne!(
        psql_on_network(&project, &url, "SELECT 1").0,
        0,
        "the old password no longer works"
    );
    redeploy(&app, &api, &project, "web").await;
    let env = app_container_env(&project, "web");
    assert_eq!(
        env_value(&env, "DATABASE_URL").as_deref(),
        Some(new_url.as_str())
    );
    assert_eq!(
        psql_on_network(&project, &new_url, "SELECT x FROM t"),
        (0, "42".to_owned())
    );

    // Deleting keeps the volume; it shows on the Storage page as orphaned.
    let (status, body) = api.send(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 409, "an app still refers to it: {body}");
    assert!(body.to_string().contains("DATABASE_URL"), "{body}");
    assert_eq!(api.delete_app(&app, &project, "web").await, 200);
    let (status, body) = api
        .send(
            &app,
            Method::DELETE,
            &path,
            Some(json!({"delete_volume": true, "confirm": "wrong"})),
        )
        .await;
    assert_eq!(status, 422, "a mistyped name deletes nothing: {body}");
    let (status, body) = api.send(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{body}");
    assert!(docker_list(&["ps", "-aq", "--filter", &format!("name=^{container}$")]).is_empty());
    let volumes = api.get(&app, "/api/v1/volumes").await;
    let listed = volumes
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == volume)
        .unwrap_or_else(|| panic!("{volume} listed: {volumes}"));
    assert_eq!(listed["orphaned"], true, "{listed}");
    let (status, body) = api
        .post(
            &app,
            &dbs,
            json!({"name": "main", "engine": "postgres", "version": "15", "image": "berth-test/postgres:latest"}),
        )
        .await;
    assert_eq!(
        status, 409,
        "the old data is not taken over silently: {body}"
    );
    assert!(body.to_string().contains(&volume), "{body}");
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_message_and_nothing_is_created() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("dbbad").await;
    let api = Api::new(&app);
    let dbs = format!("/api/v1/projects/{project}/databases");
    for (body, field, words) in [
        (
            json!({"name": "Bad_Name", "engine": "postgres"}),
            "name",
            "lowercase",
        ),
        (
            json!({"name": "x", "engine": "oracle"}),
            "engine",
            "unknown engine",
        ),
        (
            json!({"name": "x", "engine": "postgres", "version": "9"}),
            "version",
            "17, 16, 15",
        ),
        (
            json!({"name": "x", "engine": "postgres", "version": "16", "image": "postgres:17"}),
            "image",
            "names version 17",
        ),
        (
            json!({"name": "x", "engine": "redis", "host_port": 0}),
            "host_port",
            "between",
        ),
    ] {
        let (status, out) = api.post(&app, &dbs, body.clone()).await;
        assert_eq!(status, 422, "{body}: {out}");
        let message = out.to_string();
        assert!(
            message.contains(field) && message.contains(words),
            "{body}: {message}"
        );
    }
    assert_eq!(api.get(&app, &dbs).await, json!([]));

    // A name an app has is taken; a database's name is taken for apps too.
    let created = app
        .create_app(&project, "web", "berth-test/web", "8080", "")
        .await;
    assert_eq!(created.status(), 303);
    let (status, out) = api
        .post(&app, &dbs, json!({"name": "web", "engine": "postgres", "image": "berth-test/postgres:latest", "version": "15"}))
        .await;
    assert_eq!(status, 409, "{out}");
    assert!(out.to_string().contains("an app with that name"), "{out}");
    let (status, out) = api
        .post(&app, &dbs, json!({"name": "one", "engine": "postgres", "image": "berth-test/postgres:latest", "version": "15"}))
        .await;
    assert_eq!(status, 201, "{out}");
    let (status, out) = api
        .post(&app, &dbs, json!({"name": "one", "engine": "redis"}))
        .await;
    assert_eq!(status, 409, "{out}");
    let response = app
        .create_app(&project, "one", "berth-test/web", "8080", "")
        .await;
    assert_eq!(
        response.status(),
        422,
        "an app cannot take a database's name"
    );
    let list = api.get(&app, &dbs).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    wait_ready(&app, &api, &format!("{dbs}/one")).await;
    assert_eq!(
        docker_list(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=berth.project={project}"),
            "--filter",
            "label=berth.kind=database",
        ]),
        vec![format!("berth_{project}_one_data")],
        "only the one database made a volume"
    );

    // The form comes back filled in, with the error at its field.
    let form = app
        .get_html(&format!("/projects/{project}/databases/new"))
        .await;
    let token = common::csrf_token(&form);
    let response = app
        .http
        .post(app.at(&format!("/projects/{project}/databases")))
        .form(&[
            ("csrf", token.as_str()),
            ("name", "Bad Name"),
            ("engine", "postgres"),
            ("version", "16"),
            ("image", "my/postgis:16-3.4"),
            ("host_port", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("value=\"Bad Name\"") && html.contains("my/postgis:16-3.4"));
    assert!(html.contains("id=\"e-name\""), "{html}");
}

/// The same create, write, restart and read for the other engines whose
/// test images this machine has (berth-test/mariadb, berth-test/redis).
#[tokio::test]
async fn mariadb_and_redis_databases_start_and_keep_their_data_across_a_restart() {
    let have = |image: &str| !docker_list(&["images", "-q", image]).is_empty();
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("dbeng").await;
    let api = Api::new(&app);
    let dbs = format!("/api/v1/projects/{project}/databases");
    let mut ran = 0;
    if have("berth-test/mariadb:latest") {
        ran += 1;
        let (status, out) = api
            .post(&app, &dbs, json!({"name": "maria", "engine": "mariadb", "version": "10.11", "image": "berth-test/mariadb:latest"}))
            .await;
        assert_eq!(status, 201, "{out}");
        let path = format!("{dbs}/maria");
        wait_ready(&app, &api, &path).await;
        let db = api.get(&app, &format!("{path}?reveal=true")).await;
        let (user, pw) = (
            db["user"].as_str().unwrap(),
            db["password"].as_str().unwrap(),
        );
        let c = format!("berth_{project}_maria");
        let pw_env = format!("MYSQL_PWD={pw}");
        let sql = |q: &str| {
            exec(&[
                "-e", &pw_env, &c, "mariadb", "-u", user, "-N", user, "-e", q,
            ])
        };
        let (code, out) = sql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
        assert_eq!(code, 0, "{out}");
        let (status, out) = api.post(&app, &format!("{path}/restart"), json!({})).await;
        assert_eq!(status, 200, "{out}");
        wait_ready(&app, &api, &path).await;
        assert_eq!(sql("SELECT x FROM t"), (0, "7\n".to_owned()));
        // The app user is not root; a new password works, the old one not.
        let (code, out) = sql("SELECT COUNT(*) FROM mysql.user");
        assert_ne!(code, 0, "the app user cannot read mysql.user: {out}");
        let (status, out) = api
            .post(&app, &format!("{path}/rotate-password"), json!({}))
            .await;
        assert_eq!(status, 200, "{out}");
        wait_ready(&app, &api, &path).await;
        let (code, _) = sql("SELECT x FROM t");
        assert_ne!(code, 0, "the old password no longer works");
        let db = api.get(&app, &format!("{path}?reveal=true")).await;
        let new_pw = format!("MYSQL_PWD={}", db["password"].as_str().unwrap());
        let (code, out) = exec(&[
            "-e",
            &new_pw,
            &c,
            "mariadb",
            "-u",
            user,
            "-N",
            user,
            "-e",
            "SELECT x FROM t",
        ]);
        assert_eq!((code, out.as_str()), (0, "7\n"));
    }
    if have("berth-test/redis:latest") {
        ran += 1;
        let (status, out) = api
            .post(
                &app,
                &dbs,
                json!({"name": "cache", "engine": "redis", "image": "berth-test/redis:latest"}),
            )
            .await;
        assert_eq!(status, 201, "{out}");
        let path = format!("{dbs}/cache");
        wait_ready(&app, &api, &path).await;
        let db = api.get(&app, &format!("{path}?reveal=true")).await;
        let pw = db["password"].as_str().unwrap();
        assert_eq!(
            db["url"].as_str().unwrap(),
            format!("redis://default:{pw}@cache:6379/0")
        );
        let c = format!("berth_{project}_cache");
        let auth = format!("REDISCLI_AUTH={pw}");
        assert!(
            exec(&[&c, "redis-cli", "set", "k", "v"])
                .1
                .contains("NOAUTH"),
            "a password is required"
        );
        assert_eq!(
            exec(&["-e", &auth, &c, "redis-cli", "set", "k", "v"]),
            (0, "OK\n".to_owned())
        );
        // A change recreates it; the data is saved on stop and read at start.
        let (status, out) = api
            .send(
                &app,
                Method::PATCH,
                &path,
                Some(json!({"host_port": free_port()})),
            )
            .await;
        assert_eq!(status, 200, "{out}");
        wait_ready(&app, &api, &path).await;
        assert_eq!(
            exec(&["-e", &auth, &c, "redis-cli", "get", "k"]),
            (0, "v\n".to_owned())
        );
    }
    eprintln!("engines exercised besides postgres: {ran}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls until the container runs again (Docker's or berth's doing).
async fn wait_running(container: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = docker_out(&["inspect", "-f", "{{.State.Status}}", container]);
        if state == "running" {
            return;
        }
        assert!(Instant::now() < deadline, "{container} stays {state}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn wait_healthy(app: &TestApp, api: &Api, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let db = api.get(app, path).await;
        if db["health"] == "healthy" && db["state"] == "running" {
            return db;
        }
        assert!(Instant::now() < deadline, "never healthy again: {db}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_failed_recreate_brings_the_old_container_back_and_a_stopped_database_is_started_again() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("dbrb").await;
    let api = Api::new(&app);
    let path = format!("/api/v1/projects/{project}/databases/keep");
    let container = format!("berth_{project}_keep");
    let (status, out) = api
        .post(
            &app,
            &format!("/api/v1/projects/{project}/databases"),
            json!({"name": "keep", "engine": "postgres", "version": "15", "image": "berth-test/postgres:latest"}),
        )
        .await;
    assert_eq!(status, 201, "{out}");
    let db = wait_ready(&app, &api, &path).await;
    let user = db["user"].as_str().unwrap().to_owned();
    psql(
        &container,
        &user,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1)",
    );

    // An image that exits at once, under a tag that names the data's version.
    let broken = format!("berth-test/crash:15-{}", &common::hex_id()[..8]);
    docker_out(&["tag", "berth-test/crash:latest", &broken]);
    let (status, body) = api
        .send(&app, Method::PATCH, &path, Some(json!({"image": broken})))
        .await;
    let _ = Command::new("docker").args(["rmi", &broken]).output();
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string()
            .contains("the previous container runs again"),
        "{body}"
    );
    let db = wait_healthy(&app, &api, &path).await;
    assert_eq!(
        db["image"], "berth-test/postgres:latest",
        "the settings stay"
    );
    assert!(
        db["message"]
            .as_str()
            .unwrap_or_default()
            .contains("did not start"),
        "why is recorded: {db}"
    );
    assert_eq!(psql(&container, &user, "SELECT x FROM t"), "1");
    assert!(
        docker_list(&["ps", "-aq", "--filter", &format!("name=^{container}_prev$")]).is_empty(),
        "no container is left over"
    );

    // Stopped outside berth while it should run: berth starts it again.
    docker_out(&["stop", &container]);
    wait_running(&container).await;
    // And at start, after berth was down meanwhile.
    let app = app
        .restart_on_same_data_after(|| {
            docker_out(&["stop", &container]);
        })
        .await;
    wait_running(&container).await;
    wait_healthy(&app, &api, &path).await;
    assert_eq!(psql(&container, &user, "SELECT x FROM t"), "1");
    // Its container removed while berth was down: berth launches a new
    // one on the same volume.
    let app = app
        .restart_on_same_data_after(|| {
            docker_out(&["rm", "-f", &container]);
        })
        .await;
    wait_healthy(&app, &api, &path).await;
    assert_eq!(psql(&container, &user, "SELECT x FROM t"), "1");

    // Stopped on purpose, it stays stopped.
    let (status, body) = api.post(&app, &format!("{path}/stop"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        docker_out(&["inspect", "-f", "{{.State.Status}}", &container]),
        "exited"
    );
    let (status, body) = api.post(&app, &format!("{path}/start"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.get(&app, &path).await["health"], "healthy");
}

/// Waits until a backup or a restore at `path` is no longer queued or running.
async fn wait_ended(app: &TestApp, api: &Api, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let v = api.get(app, path).await;
        if !matches!(v["status"].as_str(), Some("queued" | "running")) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path} never ended: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_managed_postgres_database_is_backed_up_and_restored_through_its_own_routes_and_page() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("dbbk").await;
    let api = Api::new(&app);
    let path = format!("/api/v1/projects/{project}/databases/main");
    let container = format!("berth_{project}_main");
    let (status, created) = api
        .post(
            &app,
            &format!("/api/v1/projects/{project}/databases"),
            json!({"name": "main", "engine": "postgres", "version": "15", "image": "berth-test/postgres:latest"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let db = wait_ready(&app, &api, &path).await;
    let user = db["user"].as_str().unwrap().to_owned();
    psql(
        &container,
        &user,
        "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 3000)",
    );

    // Back up now through the database's own route, to berth's local destination.
    let (status, queued) = api.post(&app, &format!("{path}/backups"), json!({})).await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["id"].as_i64().unwrap();
    let backup = wait_ended(&app, &api, &format!("/api/v1/backups/{id}")).await;
    assert_eq!(backup["status"], "succeeded", "{backup}");
    let listed = api.get(&app, &format!("{path}/backups")).await;
    assert_eq!(listed[0]["id"], id, "{listed}");
    let password = api.get(&app, &format!("{path}?reveal=true")).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!backup.to_string().contains(&password));

    // A schedule on the database, with its next runs.
    let (status, schedule) = api
        .post(
            &app,
            &format!("{path}/backup-schedules"),
            json!({"cron": "@daily", "time_zone": "Europe/Berlin"}),
        )
        .await;
    assert_eq!(status, 201, "{schedule}");

    // The database page links to its backups page, which shows the backup and the schedule.
    let page = app
        .get_html(&format!("/projects/{project}/databases/main"))
        .await;
    let section = format!("/projects/{project}/databases/main/backups");
    assert!(page.contains(&format!("href=\"{section}\"")), "{page}");
    let page = app.get_html(&section).await;
    assert!(page.contains(&format!("id=\"backup-{id}\"")), "{page}");
    assert!(page.contains("Restore into main") && page.contains("@daily"));
    assert!(!page.contains(&password));
    let overview = app.get_html("/backups").await;
    assert!(overview.contains(&format!("{project}/main")), "{overview}");

    // Rows gone, restored into the same database with its name typed: back.
    psql(&container, &user, "DELETE FROM items");
    let (status, refused) = api
        .post(
            &app,
            &format!("/api/v1/backups/{id}/restore"),
            json!({"target": "same", "confirm": "other"}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    let (status, restore) = api
        .post(
            &app,
            &format!("/api/v1/backups/{id}/restore"),
            json!({"target": "same", "confirm": "main"}),
        )
        .await;
    assert_eq!(status, 202, "{restore}");
    let restore = wait_ended(&app, &api, restore["url"].as_str().unwrap()).await;
    assert_eq!(restore["status"], "succeeded", "{restore}");
    assert_eq!(
        psql(&container, &user, "SELECT count(*) FROM items"),
        "3000"
    );
}
