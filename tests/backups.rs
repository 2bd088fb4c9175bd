//! Backups of a stack's PostgreSQL service through a real `berth serve`:
//! a stack installed from a compose file with `berth-test/postgres`, its
//! rows backed up to a local directory and a real S3 server (s3s-fs) at
//! once, deleted, restored through the API and back; an S3 destination
//! that is down fails alone; retention deletes exactly the oldest; a
//! `kill -9` of berth mid-backup leaves nothing behind; a scheduled run
//! missed while berth was down runs once at start.
//!
//! Needs Docker, `berth-test/postgres:latest` (docker/test-images) and the
//! `s3s-fs` binary (tests/run installs it).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

const IMAGE: &str = "berth-test/postgres:latest";
const ACCESS_KEY: &str = "berthtest";
const SECRET_KEY: &str = "berthtestsecret";
/// Quotes, a parenthesis and a space: the characters that broke the anchors' dumps.
const PASSWORD: &str = "p)w'd \"x";

fn compose() -> String {
    format!(
        "services:\n  db:\n    image: {IMAGE}\n    environment:\n      POSTGRES_USER: app\n      POSTGRES_PASSWORD: ${{DB_PASSWORD}}\n      POSTGRES_DB: shop\n    volumes:\n      - data:/var/lib/postgresql/data\nvolumes:\n  data: {{}}\n"
    )
}

/// A real S3 server: s3s-fs on 127.0.0.1, its own directory; killed on drop.
struct S3Server {
    child: std::process::Child,
    port: u16,
    root: tempfile::TempDir,
}

impl S3Server {
    fn start(bucket: &str) -> S3Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(bucket)).unwrap();
        let port = free_port();
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let installed = PathBuf::from(home).join(".cargo/bin/s3s-fs");
        let binary = if installed.exists() {
            installed
        } else {
            PathBuf::from("s3s-fs")
        };
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs is needed: cargo install s3s-fs@0.14.1 --features binary --locked");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        S3Server { child, port, root }
    }

    fn files(&self, bucket: &str) -> Vec<String> {
        files_under(&self.root.path().join(bucket))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn psql(container: &str, sql: &str) -> String {
    let out = Command::new("docker")
        .args([
            "exec",
            container,
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-U",
            "app",
            "-d",
            "shop",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Installs the stack `data` with the PostgreSQL service `db` and waits until it takes queries.
async fn install_postgres(app: &TestApp, api: &Api, project: &str) -> String {
    let stacks = format!("/api/v1/projects/{project}/stacks");
    let (status, body) = api
        .post(
            app,
            &stacks,
            json!({"name": "data", "compose": compose(), "inputs": {"DB_PASSWORD": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stack = api.get(app, &format!("{stacks}/data")).await;
        if stack["status"] == "running" {
            break;
        }
        assert!(
            Instant::now() < deadline && stack["status"] != "failed",
            "{stack}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let container = format!("berth_{project}_data_db");
    // Ready once it accepts TCP: the entrypoint's init server listens on the socket only.
    let deadline = Instant::now() + Duration::from_secs(90);
    while !Command::new("docker")
        .args([
            "exec",
            &container,
            "pg_isready",
            "-h",
            "127.0.0.1",
            "-U",
            "app",
            "-d",
            "shop",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "postgres did not get ready");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    container
}

async fn create_destination(app: &TestApp, api: &Api, body: Value) -> i64 {
    let (status, d) = api.post(app, "/api/v1/backup-destinations", body).await;
    assert_eq!(status, 201, "{d}");
    d["id"].as_i64().unwrap()
}

fn s3_destination(name: &str, port: u16) -> Value {
    json!({
        "name": name, "kind": "s3", "endpoint": format!("http://127.0.0.1:{port}"),
        "region": "us-east-1", "bucket": "backups", "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY, "path_style": true
    })
}

async fn local_destination(app: &TestApp, api: &Api) -> i64 {
    let list = api.get(app, "/api/v1/backup-destinations").await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "local")
        .expect("berth makes a local destination")["id"]
        .as_i64()
        .unwrap()
}

/// Starts a backup of the service `db` and returns its id.
async fn back_up(app: &TestApp, api: &Api, project: &str, body: Value) -> i64 {
    let path = format!("/api/v1/projects/{project}/stacks/data/services/db/backups");
    let (status, queued) = api.post(app, &path, body).await;
    assert_eq!(status, 202, "{queued}");
    queued["id"].as_i64().unwrap()
}

async fn wait_for_backup(app: &TestApp, api: &Api, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let b = api.get(app, &format!("/api/v1/backups/{id}")).await;
        if !matches!(b["status"].as_str(), Some("queued" | "running")) {
            return b;
        }
        assert!(Instant::now() < deadline, "backup {id} never ended: {b}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn copy<'a>(backup: &'a Value, destination: &str) -> &'a Value {
    backup["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["destination"] == destination)
        .unwrap_or_else(|| panic!("no copy at {destination}: {backup}"))
}

#[tokio::test]
async fn rows_come_back_after_a_backup_to_local_and_s3_a_failed_s3_fails_alone_and_retention_deletes_the_oldest()
 {
    let s3 = S3Server::start("backups");
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("bk").await;
    let api = Api::new(&app);

    let s3_id = create_destination(&app, &api, s3_destination("s3", s3.port)).await;
    let (status, test) = api
        .post(
            &app,
            &format!("/api/v1/backup-destinations/{s3_id}/test"),
            json!({}),
        )
        .await;
    assert_eq!((status, &test["ok"]), (200, &json!(true)), "{test}");
    let shown = api
        .get(&app, "/api/v1/backup-destinations")
        .await
        .to_string();
    assert!(!shown.contains(SECRET_KEY), "the S3 secret is never shown");
    let local_id = local_destination(&app, &api).await;

    let db = install_postgres(&app, &api, &project).await;
    psql(
        &db,
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g",
    );

    let first = back_up(&app, &api, &project, json!({})).await;
    let b = wait_for_backup(&app, &api, first).await;
    assert_eq!(b["status"], "succeeded", "{b}");
    assert!(b["dump_bytes"].as_i64().unwrap() > 10_000, "{b}");
    let sha = b["sha256"].as_str().unwrap().to_owned();
    for name in ["local", "s3"] {
        let c = copy(&b, name);
        assert_eq!(c["status"], "ok", "{b}");
        assert_eq!(c["sha256"], sha.as_str());
        assert!(c["size"].as_i64().unwrap() > 0);
    }
    let key = copy(&b, "s3")["key"].as_str().unwrap().to_owned();
    assert_eq!(s3.files("backups"), std::slice::from_ref(&key));
    let local_files = files_under(&app.data_dir.join("backups"));
    assert_eq!(local_files, std::slice::from_ref(&key));
    // The password is in no log line or API answer.
    assert!(!b.to_string().contains(PASSWORD));
    // The job container is gone.
    assert_eq!(
        common::docker_list(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=berth.backup={first}")
        ]),
        Vec::<String>::new()
    );

    // The pages: the stack links its database service to its backups,
    // which show each destination's result and the restore form.
    let stack_page = app
        .get_html(&format!("/projects/{project}/stacks/data"))
        .await;
    let section = format!("/projects/{project}/stacks/data/services/db/backups");
    assert!(
        stack_page.contains(&format!("href=\"{section}\"")),
        "{stack_page}"
    );
    let page = app.get_html(&section).await;
    assert!(page.contains(&format!("id=\"backup-{first}\"")), "{page}");
    assert!(page.contains("data-status=\"succeeded\"") && page.contains("Restore into db"));
    assert!(page.contains(&sha[..12]) && !page.contains(PASSWORD));
    let overview = app.get_html("/backups").await;
    assert!(overview.contains(&format!("id=\"destination-{s3_id}\"")));
    assert!(
        overview.contains(&format!("{project}/data/db")),
        "{overview}"
    );
    assert!(!overview.contains(SECRET_KEY));

    psql(&db, "DELETE FROM items");
    assert_eq!(psql(&db, "SELECT count(*) FROM items"), "0");

    // A restore needs the database's name typed.
    let (status, refused) = api
        .post(
            &app,
            &format!("/api/v1/backups/{first}/restore"),
            json!({"target": "same", "confirm": "shop"}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["fields"]["confirm"].to_string().contains("db"),
        "{refused}"
    );
    let (status, restore) = api
        .post(
            &app,
            &format!("/api/v1/backups/{first}/restore"),
            json!({"target": "same", "confirm": "db"}),
        )
        .await;
    assert_eq!(status, 202, "{restore}");
    let restore_url = restore["url"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(180);
    let restore = loop {
        let r = api.get(&app, &restore_url).await;
        if r["status"] != "running" {
            break r;
        }
        assert!(Instant::now() < deadline, "restore never ended: {r}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(restore["status"], "succeeded", "{restore}");
    assert_eq!(psql(&db, "SELECT count(*) FROM items"), "5000");
    assert_eq!(
        psql(&db, "SELECT name FROM items WHERE id = 4321"),
        "item 4321"
    );
    // The safety backup taken before the restore holds the empty table.
    let safety = api
        .get(
            &app,
            &format!("/api/v1/backups/{}", restore["safety_backup_id"]),
        )
        .await;
    assert_eq!(
        (&safety["trigger"], &safety["status"]),
        (&json!("safety"), &json!("succeeded")),
        "{safety}"
    );

    // S3 down (a closed port): the local copy succeeds, the S3 failure is recorded with its error.
    let down = create_destination(&app, &api, s3_destination("s3-down", free_port())).await;
    let second = back_up(
        &app,
        &api,
        &project,
        json!({"destinations": [local_id, down]}),
    )
    .await;
    let b = wait_for_backup(&app, &api, second).await;
    assert_eq!(b["status"], "partial", "{b}");
    assert_eq!(copy(&b, "local")["status"], "ok", "{b}");
    let failed = copy(&b, "s3-down");
    assert_eq!(failed["status"], "failed", "{b}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.to_lowercase().contains("connect") || error.contains("refused"),
        "the S3 client's own error: {error}"
    );

    // Retention: keep the last 2 at the local directory. Live there now:
    // first, second; a third backup makes the first the one to go.
    let (status, body) = api
        .send(
            &app,
            Method::PUT,
            &format!("/api/v1/backup-destinations/{local_id}"),
            Some(json!({"name": "local", "kind": "local", "keep_last": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let third = back_up(
        &app,
        &api,
        &project,
        json!({"destinations": [local_id, s3_id]}),
    )
    .await;
    assert_eq!(
        wait_for_backup(&app, &api, third).await["status"],
        "succeeded"
    );
    let first_after = api.get(&app, &format!("/api/v1/backups/{first}")).await;
    assert_eq!(
        copy(&first_after, "local")["status"],
        "deleted",
        "{first_after}"
    );
    assert_eq!(
        copy(&first_after, "s3")["status"],
        "ok",
        "S3 has no retention set"
    );
    for (id, want) in [(second, "ok"), (third, "ok")] {
        let b = api.get(&app, &format!("/api/v1/backups/{id}")).await;
        assert_eq!(copy(&b, "local")["status"], want, "{b}");
    }
    let mut local_keys = Vec::new();
    for id in [second, third] {
        let b = api.get(&app, &format!("/api/v1/backups/{id}")).await;
        local_keys.push(copy(&b, "local")["key"].as_str().unwrap().to_owned());
    }
    let mut on_disk: Vec<String> = files_under(&app.data_dir.join("backups"))
        .into_iter()
        .filter(|f| !f.contains(&format!("-{}.", restore["safety_backup_id"])))
        .collect();
    on_disk.sort();
    let mut want = local_keys;
    want.sort();
    assert_eq!(on_disk, want, "exactly the oldest was deleted");
    drop(app);
}

/// Waits until the backup runs and its dump container is up.
async fn wait_until_dumping(app: &TestApp, api: &Api, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = api.get(app, &format!("/api/v1/backups/{id}")).await;
        let running =
            !common::docker_list(&["ps", "-q", "--filter", &format!("label=berth.backup={id}")])
                .is_empty();
        if b["status"] == "running" && running {
            return;
        }
        assert!(
            Instant::now() < deadline && matches!(b["status"].as_str(), Some("queued" | "running")),
            "the backup should be running: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cancelled_backup_and_kill_9_of_berth_mid_backup_leave_nothing_behind_and_the_next_backup_works()
 {
    let s3 = S3Server::start("backups");
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("bkkill").await;
    let api = Api::new(&app);
    create_destination(&app, &api, s3_destination("s3", s3.port)).await;
    let db = install_postgres(&app, &api, &project).await;
    // Enough rows that the dump takes a while.
    psql(
        &db,
        "CREATE TABLE big (id int, body text); INSERT INTO big SELECT g, repeat(md5(g::text), 30) FROM generate_series(1, 400000) g",
    );
    // Cancel stops the dump for real: its container goes and nothing is kept.
    let cancelled = back_up(&app, &api, &project, json!({})).await;
    wait_until_dumping(&app, &api, cancelled).await;
    let (status, body) = api
        .post(
            &app,
            &format!("/api/v1/backups/{cancelled}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!((status, &body["cancelled"]), (200, &json!(true)), "{body}");
    let b = wait_for_backup(&app, &api, cancelled).await;
    assert_eq!(b["status"], "cancelled", "{b}");
    assert_eq!(
        common::docker_list(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=berth.backup={cancelled}")
        ]),
        Vec::<String>::new()
    );
    assert_eq!(
        files_under(&app.data_dir.join("backups")),
        Vec::<String>::new()
    );
    assert_eq!(s3.files("backups"), Vec::<String>::new());

    let id = back_up(&app, &api, &project, json!({})).await;
    wait_until_dumping(&app, &api, id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let app = app.restart_on_same_data_after(|| {}).await;
    let api = Api::new(&app);

    let deadline = Instant::now() + Duration::from_secs(30);
    let b = loop {
        let b = api.get(&app, &format!("/api/v1/backups/{id}")).await;
        if b["status"] == "interrupted" {
            break b;
        }
        assert!(Instant::now() < deadline, "not marked interrupted: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(b["sha256"].is_null(), "{b}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !common::docker_list(&["ps", "-aq", "--filter", &format!("label=berth.backup={id}")])
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the dump's container was left behind"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = files_under(&app.data_dir.join("backups"));
    assert_eq!(
        left,
        Vec::<String>::new(),
        "no partial or complete file is left"
    );
    assert_eq!(
        s3.files("backups"),
        Vec::<String>::new(),
        "no object is left"
    );

    let next = back_up(&app, &api, &project, json!({})).await;
    let b = wait_for_backup(&app, &api, next).await;
    assert_eq!(b["status"], "succeeded", "{b}");
    assert_eq!(s3.files("backups").len(), 1);
}

#[tokio::test]
async fn a_scheduled_run_missed_while_berth_was_down_runs_once_at_start() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("bksched").await;
    let api = Api::new(&app);
    install_postgres(&app, &api, &project).await;
    let schedules = format!("/api/v1/projects/{project}/stacks/data/services/db/backup-schedules");
    let (status, bad) = api
        .post(&app, &schedules, json!({"cron": "61 * * * *"}))
        .await;
    assert_eq!(status, 422, "{bad}");
    let (status, s) = api
        .post(
            &app,
            &schedules,
            json!({"cron": "* * * * *", "time_zone": "Europe/Berlin"}),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    assert_eq!(s["next_runs"].as_array().unwrap().len(), 5, "{s}");
    // Down across two runs: they collapse into one at start.
    let app = app
        .restart_on_same_data_after(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let to_second_boundary = 120 - now % 60;
            std::thread::sleep(Duration::from_secs(to_second_boundary + 1));
        })
        .await;
    let api = Api::new(&app);
    let list_path = format!("/api/v1/projects/{project}/stacks/data/services/db/backups");
    let deadline = Instant::now() + Duration::from_secs(40);
    let scheduled = loop {
        let list = api.get(&app, &list_path).await;
        let scheduled: Vec<Value> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["trigger"] == "schedule")
            .cloned()
            .collect();
        if !scheduled.is_empty() {
            break scheduled;
        }
        assert!(Instant::now() < deadline, "the missed run did not run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    let id = scheduled[0]["id"].as_i64().unwrap();
    let b = wait_for_backup(&app, &api, id).await;
    assert_eq!(b["status"], "succeeded", "{b}");
}
