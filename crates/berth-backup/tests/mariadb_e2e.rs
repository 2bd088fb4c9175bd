//! End to end with real MariaDB (Debian bookworm's 10.11, berth-test/mariadb):
//! rows, a stored function, an event and a trigger written, `mariadb-dump`
//! run in a sidecar from the database's own image on its network, the dump
//! streamed to a local directory and s3s-fs at once, everything lost, the S3
//! copy restored through `mariadb` in another sidecar, and everything back.
//! The database user's password is `)'"$\` with a space.
//!
//! Oracle's MySQL server is not in Debian and no registry is reachable, so
//! the MySQL path (`Engine::MySql`: `mysqldump` and `mysql`, the same flags)
//! runs against MariaDB here, whose packages carry those names too.
//!
//! Needs Docker and `berth-test/mariadb:latest` (docker/test-images).

mod common;

use berth_backup::destination::S3Destination;
use berth_backup::{
    ArtifactKey, Connection, DbIdent, Destination, Engine, LocalDir, PipelineError,
    PipelineOptions, RestoreMethod, SecretString,
};
use common::S3Server;
use common::docker::{DockerTest, SidecarOptions};

const IMAGE: &str = "berth-test/mariadb:latest";
const PASSWORD: &str = ")'\"$\\ pass word";

/// Starts MariaDB with database `shop` and user `app` (password [`PASSWORD`])
/// and waits until it takes TCP connections as a healthcheck would.
async fn start_mariadb(t: &DockerTest) -> String {
    let db = t
        .start_database(
            "db",
            IMAGE,
            vec![
                format!("MARIADB_ROOT_PASSWORD={PASSWORD}"),
                "MARIADB_DATABASE=shop".into(),
                "MARIADB_USER=app".into(),
                format!("MARIADB_PASSWORD={PASSWORD}"),
            ],
            None,
        )
        .await;
    t.wait_until_ok(
        &db,
        &["healthcheck.sh", "--connect", "--innodb_initialized"],
        &[],
    )
    .await;
    db
}

/// SQL as the application would send it: user `app` over TCP, so the
/// objects it makes are `app`'s (the dump runs as `app` too).
async fn sql(t: &DockerTest, db: &str, sql: &str) -> String {
    t.exec_ok(
        db,
        &[
            "mariadb",
            "--protocol=tcp",
            "--host=127.0.0.1",
            "--user=app",
            "--batch",
            "--skip-column-names",
            "shop",
            "-e",
            sql,
        ],
        &[format!("MYSQL_PWD={PASSWORD}")],
    )
    .await
}

fn connection(db: &str) -> Connection {
    Connection {
        host: db.to_owned(),
        port: 3306,
        user: DbIdent::parse("app").unwrap(),
        password: SecretString::from(PASSWORD.to_owned()),
        database: Some(DbIdent::parse("shop").unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_rows_routines_events_and_triggers_come_back_after_a_backup_to_local_and_s3_and_a_restore()
 {
    let t = DockerTest::new("mariadb", &[IMAGE]).await;
    let db = start_mariadb(&t).await;
    sql(
        &t,
        &db,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL); \
         INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_5000; \
         CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2; \
         CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM items WHERE id < 0; \
         CREATE TRIGGER trim_name BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name)",
    )
    .await;
    let conn = connection(&db);

    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let s3_dest = S3Destination::new(s3.config("backups")).unwrap();

    for (round, engine) in [(1, Engine::MariaDb), (2, Engine::MySql)] {
        let key = ArtifactKey::parse(&format!("shop/{round}.sql.zst")).unwrap();
        let targets = common::targets(&local, Some(s3_dest.clone()), key.as_str());
        let dump_cmd = engine.dump_command(&conn);
        assert!(!dump_cmd.argv.iter().any(|a| a.contains("pass word")));
        let report = t
            .backup(
                &format!("dump-{round}"),
                IMAGE,
                &dump_cmd,
                &PipelineOptions::default(),
                &targets,
            )
            .await;
        assert!(report.fully_succeeded(), "{engine:?}: {report:#?}");
        assert!(report.dump_bytes > 50_000, "{report:?}");

        // Lose everything.
        sql(
            &t,
            &db,
            "DELETE FROM items; DROP FUNCTION double_it; DROP EVENT nightly; DROP TRIGGER trim_name",
        )
        .await;
        assert_eq!(sql(&t, &db, "SELECT count(*) FROM items").await, "0");

        // Restore the S3 copy (MariaDB) or the local one (MySQL path) through
        // the client's stdin in a sidecar.
        let RestoreMethod::Stdin(restore_cmd) = engine.restore_method(&conn) else {
            panic!("{engine:?} restores through its client's stdin");
        };
        let from = if engine == Engine::MariaDb {
            Destination::S3(s3_dest.clone())
        } else {
            Destination::Local(local.clone())
        };
        let (restored, code) = t
            .restore(
                &format!("restore-{round}"),
                IMAGE,
                &restore_cmd,
                SidecarOptions::on_network(),
                &from,
                &key,
                report.sha256,
                None,
            )
            .await;
        assert_eq!(
            restored.expect("restore streams").restored_bytes,
            report.dump_bytes
        );
        assert_eq!(code, 0, "{engine:?}: the client failed to load the dump");

        assert_eq!(sql(&t, &db, "SELECT count(*) FROM items").await, "5000");
        assert_eq!(
            sql(&t, &db, "SELECT name FROM items WHERE id = 4321").await,
            "item 4321"
        );
        assert_eq!(sql(&t, &db, "SELECT double_it(21)").await, "42");
        assert_eq!(
            sql(
                &t,
                &db,
                "SELECT count(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'shop' AND EVENT_NAME = 'nightly'"
            )
            .await,
            "1"
        );
        assert_eq!(
            sql(
                &t,
                &db,
                "SELECT count(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'shop' AND TRIGGER_NAME = 'trim_name'"
            )
            .await,
            "1"
        );
    }
    assert_eq!(
        common::files_under(dir.path()),
        ["shop/1.sql.zst", "shop/2.sql.zst"]
    );
    assert_eq!(s3.files("backups"), ["shop/1.sql.zst", "shop/2.sql.zst"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_mariadb_mid_dump_fails_the_backup_and_leaves_nothing_at_either_destination() {
    let t = DockerTest::new("mariadb-kill", &[IMAGE]).await;
    let db = start_mariadb(&t).await;
    // About 100 MB of dump that compresses only about 2:1 (hex digests), so
    // the destinations fill while mariadb-dump is still running.
    sql(
        &t,
        &db,
        "CREATE TABLE big (id INT PRIMARY KEY, v TEXT NOT NULL); \
         INSERT INTO big SELECT seq, CONCAT(SHA2(seq, 512), SHA2(-seq, 512), SHA2(seq * 7, 512), SHA2(seq * 13, 512)) \
         FROM seq_1_to_200000",
    )
    .await;

    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let s3_dest = S3Destination::new(s3.config("backups")).unwrap();
    let targets = common::targets(
        &LocalDir::new("local", dir.path()),
        Some(s3_dest),
        "shop/killed.sql.zst",
    );
    let dump_cmd = Engine::MariaDb.dump_command(&connection(&db));
    let options = PipelineOptions::default();
    let backup = t.backup_watching("dump", IMAGE, &dump_cmd, &options, &targets, Some(&db));
    // Kill the database once a few MiB have reached the local temp file.
    let killer = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let stored = common::bytes_under(dir.path());
            if stored >= 4 * 1024 * 1024 {
                t.kill(&db).await;
                return stored;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the dump never got going"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let (report, stored_at_kill) = tokio::join!(backup, killer);

    // Either mariadb-dump noticed the lost connection and exited non-zero,
    // or (what a SIGKILL usually gives: no FIN reaches it) the watch on the
    // database container cancelled the run.
    assert!(
        matches!(
            report.error,
            Some(PipelineError::Cancelled | PipelineError::DumpExit(1..))
        ),
        "killed with {stored_at_kill} bytes stored: {report:#?}"
    );
    assert!(report.destinations.iter().all(|d| !d.ok()), "{report:#?}");
    assert!(
        common::files_under(dir.path()).is_empty(),
        "{:?}",
        common::files_under(dir.path())
    );
    assert!(
        s3.files("backups").is_empty(),
        "multipart upload left {:?}",
        s3.files("backups")
    );
}
