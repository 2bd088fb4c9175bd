//! MongoDB's backup path against a STAND-IN: no MongoDB server or tools can
//! be had on these machines (not in Debian, no registry), so
//! `berth-test/mongo` is busybox scripts (docker/test-images/mongo): a
//! `mongod` that records what clients send it, a `mongodump` that records
//! its argv and the config it was handed and prints an archive's magic
//! number and some bytes, a `mongorestore` that records its argv, its
//! config and the count and SHA-256 of what it read. This proves berth's
//! side: the argv, the password over `--config=/dev/fd/3` and never in argv,
//! and the streams both ways. It proves nothing about MongoDB itself.

mod common;

use berth_backup::{
    ArtifactKey, Connection, DbIdent, Destination, Engine, LocalDir, PipelineOptions,
    RestoreMethod, SecretString, restore,
};
use common::docker::{DockerTest, SidecarOptions};
use sha2::{Digest, Sha256};

const IMAGE: &str = "berth-test/mongo:latest";
const PASSWORD: &str = ")'\"$\\ pass word";

/// The stand-in server's record of the last session of `tool`, once complete.
async fn record_of(t: &DockerTest, db: &str, tool: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let log = t
            .exec(db, &["cat", "/data/db/berth-stand-in.log"], &[])
            .await
            .stdout;
        let lines: Vec<String> = log.lines().map(str::to_owned).collect();
        let begin = format!("BEGIN {tool}");
        if let Some(start) = lines.iter().rposition(|l| *l == begin)
            && let Some(len) = lines[start..].iter().position(|l| l == "END")
        {
            return lines[start + 1..start + len].to_vec();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no record of {tool}: {log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn field<'a>(record: &'a [String], name: &str) -> &'a str {
    let prefix = format!("{name}=");
    record
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {record:?}"))
}

fn args(record: &[String]) -> Vec<&str> {
    record
        .iter()
        .filter_map(|l| l.strip_prefix("arg="))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_stand_in_gets_the_password_over_the_config_fd_and_the_archive_streams_both_ways() {
    let t = DockerTest::new("mongo", &[IMAGE]).await;
    let db = t.start_database("db", IMAGE, Vec::new(), None).await;
    // Listening, seen without connecting (a connection would be recorded).
    t.wait_until_ok(&db, &["sh", "-c", "netstat -ltn | grep -q ':27017 '"], &[])
        .await;

    let conn = Connection {
        host: db.clone(),
        port: 27017,
        user: DbIdent::parse("app").unwrap(),
        password: SecretString::from(PASSWORD.to_owned()),
        database: Some(DbIdent::parse("shop").unwrap()),
    };
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let key = ArtifactKey::parse("shop/1.archive.zst").unwrap();
    let dump_cmd = Engine::MongoDb.dump_command(&conn);
    let report = t
        .backup(
            "dump",
            IMAGE,
            &dump_cmd,
            &PipelineOptions::default(),
            &common::targets(&local, None, key.as_str()),
        )
        .await;
    assert!(report.fully_succeeded(), "{report:#?}");

    // mongodump got berth's argv plus the config fd, the password only there.
    let dumped = record_of(&t, &db, "mongodump").await;
    let mut expected: Vec<&str> = dump_cmd.argv[4..].iter().map(String::as_str).collect();
    expected.push("--config=/dev/fd/3");
    assert_eq!(args(&dumped), expected);
    for arg in args(&dumped) {
        assert!(!arg.contains("pass word"), "password in argv: {arg}");
    }
    let config: serde_json::Value = serde_json::from_str(field(&dumped, "config")).unwrap();
    assert_eq!(config["password"], PASSWORD);

    let (archive, _) = restore(
        &Destination::Local(local.clone()),
        &key,
        report.sha256,
        None,
        Vec::new(),
    )
    .await
    .unwrap();
    assert!(archive.starts_with(&[0x6d, 0xe2, 0x99, 0x81]));
    assert_eq!(archive.len() as u64, report.dump_bytes);

    // Restore: the archive streams into mongorestore's stdin, whole.
    let RestoreMethod::Stdin(restore_cmd) = Engine::MongoDb.restore_method(&conn) else {
        panic!("MongoDB restores through mongorestore's stdin");
    };
    let (restored, code) = t
        .restore(
            "restore",
            IMAGE,
            &restore_cmd,
            SidecarOptions::on_network(),
            &Destination::Local(local),
            &key,
            report.sha256,
            None,
        )
        .await;
    restored.expect("restore streams");
    assert_eq!(code, 0, "mongorestore failed");
    let restored = record_of(&t, &db, "mongorestore").await;
    assert_eq!(field(&restored, "read_bytes"), archive.len().to_string());
    assert_eq!(
        field(&restored, "read_sha256"),
        hex::encode(Sha256::digest(&archive))
    );
    let mut expected: Vec<&str> = restore_cmd.argv[4..].iter().map(String::as_str).collect();
    expected.push("--config=/dev/fd/3");
    assert_eq!(args(&restored), expected);
    assert!(args(&restored).contains(&"--nsInclude=shop.*"));
    let config: serde_json::Value = serde_json::from_str(field(&restored, "config")).unwrap();
    assert_eq!(config["password"], PASSWORD);
}
