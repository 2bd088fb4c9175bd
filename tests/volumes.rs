//! Volumes against the real daemon, the real binary and the real edge: an
//! image's `VOLUME` keeps its data across everything that replaces or
//! restarts a container, named volumes and bind mounts, refused host paths,
//! orphaned volumes attached again, reconcile leaving alone what is not
//! berth's, `recreate` deploys that fail or run under load, and an app made
//! before volumes existed.
//!
//! `berth-test/volume` appends `boot <pid> $MARK` to /data/boots at every
//! start and serves /data on 8080; with `BREAK=1` it appends and exits 1.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Api, TestApp, deployment_log, docker_list, docker_objects_of, hex_id, location};
use serde_json::{Value, json};

/// On the Docker objects a test makes itself (not through berth).
const OWN_LABEL: &str = "berth.test=volumes-e2e";

/// Docker objects a test made itself: removed when it ends, also when it fails.
#[derive(Default)]
struct Own {
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for Own {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", c]).output();
        }
        for v in &self.volumes {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", v])
                .output();
        }
    }
}

/// Runs the docker CLI; its trimmed stdout. Fails the test when docker does.
fn docker(args: &[&str]) -> String {
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

/// Whether Docker has the `object` (`container`, `volume`) called `name`.
fn docker_has(object: &str, name: &str) -> bool {
    Command::new("docker")
        .args([object, "inspect", name])
        .output()
        .unwrap()
        .status
        .success()
}

fn container_exists(name: &str) -> bool {
    docker_has("container", name)
}

fn volume_exists(name: &str) -> bool {
    docker_has("volume", name)
}

/// Runs `sql` on berth's database with the sqlite3 CLI; its trimmed output.
fn sqlite(app: &TestApp, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(app.data_dir.join("berth.db"))
        .arg(sql)
        .output()
        .expect("sqlite3 is installed (tests/run installs it)");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A berth with an admin, a project, and an API token.
async fn berth(hint: &str) -> (TestApp, String, Api) {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project(hint).await;
    let api = Api::new(&app);
    (app, project, api)
}

/// Creates an app through the API (`body` as `POST …/apps` takes it) and
/// waits for its first deployment to succeed.
async fn create_running(app: &TestApp, api: &Api, project: &str, body: Value) {
    let name = body["name"].as_str().unwrap().to_owned();
    let (status, created) = api
        .post(app, &format!("/api/v1/projects/{project}/apps"), body)
        .await;
    assert_eq!(status, 202, "{created}");
    let first = api.wait_for_deployment(app, project, &name, 1).await;
    assert_eq!(first["status"], "succeeded", "{first}");
}

/// Runs `POST …/apps/{name}/{action}` and waits for the deployment to succeed.
async fn deployed(app: &TestApp, api: &Api, project: &str, name: &str, action: &str) -> Value {
    let number = api.start(app, project, name, action).await;
    let dep = api.wait_for_deployment(app, project, name, number).await;
    assert_eq!(dep["status"], "succeeded", "{dep}");
    dep
}

/// Sets (merges) runtime variables of the app.
async fn set_env(app: &TestApp, api: &Api, project: &str, name: &str, vars: &[(&str, &str)]) {
    let vars: Vec<Value> = vars
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    let (status, body) = api
        .post(
            app,
            &format!("/api/v1/projects/{project}/apps/{name}/env"),
            json!({ "vars": vars }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn app_volumes(app: &TestApp, api: &Api, project: &str, name: &str) -> Value {
    api.get(
        app,
        &format!("/api/v1/projects/{project}/apps/{name}/volumes"),
    )
    .await
}

/// The entry of `GET /api/v1/volumes` for the Docker volume `name`, if listed.
async fn storage_entry(app: &TestApp, api: &Api, name: &str) -> Option<Value> {
    api.get(app, "/api/v1/volumes")
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name && v["kind"] == "volume")
        .cloned()
}

/// Polls the app through the API until its status is `status`.
async fn app_status_becomes(app: &TestApp, api: &Api, project: &str, name: &str, status: &str) {
    let path = format!("/api/v1/projects/{project}/apps/{name}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = api.get(app, &path).await;
        if shown["status"] == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {status}: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn host(name: &str, project: &str) -> String {
    format!("{name}.{project}.localhost")
}

/// The lines of /data/boots as the edge serves them, once there are at least `count`.
async fn boots(app: &TestApp, project: &str, name: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.get_via_edge(&host(name, project), "/boots").await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if status == 200 && lines.len() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "/boots of {name} never had {count} lines: {status} {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `$MARK` of each boot line (`boot <pid> <mark>`).
fn marks(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap_or_default().to_owned())
        .collect()
}

/// `name:target` of each mount of the container.
fn mounts_of(container: &str) -> Vec<String> {
    docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}}{{else}}{{.Source}}{{end}}:{{.Destination}}:{{.RW}} {{end}}",
        container,
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

fn project_volumes(project: &str) -> Vec<String> {
    docker_list(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=berth.project={project}"),
    ])
}

fn project_containers(project: &str) -> Vec<String> {
    let mut names = docker_list(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=berth.project={project}"),
        "--format",
        "{{.Names}}",
    ]);
    names.sort();
    names
}

#[tokio::test]
async fn an_images_volume_keeps_every_line_across_deploys_a_rollback_a_restart_and_a_kill_9_of_berth()
 {
    let (app, project, api) = berth("keep").await;
    create_running(
        &app,
        &api,
        &project,
        json!({"name": "vol", "image": "berth-test/volume", "port": 8080}),
    )
    .await;
    assert_eq!(marks(&boots(&app, &project, "vol", 1).await), [""]);

    // The path the image declares got a named volume of its own, and with it the strategy.
    let volumes = app_volumes(&app, &api, &project, "vol").await;
    assert_eq!(volumes["strategy"], "recreate", "{volumes}");
    assert!(
        volumes["strategy_reason"]
            .as_str()
            .unwrap()
            .contains("volume"),
        "{volumes}"
    );
    let list = volumes["volumes"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{volumes}");
    let volume = format!("berth_{project}_vol_data");
    assert_eq!(list[0]["target"], "/data");
    assert_eq!(list[0]["from_image"], true);
    assert_eq!(list[0]["kind"], "volume");
    assert_eq!(list[0]["source"], volume.as_str());

    // Three deploys, from the source and of the serving image.
    let mut expected = vec![String::new()];
    for (number, action) in [(2, "deploy"), (3, "redeploy"), (4, "deploy")] {
        let mark = format!("{action}{number}");
        set_env(&app, &api, &project, "vol", &[("MARK", &mark)]).await;
        let dep = deployed(&app, &api, &project, "vol", action).await;
        assert_eq!(dep["number"], number);
        let log = deployment_log(&dep);
        assert!(log.contains("strategy recreate"), "{log}");
        assert!(
            log.contains(&format!("mounting volume {volume} at /data")),
            "{log}"
        );
        expected.push(mark);
        assert_eq!(
            marks(&boots(&app, &project, "vol", number as usize).await),
            expected
        );
    }

    // A rollback.
    set_env(&app, &api, &project, "vol", &[("MARK", "rollback5")]).await;
    let dep = deployed(&app, &api, &project, "vol", "deployments/2/rollback").await;
    assert_eq!(dep["number"], 5);
    assert_eq!(dep["rollback_of"], 2);
    expected.push("rollback5".to_owned());
    assert_eq!(marks(&boots(&app, &project, "vol", 5).await), expected);

    // A restart: the same container starts again.
    let (status, body) = api
        .post(
            &app,
            &format!("/api/v1/projects/{project}/apps/vol/restart"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    expected.push("rollback5".to_owned());
    assert_eq!(marks(&boots(&app, &project, "vol", 6).await), expected);

    // kill -9 of berth, a start on the same data dir, and a deploy after it.
    let token = api.token.clone();
    let app = app.restart_on_same_data_after(|| {}).await;
    let api = Api { token };
    assert_eq!(marks(&boots(&app, &project, "vol", 6).await), expected);
    set_env(&app, &api, &project, "vol", &[("MARK", "after-kill")]).await;
    let dep = deployed(&app, &api, &project, "vol", "redeploy").await;
    assert_eq!(dep["number"], 6);
    expected.push("after-kill".to_owned());
    assert_eq!(marks(&boots(&app, &project, "vol", 7).await), expected);

    // One volume all along, mounted by the one container there is.
    assert_eq!(project_volumes(&project), [volume.as_str()]);
    let serving = format!("berth_{project}_vol_6");
    assert_eq!(project_containers(&project), [serving.as_str()]);
    assert_eq!(mounts_of(&serving), [format!("{volume}:/data:true")]);
}

#[tokio::test]
async fn a_named_volume_and_a_bind_mount_under_the_volumes_root_are_both_mounted_and_written() {
    let (app, project, api) = berth("mounts").await;
    // Under the default volumes root, <data dir>/volumes; berth makes the directory.
    let bound = app.data_dir.join("volumes").join(&project).join("bound");
    let bound_str = bound.display().to_string();
    create_running(
        &app,
        &api,
        &project,
        json!({
            "name": "files",
            "image": "berth-test/web",
            "port": 8080,
            "command": "/busybox sh -c \"echo x > /named/f; echo y > /bound/f; exec /busybox httpd -f -p 8080 -h /www\"",
            "volumes": [
                {"name": "named", "target": "/named"},
                {"name": "bound", "host_path": bound_str, "target": "/bound"},
            ],
        }),
    )
    .await;
    let named = format!("berth_{project}_files_named");
    let volumes = app_volumes(&app, &api, &project, "files").await;
    let mut listed: Vec<(String, String, String)> = volumes["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_owned(),
                v["source"].as_str().unwrap().to_owned(),
                v["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("bind".to_owned(), bound_str.clone(), "/bound".to_owned()),
            ("volume".to_owned(), named.clone(), "/named".to_owned()),
        ],
        "{volumes}"
    );
    assert_eq!(volumes["strategy"], "recreate", "{volumes}");
    let container = format!("berth_{project}_files_1");
    let mut mounts = mounts_of(&container);
    mounts.sort();
    assert_eq!(
        mounts,
        [
            format!("{bound_str}:/bound:true"),
            format!("{named}:/named:true")
        ]
    );

    // Both were written: the bind mount on the host, the named volume seen from another container.
    assert_eq!(std::fs::read_to_string(bound.join("f")).unwrap(), "y\n");
    let seen = docker(&[
        "run",
        "--rm",
        "--label",
        OWN_LABEL,
        "-v",
        &format!("{named}:/v:ro"),
        "berth-test/web",
        "/busybox",
        "cat",
        "/v/f",
    ]);
    assert_eq!(seen, "x");
    let response = app.get_via_edge(&host("files", &project), "/").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn system_paths_the_data_dir_and_the_docker_socket_are_refused_with_422_and_the_form_keeps_what_was_typed()
 {
    // Made first, so it goes after the app's container that mounts it.
    let outside = tempfile::tempdir().unwrap();
    let (app, project, api) = berth("refuse").await;
    let data_dir = app.data_dir.display().to_string();
    let form_page = format!("/projects/{project}");
    let action = format!("/projects/{project}/apps");
    for (i, path) in ["/", "/etc", data_dir.as_str(), "/var/run/docker.sock"]
        .into_iter()
        .enumerate()
    {
        // Through the API: refused, and nothing was created.
        let name = format!("api{i}");
        let (status, body) = api
            .post(
                &app,
                &format!("/api/v1/projects/{project}/apps"),
                json!({
                    "name": name,
                    "image": "berth-test/web",
                    "port": 8080,
                    "volumes": [{"name": "host", "host_path": path, "target": "/host"}],
                }),
            )
            .await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(body.to_string().contains("Refused"), "{path}: {body}");
        let (status, _) = api
            .send(
                &app,
                reqwest::Method::GET,
                &format!("/api/v1/projects/{project}/apps/{name}"),
                None,
            )
            .await;
        assert_eq!(status, 404, "the app {name} ({path}) does not exist");

        // Through the dashboard form: refused, with what was typed kept.
        let name = format!("form{i}");
        let response = app
            .post_form(
                &form_page,
                &action,
                &[
                    ("name", &name),
                    ("source", "image"),
                    ("image", "berth-test/web"),
                    ("port", "8080"),
                    ("command", ""),
                    ("volume_target", "/host"),
                    ("volume_name", "host"),
                    ("volume_host_path", path),
                ],
            )
            .await;
        assert_eq!(response.status(), 422, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("Refused"), "{path}: {html}");
        assert!(
            html.contains(&format!("value=\"{name}\"")),
            "{path}: {html}"
        );
        assert!(
            html.contains(&format!("value=\"{path}\"")),
            "{path}: {html}"
        );
        assert!(html.contains("value=\"/host\""), "{path}: {html}");
        let response = app.get(&format!("/projects/{project}/apps/{name}")).await;
        assert_eq!(
            response.status(),
            404,
            "the app {name} ({path}) does not exist"
        );
    }
    let apps = api
        .get(&app, &format!("/api/v1/projects/{project}/apps"))
        .await;
    assert_eq!(apps, json!([]));
    assert_eq!(docker_objects_of(&project), (vec![], vec![]));
    assert_eq!(project_volumes(&project), Vec::<String>::new());

    // With the dangerous mount ticked, a path outside the root is accepted and the app page says so.
    let outside_str = outside.path().display().to_string();
    let response = app
        .post_form(
            &form_page,
            &action,
            &[
                ("name", "risky"),
                ("source", "image"),
                ("image", "berth-test/web"),
                ("port", "8080"),
                ("command", ""),
                ("volume_target", "/host"),
                ("volume_name", "host"),
                ("volume_host_path", &outside_str),
                ("dangerous_mounts", "on"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        format!("/projects/{project}/apps/risky")
    );
    let html = app.wait_for_status(&project, "risky", "running").await;
    assert!(html.contains("id=\"dangerous-mounts\""), "{html}");
    let volumes = app_volumes(&app, &api, &project, "risky").await;
    assert_eq!(volumes["dangerous_mounts"], true, "{volumes}");
    assert_eq!(
        mounts_of(&format!("berth_{project}_risky_1")),
        [format!("{outside_str}:/host:true")]
    );
}

#[tokio::test]
async fn an_app_deleted_with_its_volumes_kept_gets_its_data_back_when_the_orphan_is_attached_to_an_app_of_the_same_name()
 {
    let (app, project, api) = berth("orphan").await;
    let create = json!({"name": "db", "image": "berth-test/volume", "port": 8080});
    create_running(&app, &api, &project, create.clone()).await;
    set_env(&app, &api, &project, "db", &[("MARK", "first")]).await;
    deployed(&app, &api, &project, "db", "redeploy").await;
    assert_eq!(marks(&boots(&app, &project, "db", 2).await), ["", "first"]);
    let old = format!("berth_{project}_db_data");

    // Deleted with "keep volumes", the default: the volume stays, orphaned.
    let (status, body) = api
        .send(
            &app,
            reqwest::Method::DELETE,
            &format!("/api/v1/projects/{project}/apps/db"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["volumes_kept"], json!([old]), "{body}");
    assert!(volume_exists(&old));

    // An app of the same name gets a new volume for its image's /data.
    create_running(&app, &api, &project, create).await;
    assert_eq!(marks(&boots(&app, &project, "db", 1).await), [""]);
    let volumes = app_volumes(&app, &api, &project, "db").await;
    let new = volumes["volumes"][0]["source"].as_str().unwrap().to_owned();
    assert_ne!(new, old, "{volumes}");
    let orphan = storage_entry(&app, &api, &old)
        .await
        .expect("the old volume is listed");
    assert_eq!(orphan["orphaned"], true, "{orphan}");
    assert_eq!(orphan["owner"], Value::Null, "{orphan}");
    assert_eq!(orphan["project"], project.as_str(), "{orphan}");
    assert_eq!(orphan["made_for"], "db", "{orphan}");
    let current = storage_entry(&app, &api, &new)
        .await
        .expect("the new volume is listed");
    assert_eq!(current["orphaned"], false, "{current}");
    assert_eq!(current["owner"], format!("{project}/db"), "{current}");

    // Attached at /data and redeployed: the old lines are back.
    let (status, body) = api
        .post(
            &app,
            &format!("/api/v1/volumes/{old}/attach"),
            json!({"app": "db", "target": "/data"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["volumes"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["volumes"][0]["source"], old.as_str(), "{body}");
    set_env(&app, &api, &project, "db", &[("MARK", "attached")]).await;
    deployed(&app, &api, &project, "db", "redeploy").await;
    assert_eq!(
        marks(&boots(&app, &project, "db", 3).await),
        ["", "first", "attached"]
    );
    let detached = storage_entry(&app, &api, &new)
        .await
        .expect("the new volume is kept");
    assert_eq!(detached["orphaned"], true, "{detached}");

    // Deleting an orphan needs its name typed.
    let delete = |query: &str| format!("/api/v1/volumes/{new}{query}");
    for query in ["", "?confirm=", "?confirm=something-else"] {
        let (status, body) = api
            .send(&app, reqwest::Method::DELETE, &delete(query), None)
            .await;
        assert_eq!(status, 422, "{query}: {body}");
        assert!(volume_exists(&new), "{query}");
    }
    let (status, body) = api
        .send(
            &app,
            reqwest::Method::DELETE,
            &delete(&format!("?confirm={new}")),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert!(!volume_exists(&new));
    assert!(storage_entry(&app, &api, &new).await.is_none());

    // Deleting the app "with its volumes" removes them.
    let (status, body) = api
        .send(
            &app,
            reqwest::Method::DELETE,
            &format!("/api/v1/projects/{project}/apps/db?volumes=delete"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["volumes_kept"], json!([]), "{body}");
    assert!(!volume_exists(&old));
    assert_eq!(project_volumes(&project), Vec::<String>::new());
}

/// This installation's id (on every object berth creates), from its database,
/// or else from the labels of one of its containers in `project`.
fn instance_id(app: &TestApp, project: &str) -> String {
    let from_db = Command::new("sqlite3")
        .arg(app.data_dir.join("berth.db"))
        .arg("SELECT value FROM settings WHERE key = 'instance_id'")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|id| !id.is_empty());
    from_db.unwrap_or_else(|| {
        docker_list(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=berth.project={project}"),
            "--format",
            "{{.Label \"berth.instance\"}}",
        ])
        .into_iter()
        .next()
        .expect("a container of this berth")
    })
}

#[tokio::test]
async fn reconcile_leaves_alone_a_container_and_a_volume_berth_did_not_create_and_a_kind_it_does_not_know()
 {
    let mut own = Own::default();
    let (app, project, api) = berth("foreign").await;
    create_running(
        &app,
        &api,
        &project,
        json!({"name": "web", "image": "berth-test/web", "port": 8080}),
    )
    .await;
    let instance = instance_id(&app, &project);
    let id = &hex_id()[..8];
    let run = |name: &str, labels: &[String]| {
        let mut args = vec!["run", "-d", "--name", name, "--label", OWN_LABEL];
        for l in labels {
            args.extend(["--label", l.as_str()]);
        }
        args.push("berth-test/web");
        docker(&args);
    };

    // A plain container and volume, as anyone could make them.
    let plain = format!("berth-test-plain-{id}");
    own.containers.push(plain.clone());
    run(&plain, &[]);
    let volume = format!("berth-test-volume-{id}");
    own.volumes.push(volume.clone());
    docker(&["volume", "create", "--label", OWN_LABEL, &volume]);
    // One of this installation's, of a kind this version does not know,
    // even though it names the serving app: the app rules (which remove
    // a second container of an app) must not reach it.
    let spaceship = format!("berth-test-spaceship-{id}");
    own.containers.push(spaceship.clone());
    run(
        &spaceship,
        &[
            "berth.managed=true".to_owned(),
            format!("berth.instance={instance}"),
            "berth.kind=spaceship".to_owned(),
            format!("berth.project={project}"),
            "berth.app=web".to_owned(),
        ],
    );
    // And one reconcile does remove: this installation's container of an
    // app that does not exist. Its volume stays all the same.
    let ghost = format!("berth_{project}_ghost_1");
    let app_labels = [
        "berth.managed=true".to_owned(),
        format!("berth.instance={instance}"),
        "berth.kind=app".to_owned(),
        format!("berth.project={project}"),
        "berth.app=ghost".to_owned(),
    ];
    own.containers.push(ghost.clone());
    let mut ghost_labels = app_labels.to_vec();
    ghost_labels.push("berth.deployment=1".to_owned());
    run(&ghost, &ghost_labels);
    let ghost_volume = format!("berth_{project}_ghost_data");
    own.volumes.push(ghost_volume.clone());
    let mut args = vec!["volume", "create"];
    for l in &app_labels {
        args.extend(["--label", l.as_str()]);
    }
    args.push(&ghost_volume);
    docker(&args);

    // A restart reconciles; once the ghost is gone, it has.
    let app = app.restart_on_same_data_after(|| {}).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while container_exists(&ghost) {
        assert!(
            Instant::now() < deadline,
            "reconcile never removed the container of an app that does not exist"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in [&plain, &spaceship] {
        assert_eq!(
            docker(&["inspect", "-f", "{{.State.Running}}", name]),
            "true",
            "{name} was left alone"
        );
    }
    assert!(
        volume_exists(&volume),
        "a volume berth did not create stays"
    );
    assert!(
        volume_exists(&ghost_volume),
        "reconcile never removes a volume"
    );
    // berth's own app is fine too, beside the spaceship that names it.
    app_status_becomes(&app, &api, &project, "web", "running").await;
    let mut expected = vec![spaceship.clone(), format!("berth_{project}_web_1")];
    expected.sort();
    assert_eq!(project_containers(&project), expected);
}

#[tokio::test]
async fn a_recreate_deploy_whose_new_version_fails_its_check_brings_the_old_version_back_with_its_data()
 {
    let (app, project, api) = berth("fail").await;
    create_running(
        &app,
        &api,
        &project,
        json!({"name": "vol", "image": "berth-test/volume", "port": 8080}),
    )
    .await;
    set_env(&app, &api, &project, "vol", &[("MARK", "v2")]).await;
    deployed(&app, &api, &project, "vol", "redeploy").await;
    let before = boots(&app, &project, "vol", 2).await;
    assert_eq!(marks(&before), ["", "v2"]);

    set_env(
        &app,
        &api,
        &project,
        "vol",
        &[("BREAK", "1"), ("MARK", "broken")],
    )
    .await;
    let number = api.start(&app, &project, "vol", "redeploy").await;
    let dep = api.wait_for_deployment(&app, &project, "vol", number).await;
    assert_eq!(dep["status"], "failed", "{dep}");
    let reason = dep["reason"].as_str().unwrap();
    assert!(reason.contains("exited with code 1"), "{reason}");
    let log = deployment_log(&dep);
    assert!(log.contains("strategy recreate"), "{log}");
    assert!(
        log.contains(&format!(
            "starting the previous version (berth_{project}_vol_2) again"
        )),
        "{log}"
    );
    assert!(log.contains("serves again"), "{log}");

    // The old version runs again, on its data: the old lines, the broken
    // version's (same volume), and the old version's second start.
    app_status_becomes(&app, &api, &project, "vol", "running").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let lines = boots(&app, &project, "vol", 4).await;
        if marks(&lines).last().is_some_and(|m| m == "v2") {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "the old version never started again: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after[..2], before[..], "{after:?}");
    let middle = marks(&after[2..after.len() - 1]);
    assert!(
        !middle.is_empty() && middle.iter().all(|m| m == "broken"),
        "{after:?}"
    );
    assert_eq!(
        project_containers(&project),
        [format!("berth_{project}_vol_2")]
    );
}

/// One request through the edge during the deploys.
struct Sample {
    host: String,
    outcome: Result<u16, String>,
    took: Duration,
}

#[tokio::test]
async fn requests_through_the_edge_never_fail_during_rolling_and_recreate_deploys() {
    /// Bounds of the load: at most this many requests, for at most this long.
    const MAX_REQUESTS: usize = 1500;
    const TIME_LIMIT: Duration = Duration::from_secs(150);
    const PAUSE: Duration = Duration::from_millis(40);

    let (app, project, api) = berth("load").await;
    create_running(
        &app,
        &api,
        &project,
        json!({"name": "web", "image": "berth-test/web", "port": 8080}),
    )
    .await;
    create_running(
        &app,
        &api,
        &project,
        json!({"name": "vol", "image": "berth-test/volume", "port": 8080}),
    )
    .await;
    api.settings_of(&app, &project, "web", json!({"drain_secs": 1}))
        .await;
    assert_eq!(
        app_volumes(&app, &api, &project, "web").await["strategy"],
        "rolling"
    );
    assert_eq!(
        app_volumes(&app, &api, &project, "vol").await["strategy"],
        "recreate"
    );

    let web = host("web", &project);
    let vol = host("vol", &project);
    let client = app.edge_client(&[&web, &vol]);
    let targets = [
        (web.clone(), app.edge_url(&web, "/")),
        (vol.clone(), app.edge_url(&vol, "/boots")),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut samples = Vec::new();
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                assert!(
                    samples.len() < MAX_REQUESTS && started.elapsed() < TIME_LIMIT,
                    "the deploys outlasted the load's bounds"
                );
                for (host, url) in &targets {
                    let t = Instant::now();
                    let outcome = match client.get(url).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            match r.bytes().await {
                                Ok(_) => Ok(status),
                                Err(e) => Err(format!("body: {e}")),
                            }
                        }
                        Err(e) => Err(format!("{e:?}")),
                    };
                    samples.push(Sample {
                        host: host.clone(),
                        outcome,
                        took: t.elapsed(),
                    });
                }
                tokio::time::sleep(PAUSE).await;
            }
            samples
        }
    });

    let started = Instant::now();
    for _ in 0..3 {
        let dep = deployed(&app, &api, &project, "web", "deploy").await;
        assert!(deployment_log(&dep).contains("strategy rolling"), "{dep}");
    }
    for _ in 0..3 {
        let dep = deployed(&app, &api, &project, "vol", "deploy").await;
        let log = deployment_log(&dep);
        assert!(log.contains("strategy recreate"), "{log}");
        assert!(log.contains("holding the app's requests"), "{log}");
    }
    let deploying = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let samples = load.await.expect("the load ran within its bounds");

    let failed: Vec<String> = samples
        .iter()
        .filter(|s| s.outcome != Ok(200))
        .map(|s| format!("{} after {:?}: {:?}", s.host, s.took, s.outcome))
        .collect();
    let longest = |h: &str| {
        samples
            .iter()
            .filter(|s| s.host == h)
            .map(|s| s.took)
            .max()
            .unwrap_or_default()
    };
    println!(
        "{} requests during 6 deploys ({deploying:?}); {} failed; longest: rolling {:?}, recreate {:?}",
        samples.len(),
        failed.len(),
        longest(&web),
        longest(&vol)
    );
    assert!(failed.is_empty(), "failed requests:\n{}", failed.join("\n"));
    assert!(samples.len() >= 100, "only {} requests", samples.len());
    // Every recreate started the same volume again.
    assert_eq!(boots(&app, &project, "vol", 4).await.len(), 4);
}

#[tokio::test]
async fn an_app_deployed_before_volumes_existed_keeps_its_data_at_its_first_deploy_after_the_upgrade()
 {
    let mut own = Own::default();
    let (mut app, project, api) = berth("legacy").await;
    create_running(
        &app,
        &api,
        &project,
        json!({"name": "old", "image": "berth-test/volume", "port": 8080}),
    )
    .await;
    app.stop();

    // This rebuilds the state the previous release (before volumes) left:
    // its container, with the same name and labels but no berth.kind,
    // berth.resource or berth.service, and its image's /data in an
    // anonymous volume; no named volume, no app_volumes rows; the app and
    // its deployment pointing at that container.
    let name = format!("berth_{project}_old_1");
    let old_id = docker(&["inspect", "-f", "{{.Id}}", &name]);
    let labels: serde_json::Map<String, Value> = serde_json::from_str(&docker(&[
        "inspect",
        "-f",
        "{{json .Config.Labels}}",
        &name,
    ]))
    .unwrap();
    docker(&["rm", "-f", &name]);
    docker(&["volume", "rm", &format!("berth_{project}_old_data")]);
    let mut args: Vec<String> = ["run", "-d", "--name", name.as_str()]
        .map(str::to_owned)
        .to_vec();
    for (key, value) in &labels {
        if !matches!(
            key.as_str(),
            "berth.kind" | "berth.resource" | "berth.service"
        ) {
            args.extend([
                "--label".to_owned(),
                format!("{key}={}", value.as_str().unwrap()),
            ]);
        }
    }
    let network = format!("berth_{project}");
    args.extend(
        [
            "--network",
            network.as_str(),
            "--network-alias",
            "old",
            "--restart",
            "unless-stopped",
            "-p",
            "127.0.0.1::8080",
            "berth-test/volume:latest",
        ]
        .map(str::to_owned),
    );
    let legacy_id = docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let anonymous = docker(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", &name]);
    assert!(
        !anonymous.is_empty() && !anonymous.starts_with("berth_"),
        "{anonymous}"
    );
    own.volumes.push(anonymous.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Command::new("docker")
        .args(["exec", &name, "/busybox", "test", "-s", "/data/boots"])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the legacy container never booted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    docker(&[
        "exec",
        &name,
        "/busybox",
        "sh",
        "-c",
        "echo legacy line one >> /data/boots; echo legacy line two >> /data/boots",
    ]);
    let port = docker(&["port", &name, "8080/tcp"]);
    let port: u16 = port
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a published port: {port}"));
    let app_id = format!(
        "(SELECT a.id FROM apps a JOIN projects p ON p.id = a.project_id WHERE p.name = '{project}' AND a.name = 'old')"
    );
    sqlite(
        &app,
        &format!(
            "DELETE FROM app_volumes WHERE app_id = {app_id};
             UPDATE apps SET container_id = '{legacy_id}', host_port = {port} WHERE id = {app_id};
             UPDATE deployments SET container_id = '{legacy_id}' WHERE container_id = '{old_id}';"
        ),
    );

    let token = api.token.clone();
    let app = app.restart_on_same_data_after(|| {}).await;
    let api = Api { token };
    let before = boots(&app, &project, "old", 3).await;
    assert_eq!(
        before[1..],
        ["legacy line one", "legacy line two"],
        "{before:?}"
    );

    // The first deploy after the upgrade moves the data into a named volume.
    let dep = deployed(&app, &api, &project, "old", "deploy").await;
    let log = deployment_log(&dep);
    assert!(log.contains("moved"), "{log}");
    assert!(log.contains("at /data"), "{log}");
    let after = boots(&app, &project, "old", 4).await;
    assert_eq!(after[..3], before[..], "{after:?}");
    assert_eq!(after.len(), 4, "{after:?}");
    let volume = format!("berth_{project}_old_data");
    let serving = format!("berth_{project}_old_{}", dep["number"]);
    assert_eq!(mounts_of(&serving), [format!("{volume}:/data:true")]);
    let volumes = app_volumes(&app, &api, &project, "old").await;
    assert_eq!(
        volumes["volumes"][0]["source"],
        volume.as_str(),
        "{volumes}"
    );
    assert_eq!(volumes["volumes"][0]["from_image"], true, "{volumes}");

    // berth removed the old container but not its anonymous volume; the test does.
    assert!(!container_exists(&name));
    assert!(
        volume_exists(&anonymous),
        "berth never removes a volume by itself"
    );
    docker(&["volume", "rm", &anonymous]);
}
