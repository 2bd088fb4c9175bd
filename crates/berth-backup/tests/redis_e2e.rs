//! End to end with real Redis (Debian bookworm's 7.0, berth-test/redis):
//! keys written, `redis-cli --rdb -` run in a sidecar from the server's own
//! image on its network, the RDB streamed to a local directory and s3s-fs at
//! once, the keys flushed, and the S3 copy restored the way
//! `Engine::restore_method` describes for Redis (`FileIntoVolume`): server
//! stopped, the RDB written into its volume by sidecars, server started.
//! The password (`redis-server --requirepass`, as berth sets it) is `)'"$\`
//! with a space.
//!
//! Needs Docker and `berth-test/redis:latest` (docker/test-images).

mod common;

use berth_backup::destination::S3Destination;
use berth_backup::{
    ArtifactKey, Connection, DbIdent, Destination, Engine, LocalDir, PipelineOptions,
    RestoreMethod, SecretString, restore,
};
use common::S3Server;
use common::docker::DockerTest;

const IMAGE: &str = "berth-test/redis:latest";
const PASSWORD: &str = ")'\"$\\ pass word";

async fn redis_cli(t: &DockerTest, db: &str, args: &[&str]) -> String {
    let mut cmd = vec!["redis-cli"];
    cmd.extend_from_slice(args);
    t.exec_ok(db, &cmd, &[format!("REDISCLI_AUTH={PASSWORD}")])
        .await
}

async fn wait_for_redis(t: &DockerTest, db: &str) {
    // PING answers PONG only once the dataset is loaded (LOADING before).
    t.wait_until_ok(
        db,
        &["sh", "-c", "[ \"$(redis-cli ping)\" = PONG ]"],
        &[format!("REDISCLI_AUTH={PASSWORD}")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_come_back_after_an_rdb_backup_to_local_and_s3_and_a_restore_into_the_volume() {
    let t = DockerTest::new("redis", &[IMAGE]).await;
    let db = t
        .start_database(
            "db",
            IMAGE,
            Vec::new(),
            Some(vec![
                "redis-server".into(),
                "--requirepass".into(),
                PASSWORD.into(),
            ]),
        )
        .await;
    wait_for_redis(&t, &db).await;
    // The password really is required.
    let anonymous = t.exec(&db, &["redis-cli", "get", "x"], &[]).await;
    assert!(anonymous.stdout.contains("NOAUTH"), "{anonymous:?}");

    let mut mset = vec!["mset".to_owned()];
    for i in 0..1000 {
        mset.push(format!("key:{i}"));
        mset.push(format!("value {i}"));
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(redis_cli(&t, &db, &mset).await, "OK");
    redis_cli(&t, &db, &["hset", "user:1", "name", "Ada", "lang", "en"]).await;
    redis_cli(&t, &db, &["rpush", "queue", "a", "b", "c"]).await;
    assert_eq!(redis_cli(&t, &db, &["dbsize"]).await, "1002");

    let conn = Connection {
        host: db.clone(),
        port: 6379,
        user: DbIdent::parse("default").unwrap(),
        password: SecretString::from(PASSWORD.to_owned()),
        database: None,
    };
    let s3 = S3Server::start(&["backups"]);
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let s3_dest = S3Destination::new(s3.config("backups")).unwrap();
    let key = ArtifactKey::parse("cache/1.rdb.zst").unwrap();
    let targets = common::targets(&local, Some(s3_dest.clone()), key.as_str());
    let dump_cmd = Engine::Redis.dump_command(&conn);
    assert!(!dump_cmd.argv.iter().any(|a| a.contains("pass word")));
    let report = t
        .backup(
            "dump",
            IMAGE,
            &dump_cmd,
            &PipelineOptions::default(),
            &targets,
        )
        .await;
    assert!(report.fully_succeeded(), "{report:#?}");
    assert_eq!(s3.files("backups"), ["cache/1.rdb.zst"]);

    // What was stored is a clean RDB: it ends with the EOF opcode and the
    // checksum, without the transfer's EOF mark redis-cli 7.0 prints after it.
    let (rdb, _) = restore(
        &Destination::Local(local),
        &key,
        report.sha256,
        None,
        Vec::new(),
    )
    .await
    .unwrap();
    assert!(rdb.starts_with(b"REDIS"));
    assert_eq!(rdb[rdb.len() - 9], 0xFF, "{:?}", &rdb[rdb.len() - 60..]);
    assert_eq!(rdb.len() as u64, report.dump_bytes);

    // Lose the keys. Stopping the server below saves this empty dataset.
    assert_eq!(redis_cli(&t, &db, &["flushall"]).await, "OK");
    assert_eq!(redis_cli(&t, &db, &["dbsize"]).await, "0");

    let RestoreMethod::FileIntoVolume(method) = Engine::Redis.restore_method(&conn) else {
        panic!("Redis restores an RDB file into its volume");
    };
    let restored = t
        .restore_file_into_volume(
            "restore",
            &db,
            IMAGE,
            &method,
            &Destination::S3(s3_dest),
            &key,
            report.sha256,
            None,
        )
        .await
        .expect("the RDB restores");
    assert_eq!(restored.restored_bytes, report.dump_bytes);
    wait_for_redis(&t, &db).await;

    assert_eq!(redis_cli(&t, &db, &["dbsize"]).await, "1002");
    assert_eq!(redis_cli(&t, &db, &["get", "key:777"]).await, "value 777");
    assert_eq!(redis_cli(&t, &db, &["hget", "user:1", "name"]).await, "Ada");
    assert_eq!(
        redis_cli(&t, &db, &["lrange", "queue", "0", "-1"]).await,
        "a\nb\nc"
    );
    // The restored file is the server's own again (it can replace it), and
    // nothing of the restore is left beside it.
    let listing = t.exec_ok(&db, &["ls", "-ln", "/data"], &[]).await;
    assert!(!listing.contains("berth-restore"), "{listing}");
    assert_eq!(redis_cli(&t, &db, &["save"]).await, "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rdb_restore_leaves_the_servers_own_file_in_place() {
    let t = DockerTest::new("redis-bad", &[IMAGE]).await;
    let db = t
        .start_database(
            "db",
            IMAGE,
            Vec::new(),
            Some(vec![
                "redis-server".into(),
                "--requirepass".into(),
                PASSWORD.into(),
            ]),
        )
        .await;
    wait_for_redis(&t, &db).await;
    redis_cli(&t, &db, &["set", "kept", "yes"]).await;

    let conn = Connection {
        host: db.clone(),
        port: 6379,
        user: DbIdent::parse("default").unwrap(),
        password: SecretString::from(PASSWORD.to_owned()),
        database: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new("local", dir.path());
    let key = ArtifactKey::parse("cache/1.rdb.zst").unwrap();
    let report = t
        .backup(
            "dump",
            IMAGE,
            &Engine::Redis.dump_command(&conn),
            &PipelineOptions::default(),
            &common::targets(&local, None, key.as_str()),
        )
        .await;
    assert!(report.fully_succeeded(), "{report:#?}");
    redis_cli(&t, &db, &["set", "after-backup", "yes"]).await;

    // Damage the stored artifact: its checksum no longer matches the record.
    let path = dir.path().join(key.as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&path, bytes).unwrap();

    let RestoreMethod::FileIntoVolume(method) = Engine::Redis.restore_method(&conn) else {
        panic!("Redis restores an RDB file into its volume");
    };
    let outcome = t
        .restore_file_into_volume(
            "restore",
            &db,
            IMAGE,
            &method,
            &Destination::Local(local),
            &key,
            report.sha256,
            None,
        )
        .await;
    assert!(outcome.is_err(), "a damaged backup restored: {outcome:?}");
    wait_for_redis(&t, &db).await;
    // The server's own save at stop is what it loaded: the key written after
    // the backup is there, so the damaged stream did not replace dump.rdb.
    assert_eq!(redis_cli(&t, &db, &["get", "after-backup"]).await, "yes");
    let listing = t.exec_ok(&db, &["ls", "-ln", "/data"], &[]).await;
    assert!(!listing.contains("berth-restore"), "{listing}");
}
