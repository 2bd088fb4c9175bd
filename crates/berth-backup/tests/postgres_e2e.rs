//! End to end with real PostgreSQL: rows written, `pg_dump` run in a sidecar
//! container from the database's own image on its network, the dump streamed
//! through the pipeline to a local directory and s3s-fs at once, the rows
//! deleted, the S3 copy restored with `pg_restore` from another sidecar, and
//! the rows back. The database password is `)'"$\` with a space.
//!
//! Needs Docker and `berth-test/postgres:latest` (docker/test-images; tests/run
//! builds it). The containers and sidecars are tests/common/docker.rs.

mod common;

use berth_backup::destination::S3Destination;
use berth_backup::{
    ArtifactKey, Connection, DbIdent, DecryptionKey, Destination, Encryption, Engine, LocalDir,
    PipelineError, PipelineOptions, RestoreMethod, SecretString, Target, restore,
};
use common::S3Server;
use common::docker::{DockerTest, SidecarOptions};

const IMAGE: &str = "berth-test/postgres:latest";
const PASSWORD: &str = ")'\"$\\ pass word";

async fn psql(t: &DockerTest, db: &str, sql: &str) -> String {
    t.exec_ok(
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
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_come_back_after_a_backup_to_local_and_s3_and_a_restore_from_s3() {
    let t = DockerTest::new("pg", &[IMAGE]).await;
    // The database, with a password made of the characters that broke the anchors' dumps.
    let db = t
        .start_database(
            "db",
            IMAGE,
            vec![
                "POSTGRES_USER=app".into(),
                format!("POSTGRES_PASSWORD={PASSWORD}"),
                "POSTGRES_DB=shop".into(),
            ],
            None,
        )
        .await;
    // Ready once it accepts TCP: the entrypoint's init server listens on the socket only.
    t.wait_until_ok(
        &db,
        &["pg_isready", "-h", "127.0.0.1", "-U", "app", "-d", "shop"],
        &[],
    )
    .await;
    psql(&t, &db, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g").await;

    let conn = Connection {
        host: db.clone(),
        port: 5432,
        user: DbIdent::parse("app").unwrap(),
        password: SecretString::from(PASSWORD.to_owned()),
        database: Some(DbIdent::parse("shop").unwrap()),
    };

    // Back up: pg_dump in a sidecar, its stdout through the pipeline.
    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let s3_dest = S3Destination::new(s3.config("backups")).unwrap();
    let key = ArtifactKey::parse("shop/1.dump.zst.age").unwrap();
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
    let report = t.backup("dump", IMAGE, &dump_cmd, &options, &targets).await;
    assert!(report.fully_succeeded(), "{report:#?}");
    assert!(report.dump_bytes > 10_000, "{report:?}");

    // Roles are cluster-wide: pg_dumpall --roles-only makes their own small artifact.
    let roles_key = ArtifactKey::parse("shop/1.roles.sql.zst").unwrap();
    let roles_targets = [Target {
        destination: Destination::Local(LocalDir::new("local", dir.path())),
        key: roles_key.clone(),
    }];
    let roles = t
        .backup(
            "roles",
            IMAGE,
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
    let failed_key = ArtifactKey::parse("shop/1-failed.dump.zst").unwrap();
    let failed_targets: Vec<Target> = targets
        .iter()
        .map(|t| Target {
            destination: t.destination.clone(),
            key: failed_key.clone(),
        })
        .collect();
    let failed = t
        .backup(
            "fail",
            IMAGE,
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
        ["shop/1.dump.zst.age", "shop/1.roles.sql.zst"]
    );
    assert_eq!(s3.files("backups"), ["shop/1.dump.zst.age"]);

    // Lose the rows.
    psql(&t, &db, "DELETE FROM items").await;
    assert_eq!(psql(&t, &db, "SELECT count(*) FROM items").await, "0");

    // Restore the S3 copy with pg_restore in a sidecar, fed through its stdin.
    let RestoreMethod::Stdin(restore_cmd) = Engine::Postgres.restore_method(&conn) else {
        panic!("PostgreSQL restores through pg_restore's stdin");
    };
    let decryption = DecryptionKey::Passphrase(SecretString::from("drill".to_owned()));
    let (restored, code) = t
        .restore(
            "restore",
            IMAGE,
            &restore_cmd,
            SidecarOptions::on_network(),
            &Destination::S3(s3_dest),
            &key,
            report.sha256,
            Some(decryption),
        )
        .await;
    assert_eq!(
        restored.expect("restore streams").restored_bytes,
        report.dump_bytes
    );
    assert_eq!(code, 0, "pg_restore failed");

    assert_eq!(psql(&t, &db, "SELECT count(*) FROM items").await, "5000");
    assert_eq!(
        psql(&t, &db, "SELECT name FROM items WHERE id = 4321").await,
        "item 4321"
    );
}
