//! End to end with real PostgreSQL: rows written, `pg_dump` run in a sidecar
//! container from the database's own image on its network, the dump streamed
//! through the pipeline to a local directory and s3s-fs at once, the rows
//! deleted, the S3 copy restored with `pg_restore` from another sidecar, and
//! the rows back. The database password is `)'"$\` with a space.
//!
//! Needs Docker and `berth-test/postgres:latest` (docker/test-images; tests/run
//! builds it). Docker is driven with bollard here, in the test only; the
//! production sidecar belongs in berth-docker.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth_backup::destination::S3Destination;
use berth_backup::{
    ArtifactKey, Connection, DbIdent, DecryptionKey, Destination, DumpSource, Encryption, Engine,
    ExecCommand, LocalDir, PipelineError, PipelineOptions, SecretString, Target, restore,
    run_backup,
};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bytes::Bytes;
use common::S3Server;
use futures_util::{StreamExt, TryStreamExt};
use tokio_util::io::StreamReader;

const IMAGE: &str = "berth-test/postgres:latest";
const PASSWORD: &str = ")'\"$\\ pass word";

/// Removes every container (with its anonymous volumes) and the network on
/// drop, pass or fail.
struct Cleanup {
    containers: Vec<String>,
    network: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", "-v", c])
                .output();
        }
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
    }
}

fn labels(label: &str) -> HashMap<String, String> {
    HashMap::from([("berth.test".to_owned(), label.to_owned())])
}

/// `docker exec` of a fixed command in the database container; returns the exit code and stdout.
async fn exec(docker: &Docker, container: &str, cmd: &[&str]) -> (i64, String) {
    let config = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    };
    let id = docker.create_exec(container, config).await.unwrap().id;
    let mut stdout = String::new();
    if let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&id, None).await.unwrap()
    {
        while let Some(Ok(chunk)) = output.next().await {
            if let LogOutput::StdOut { message } = chunk {
                stdout.push_str(&String::from_utf8_lossy(&message));
            }
        }
    }
    let code = docker
        .inspect_exec(&id)
        .await
        .unwrap()
        .exit_code
        .unwrap_or(-1);
    (code, stdout)
}

async fn psql(docker: &Docker, db: &str, sql: &str) -> String {
    let (code, out) = exec(
        docker,
        db,
        &[
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
        ],
    )
    .await;
    assert_eq!(code, 0, "psql {sql}: {out}");
    out.trim().to_owned()
}

/// A one-shot container from the database's image running `cmd` on its network.
async fn sidecar(
    docker: &Docker,
    cleanup: &mut Cleanup,
    label: &str,
    name: &str,
    cmd: &ExecCommand,
    stdin: bool,
) -> String {
    let body = ContainerCreateBody {
        image: Some(IMAGE.to_owned()),
        entrypoint: Some(vec![cmd.argv[0].clone()]),
        cmd: Some(cmd.argv[1..].to_vec()),
        env: Some(cmd.env_strings()),
        labels: Some(labels(label)),
        open_stdin: Some(stdin),
        stdin_once: Some(stdin),
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        host_config: Some(HostConfig {
            network_mode: Some(cleanup.network.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    let id = docker
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id;
    cleanup.containers.push(id.clone());
    id
}

async fn exit_code(docker: &Docker, id: &str) -> std::io::Result<i64> {
    let options = WaitContainerOptionsBuilder::new()
        .condition("not-running")
        .build();
    match docker.wait_container(id, Some(options)).next().await {
        Some(Ok(r)) => Ok(r.status_code),
        // bollard reports a non-zero exit as this error.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(std::io::Error::other(e)),
        None => Err(std::io::Error::other("wait stream ended")),
    }
}

/// Runs `cmd` in a sidecar and streams its stdout through the pipeline.
async fn backup_through_sidecar(
    docker: &Docker,
    cleanup: &mut Cleanup,
    label: &str,
    name: &str,
    cmd: &ExecCommand,
    options: &PipelineOptions,
    targets: &[Target],
) -> berth_backup::BackupReport {
    let id = sidecar(docker, cleanup, label, name, cmd, false).await;
    let attach = AttachContainerOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .stream(true)
        .build();
    let attached = docker.attach_container(&id, Some(attach)).await.unwrap();
    docker.start_container(&id, None).await.unwrap();
    let tag = name.to_owned();
    let stdout = attached.output.try_filter_map(move |chunk| {
        let tag = tag.clone();
        async move {
            Ok(match chunk {
                LogOutput::StdOut { message } => Some(message),
                LogOutput::StdErr { message } => {
                    eprintln!("{tag}: {}", String::from_utf8_lossy(&message).trim_end());
                    None
                }
                _ => None,
            })
        }
    });
    let reader = StreamReader::new(
        stdout
            .map_err(std::io::Error::other)
            .map_ok(Bytes::from)
            .boxed(),
    );
    let exit = exit_code(docker, &id);
    run_backup(
        DumpSource {
            reader,
            exit,
            marker: cmd.marker.unwrap(),
        },
        options,
        targets,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_come_back_after_a_backup_to_local_and_s3_and_a_restore_from_s3() {
    let docker = Docker::connect_with_local_defaults().expect("Docker");
    assert!(
        docker.inspect_image(IMAGE).await.is_ok(),
        "{IMAGE} is missing: run docker/test-images/build postgres"
    );
    let id = format!("{:08x}", rand::random::<u32>());
    let label = format!("backups-{id}");
    let mut cleanup = Cleanup {
        containers: Vec::new(),
        network: format!("berth-test-backups-{id}"),
    };
    docker
        .create_network(NetworkCreateRequest {
            name: cleanup.network.clone(),
            driver: Some("bridge".into()),
            labels: Some(labels(&label)),
            ..Default::default()
        })
        .await
        .unwrap();

    // The database, with a password made of the characters that broke the anchors' dumps.
    let db_name = format!("berth-test-backups-{id}-db");
    let body = ContainerCreateBody {
        image: Some(IMAGE.to_owned()),
        env: Some(vec![
            "POSTGRES_USER=app".into(),
            format!("POSTGRES_PASSWORD={PASSWORD}"),
            "POSTGRES_DB=shop".into(),
        ]),
        labels: Some(labels(&label)),
        host_config: Some(HostConfig {
            network_mode: Some(cleanup.network.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let db = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&db_name).build()),
            body,
        )
        .await
        .unwrap()
        .id;
    cleanup.containers.push(db.clone());
    docker.start_container(&db, None).await.unwrap();
    // Ready once it accepts TCP: the entrypoint's init server listens on the socket only.
    let deadline = Instant::now() + Duration::from_secs(90);
    while exec(
        &docker,
        &db,
        &["pg_isready", "-h", "127.0.0.1", "-U", "app", "-d", "shop"],
    )
    .await
    .0 != 0
    {
        assert!(Instant::now() < deadline, "postgres did not get ready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    psql(&docker, &db, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g").await;

    let conn = Connection {
        host: db_name.clone(),
        port: 5432,
        user: DbIdent::parse("app").unwrap(),
        password: SecretString::from(PASSWORD.to_owned()),
        database: Some(DbIdent::parse("shop").unwrap()),
    };

    // Back up: pg_dump in a sidecar, its stdout through the pipeline.
    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let s3_dest = S3Destination::new(s3.config("backups")).unwrap();
    let key = ArtifactKey::parse(&format!("shop/{id}.dump.zst.age")).unwrap();
    let targets = common::targets(
        &LocalDir::new("local", dir.path()),
        Some(s3_dest.clone()),
        key.as_str(),
    );
    let dump_cmd = Engine::Postgres.dump_command(&conn);
    assert!(!dump_cmd.argv.iter().any(|a| a.contains("pass word")));
    let options = PipelineOptions {
        encryption: Some(Encryption::Passphrase {
            passphrase: SecretString::from("drill".to_owned()),
            work_factor: Some(10),
        }),
        ..Default::default()
    };
    let report = backup_through_sidecar(
        &docker,
        &mut cleanup,
        &label,
        &format!("berth-test-backups-{id}-dump"),
        &dump_cmd,
        &options,
        &targets,
    )
    .await;
    assert!(report.fully_succeeded(), "{report:#?}");
    assert!(report.dump_bytes > 10_000, "{report:?}");

    // Roles are cluster-wide: pg_dumpall --roles-only makes their own small artifact.
    let roles_key = ArtifactKey::parse(&format!("shop/{id}.roles.sql.zst")).unwrap();
    let roles_targets = [Target {
        destination: Destination::Local(LocalDir::new("local", dir.path())),
        key: roles_key.clone(),
    }];
    let roles = backup_through_sidecar(
        &docker,
        &mut cleanup,
        &label,
        &format!("berth-test-backups-{id}-roles"),
        &Engine::postgres_roles_command(&conn),
        &PipelineOptions::default(),
        &roles_targets,
    )
    .await;
    assert!(roles.fully_succeeded(), "{roles:#?}");
    let (sql, _) = restore(
        &roles_targets[0].destination,
        &roles_key,
        roles.sha256,
        None,
        Vec::new(),
    )
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&sql).contains("CREATE ROLE app;"));

    // A wrong password: pg_dump fails, and nothing is left at either destination.
    let mut wrong = conn.clone();
    wrong.password = SecretString::from("wrong".to_owned());
    let failed_key = ArtifactKey::parse(&format!("shop/{id}-failed.dump.zst")).unwrap();
    let failed_targets: Vec<Target> = targets
        .iter()
        .map(|t| Target {
            destination: t.destination.clone(),
            key: failed_key.clone(),
        })
        .collect();
    let failed = backup_through_sidecar(
        &docker,
        &mut cleanup,
        &label,
        &format!("berth-test-backups-{id}-fail"),
        &Engine::Postgres.dump_command(&wrong),
        &PipelineOptions::default(),
        &failed_targets,
    )
    .await;
    assert!(
        matches!(failed.error, Some(PipelineError::DumpExit(1))),
        "{failed:#?}"
    );
    assert_eq!(
        common::files_under(dir.path()),
        [
            format!("shop/{id}.dump.zst.age"),
            format!("shop/{id}.roles.sql.zst")
        ]
    );
    assert_eq!(s3.files("backups"), [format!("shop/{id}.dump.zst.age")]);

    // Lose the rows.
    psql(&docker, &db, "DELETE FROM items").await;
    assert_eq!(psql(&docker, &db, "SELECT count(*) FROM items").await, "0");

    // Restore the S3 copy with pg_restore in a sidecar, fed through its stdin.
    let restore_cmd = Engine::Postgres.restore_command(&conn).unwrap();
    let restorer = sidecar(
        &docker,
        &mut cleanup,
        &label,
        &format!("berth-test-backups-{id}-restore"),
        &restore_cmd,
        true,
    )
    .await;
    let attach = AttachContainerOptionsBuilder::new()
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .stream(true)
        .build();
    let attached = docker
        .attach_container(&restorer, Some(attach))
        .await
        .unwrap();
    docker.start_container(&restorer, None).await.unwrap();
    let log = tokio::spawn(attached.output.for_each(|chunk| async move {
        if let Ok(chunk) = chunk {
            eprintln!(
                "pg_restore: {}",
                String::from_utf8_lossy(&chunk.into_bytes()).trim_end()
            );
        }
    }));
    let decryption = DecryptionKey::Passphrase(SecretString::from("drill".to_owned()));
    let (_input, restored) = restore(
        &Destination::S3(s3_dest),
        &key,
        report.sha256,
        Some(decryption),
        attached.input,
    )
    .await
    .expect("restore streams");
    assert_eq!(restored.restored_bytes, report.dump_bytes);
    let code = tokio::time::timeout(Duration::from_secs(120), exit_code(&docker, &restorer))
        .await
        .expect("pg_restore ends")
        .unwrap();
    let _ = log.await;
    assert_eq!(code, 0, "pg_restore failed");

    assert_eq!(
        psql(&docker, &db, "SELECT count(*) FROM items").await,
        "5000"
    );
    assert_eq!(
        psql(&docker, &db, "SELECT name FROM items WHERE id = 4321").await,
        "item 4321"
    );
    drop(cleanup);
}
