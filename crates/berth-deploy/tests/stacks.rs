//! Stacks against the real Docker daemon and a real SQLite store: a
//! template with a generated password shared by a Postgres service
//! (`berth-test/postgres`, Debian's postgresql-15 built offline by
//! docker/test-images) and a one-shot service that logs in with it; the
//! database unreachable from another project's network; an update that
//! recreates only what changed; an uninstall that leaves nothing.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_core::{ProjectName, StackName, StackSource, StackStatus};
use berth_deploy::{Options, Runtime, ServiceState, StackRequest, StackUpdate};
use berth_docker::DockerClient;
use berth_store::Store;

#[path = "../../../tests/common/git.rs"]
mod git;
use git::{file_url, git, git_repo};

/// A template with a database, a one-shot check that logs in to it with
/// the generated password, and a web service that reads an input.
const TEMPLATE: &str = r#"
metadata:
  name: Check
  description: A database and a one-shot login check.
  category: test
  service: web
  port: 8080
  version: "1"
inputs:
  - name: GREETING
    default: hello
generated:
  - name: DB_PASSWORD
    kind: password
    length: 24
routes:
  - service: web
    port: 8080
    url: WEB_URL
compose:
  services:
    db:
      image: berth-test/postgres:latest
      environment:
        POSTGRES_USER: app
        POSTGRES_PASSWORD: ${DB_PASSWORD}
        POSTGRES_DB: app
      volumes:
        - db:/var/lib/postgresql/data
      healthcheck:
        test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U app -d app"]
        interval: 1s
        timeout: 3s
        retries: 60
    check:
      image: berth-test/postgres:latest
      command: ["psql", "postgres://app:${DB_PASSWORD}@db:5432/app", "-c", "select 'logged in'"]
      depends_on:
        db:
          condition: service_healthy
    web:
      image: berth-test/web:latest
      environment:
        GREETING: ${GREETING}
        WEB_URL: ${WEB_URL}
      depends_on:
        check:
          condition: service_completed_successfully
  volumes:
    db:
"#;

struct Env {
    runtime: Runtime,
    run: String,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        // Whatever a failed test left: containers, then networks and volumes.
        let label = format!("label=berth.test={}", self.run);
        for (kind, ls) in [
            ("container", vec!["ps", "-aq", "--filter", &label]),
            ("network", vec!["network", "ls", "-q", "--filter", &label]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &label]),
            // Images built for stacks from git.
            ("image", vec!["images", "-q", "--filter", &label]),
        ] {
            for id in docker(&ls).lines() {
                let rm: Vec<&str> = match kind {
                    "container" => vec!["rm", "-f", id],
                    "image" => vec!["rmi", "-f", id],
                    other => vec![other, "rm", "-f", id],
                };
                let _ = Command::new("docker").args(&rm).output();
            }
        }
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let docker = DockerClient::connect(None).unwrap();
    let runtime = Runtime::new(store, docker).await.unwrap();
    // One label per test: a failing test's cleanup must not take another's containers.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let run = format!("stacks-{}-{n}", std::process::id());
    runtime
        .configure(Options {
            object_labels: BTreeMap::from([("berth.test".to_owned(), run.clone())]),
            // Stacks from git are cloned from repositories in temp dirs.
            git_file_root: Some(std::env::temp_dir()),
            ..Default::default()
        })
        .unwrap();
    Env {
        runtime,
        run,
        _dir: dir,
    }
}

async fn project(env: &Env, name: &str) -> ProjectName {
    let name = ProjectName::parse(&format!("{name}-{}", std::process::id() % 100_000)).unwrap();
    env.runtime
        .services()
        .projects
        .create_project(&name)
        .await
        .unwrap();
    name
}

fn request(name: &str, text: &str) -> StackRequest {
    StackRequest {
        name: StackName::parse(name).unwrap(),
        source: StackSource::Compose {
            text: text.to_owned(),
        },
        inputs: BTreeMap::new(),
        confirm_dangerous: false,
        publish: Vec::new(),
        domains: BTreeMap::new(),
    }
}

/// Waits until the stack is no longer installing or updating.
async fn settled(env: &Env, project: &ProjectName, stack: &StackName) -> berth_deploy::StackView {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let view = env
            .runtime
            .services()
            .stacks
            .get(project, stack)
            .await
            .unwrap();
        if !matches!(
            view.stack.status,
            StackStatus::Installing | StackStatus::Updating
        ) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "stack still {:?}",
            view.stack.status
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the stack settles, which must be as running.
async fn running(env: &Env, project: &ProjectName, stack: &StackName) -> berth_deploy::StackView {
    let view = settled(env, project, stack).await;
    assert_eq!(
        view.stack.status,
        StackStatus::Running,
        "{:?}",
        view.stack.message
    );
    view
}

/// A container's environment, one `KEY=value` a line.
fn env_of(container: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        "{{range .Config.Env}}{{println .}}{{end}}",
        container,
    ])
}

/// `pg_isready -h host` in a container on `network`, labelled for `env`'s cleanup.
fn pg_isready(env: &Env, network: &str, host: &str, timeout_secs: &str) -> std::process::Output {
    Command::new("docker")
        .args([
            "run",
            "--rm",
            "--label",
            &format!("berth.test={}", env.run),
            "--network",
            network,
            "berth-test/postgres:latest",
            "pg_isready",
            "-h",
            host,
            "-t",
            timeout_secs,
        ])
        .output()
        .unwrap()
}

fn state_of<'a>(view: &'a berth_deploy::StackView, service: &str) -> &'a ServiceState {
    &view
        .services
        .iter()
        .find(|s| s.name == service)
        .unwrap()
        .state
}

#[tokio::test]
async fn a_template_installs_with_a_shared_generated_password_a_one_shot_login_and_no_open_port() {
    let env = env().await;
    let stacks = env.runtime.services().stacks;
    let p = project(&env, "stk").await;
    let other = project(&env, "stk-other").await;
    let name = StackName::parse("check").unwrap();

    // The dry run shows the generated value by name only.
    let preview = stacks.plan(&p, &request("check", TEMPLATE)).await.unwrap();
    assert!(preview.plan.is_ok(), "{:?}", preview.plan.errors);
    let json = serde_json::to_string(&preview.plan).unwrap();
    assert!(json.contains("DB_PASSWORD"), "{json}");

    let stack = stacks
        .install(&p, request("check", TEMPLATE))
        .await
        .unwrap();
    assert_eq!(stack.status, StackStatus::Installing);
    let view = running(&env, &p, &name).await;
    assert_eq!(state_of(&view, "check"), &ServiceState::Done);
    assert_eq!(state_of(&view, "db"), &ServiceState::Running);
    assert_eq!(state_of(&view, "web"), &ServiceState::Running);
    let logs = stacks.service_logs(&p, &name, "check", 20).await.unwrap();
    assert!(
        logs.iter().any(|l| l.contains("logged in")),
        "the one-shot service logged in with the generated password: {logs:?}"
    );

    // The password is the same in both services, and not a placeholder.
    let db = format!("berth_{p}_check_db");
    let password = env_of(&db)
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD=").map(str::to_owned))
        .unwrap();
    assert_eq!(password.len(), 24);
    let check_cmd = docker(&[
        "inspect",
        "-f",
        "{{json .Config.Cmd}}",
        &format!("berth_{p}_check_check"),
    ]);
    assert!(check_cmd.contains(&password), "{check_cmd}");
    assert!(!json.contains(&password));

    // Nothing is published on the host.
    assert_eq!(docker(&["port", &db]), "");
    assert!(view.services.iter().all(|s| s.published.is_empty()));

    // From another project's network the database cannot be reached, by
    // name or by address.
    let ip = docker(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"berth_{p}_check\").IPAddress}}}}"),
        &db,
    ]);
    assert!(!ip.is_empty());
    let other_network = format!("berth_{other}");
    assert!(!pg_isready(&env, &other_network, "db", "3").status.success());
    assert!(!pg_isready(&env, &other_network, &ip, "3").status.success());
    // …while from the stack's own network it answers (the probe works).
    let own = pg_isready(&env, &format!("berth_{p}_check"), "db", "10");
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stdout)
    );

    // An update with a new input recreates only the service that reads it,
    // and keeps the generated password.
    let db_id = docker(&["inspect", "-f", "{{.Id}}", &db]);
    let update = || StackUpdate {
        inputs: BTreeMap::from([("GREETING".to_owned(), "bonjour".to_owned())]),
        ..StackUpdate::default()
    };
    let same = stacks
        .update_preview(&p, &name, StackUpdate::default())
        .await
        .unwrap();
    assert!(same.changed.is_empty(), "nothing changes: {same:?}");
    let preview = stacks.update_preview(&p, &name, update()).await.unwrap();
    assert_eq!(preview.changed, vec!["web".to_owned()]);
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", &db]), db_id);
    let outcome = stacks.update(&p, &name, update()).await.unwrap();
    assert_eq!(outcome.changed, vec!["web".to_owned()]);
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", &db]), db_id);
    assert!(env_of(&format!("berth_{p}_check_web")).contains("GREETING=bonjour"));
    assert!(env_of(&db).contains(&password));

    // The Storage page shows the stack's volume as the stack's, and will
    // not delete it while the stack is installed.
    let storage = env.runtime.services().storage;
    let volume = format!("berth_{p}_check_db");
    let listed = storage.list_storage().await.unwrap();
    let row = listed.iter().find(|v| v.name == volume).unwrap();
    assert_eq!(row.stack.as_deref(), Some(format!("{p}/check").as_str()));
    assert!(!row.orphaned());
    assert!(storage.delete_volume(&volume, &volume).await.is_err());

    // Uninstall keeping the volumes keeps them; then the volume is orphaned.
    stacks.uninstall(&p, &name, false).await.unwrap();
    let listed = storage.list_storage().await.unwrap();
    assert!(listed.iter().find(|v| v.name == volume).unwrap().orphaned());
    assert_eq!(
        docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]),
        volume
    );
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &format!("label=berth.project={p}")]),
        "",
        "uninstall removes every container of the stack"
    );
    let _ = Command::new("docker")
        .args(["volume", "rm", "-f", &volume])
        .output();
    let _ = Command::new("docker")
        .args([
            "volume",
            "rm",
            "-f",
            &format!("berth_{p}_check_check-var-lib-postgresql-data"),
        ])
        .output();
}

#[tokio::test]
async fn uninstall_with_delete_volumes_leaves_nothing_labelled() {
    let env = env().await;
    let stacks = env.runtime.services().stacks;
    let p = project(&env, "stk-rm").await;
    let name = StackName::parse("gone").unwrap();
    stacks.install(&p, request("gone", TEMPLATE)).await.unwrap();
    running(&env, &p, &name).await;
    stacks.uninstall(&p, &name, true).await.unwrap();
    let filter = format!("label=berth.project={p}");
    for ls in [
        vec![
            "ps",
            "-aq",
            "--filter",
            &filter,
            "--filter",
            "label=berth.kind=stack",
        ],
        vec!["volume", "ls", "-q", "--filter", &filter],
        vec![
            "network",
            "ls",
            "-q",
            "--filter",
            "label=berth.kind=stack",
            "--filter",
            &filter,
        ],
    ] {
        assert_eq!(docker(&ls), "", "{ls:?}");
    }
    assert!(stacks.get(&p, &name).await.is_err());
}

#[tokio::test]
async fn a_plan_with_errors_or_unconfirmed_dangers_installs_nothing() {
    let env = env().await;
    let stacks = env.runtime.services().stacks;
    let p = project(&env, "stk-bad").await;
    let bad = "services:\n  a:\n    image: berth-test/web:latest\n    frobnicate: 1\n";
    let err = stacks.install(&p, request("bad", bad)).await.unwrap_err();
    assert!(err.to_string().contains("frobnicate"), "{err}");
    let dangerous = "services:\n  a:\n    image: berth-test/web:latest\n    privileged: true\n";
    let err = stacks
        .install(&p, request("bad", dangerous))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("confirmation"), "{err}");
    assert!(stacks.list(&p).await.unwrap().is_empty());
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &format!("label=berth.project={p}")]),
        ""
    );
    // An app's name cannot be a stack's, nor the reverse.
    let ok = "services:\n  a:\n    image: berth-test/web:latest\n";
    stacks.install(&p, request("taken", ok)).await.unwrap();
    settled(&env, &p, &StackName::parse("taken").unwrap()).await;
    let app = env
        .runtime
        .services()
        .apps
        .create_app_from(
            &p,
            berth_core::NewApp {
                name: berth_core::AppName::parse("taken").unwrap(),
                image: berth_core::ImageRef::parse("berth-test/web:latest").unwrap(),
                container_port: berth_core::Port::try_from(8080u32).unwrap(),
                command: None,
                dangerous_mounts: false,
            },
            berth_core::deployment::Source::Image,
            Vec::new(),
            None,
        )
        .await;
    assert!(app.is_err());
    stacks
        .uninstall(&p, &StackName::parse("taken").unwrap(), true)
        .await
        .unwrap();
}

/// Coolify's own format, as its templates are written: the `# key: value`
/// header, `SERVICE_USER_*` / `SERVICE_PASSWORD_*` made at install and shared,
/// a `SERVICE_URL_*_<port>` route, and service names with `_`.
const COOLIFY: &str = r#"# documentation: https://example.org/docs
# slogan: A database and a login check, in Coolify's format.
# category: test
# tags: test,postgres
# port: 8080

services:
  web_app:
    image: berth-test/web:latest
    environment:
      - SERVICE_URL_WEB_APP_8080
      - DB_USER=${SERVICE_USER_POSTGRES}
    depends_on:
      login_check:
        condition: service_completed_successfully
  pg_db:
    image: berth-test/postgres:latest
    environment:
      - POSTGRES_USER=${SERVICE_USER_POSTGRES}
      - POSTGRES_PASSWORD=${SERVICE_PASSWORD_POSTGRES}
      - POSTGRES_DB=app
    volumes:
      - pg_data:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -d app"]
      interval: 1s
      timeout: 3s
      retries: 60
  login_check:
    image: berth-test/postgres:latest
    command: ["sh", "-c", "psql \"postgres://$$U:$$P@pg_db:5432/app\" -c \"select 'logged in'\""]
    environment:
      - U=${SERVICE_USER_POSTGRES}
      - P=${SERVICE_PASSWORD_POSTGRES}
    depends_on:
      pg_db:
        condition: service_healthy
"#;

#[tokio::test]
async fn a_coolify_template_installs_as_it_is() {
    let env = env().await;
    let stacks = env.runtime.services().stacks;
    let p = project(&env, "stk-coolify").await;
    let name = StackName::parse("cool").unwrap();
    stacks.install(&p, request("cool", COOLIFY)).await.unwrap();
    let view = running(&env, &p, &name).await;
    assert_eq!(state_of(&view, "login_check"), &ServiceState::Done);
    assert_eq!(state_of(&view, "web_app"), &ServiceState::Running);
    let logs = stacks
        .service_logs(&p, &name, "login_check", 20)
        .await
        .unwrap();
    assert!(logs.iter().any(|l| l.contains("logged in")), "{logs:?}");
    // The generated user is a real value, the same in both services.
    let user = env_of(&format!("berth_{p}_cool_pg_db"))
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_USER=").map(str::to_owned))
        .unwrap();
    assert!(!user.is_empty() && !user.contains('<'), "{user}");
    assert!(env_of(&format!("berth_{p}_cool_web_app")).contains(&format!("DB_USER={user}")));
    stacks.uninstall(&p, &name, true).await.unwrap();
}

/// A compose file in a git repository whose service has `build:`: the
/// file is read from a clone and the image is built from the clone's tree
/// (a context next to the compose file, a Dockerfile of another name, a
/// build arg), then runs.
#[tokio::test]
async fn a_stack_from_git_builds_its_service_from_the_repository() {
    let env = env().await;
    let stacks = env.runtime.services().stacks;
    let p = project(&env, "stk-git").await;
    let repo = git_repo();
    let app_dir = repo.path().join("deploy").join("site");
    std::fs::create_dir_all(&app_dir).unwrap();
    std::fs::write(
        app_dir.join("web.Dockerfile"),
        "FROM berth-test/web:latest\nARG GREETING\nENV GREETING=$GREETING\nLABEL berth.test=built\nCMD [\"/busybox\", \"sh\", \"-c\", \"echo built-from-git $GREETING; trap 'exit 0' TERM; /busybox httpd -f -p 8080 -h /www & wait\"]\n",
    )
    .unwrap();
    std::fs::write(
        repo.path().join("deploy").join("compose.yaml"),
        "services:\n  web:\n    build:\n      context: site\n      dockerfile: web.Dockerfile\n      args:\n        GREETING: hello-arg\n    ports:\n      - \"8080\"\n",
    )
    .unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "stack"]);
    let name = StackName::parse("built").unwrap();
    let mut req = request("built", "");
    req.source = StackSource::Git {
        url: file_url(repo.path()),
        branch: "main".to_owned(),
        path: "deploy/compose.yaml".to_owned(),
    };
    stacks.install(&p, req).await.unwrap();
    let view = running(&env, &p, &name).await;
    assert_eq!(state_of(&view, "web"), &ServiceState::Running);
    let image = docker(&[
        "inspect",
        "-f",
        "{{.Config.Image}}",
        &format!("berth_{p}_built_web"),
    ]);
    assert!(
        image.starts_with(&format!("berth/{p}-built-web:")),
        "{image}"
    );
    let logs = stacks.service_logs(&p, &name, "web", 10).await.unwrap();
    assert!(
        logs.iter().any(|l| l.contains("built-from-git hello-arg")),
        "{logs:?}"
    );
    stacks.uninstall(&p, &name, true).await.unwrap();
    // The built image goes with the test's other objects (see `Env`'s drop).
}
