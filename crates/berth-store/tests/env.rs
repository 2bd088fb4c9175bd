//! Environment variables in the store, against a real SQLite file: encrypted
//! at rest, versioned, with history, and a key that rotates.

mod scan;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth_core::{AppName, EnvFlags, EnvKey, EnvVar, ImageRef, Owner, Port, ProjectName};
use berth_store::env;
use berth_store::{Store, StoreError, apps, crypto, projects};

const SECRET: &str = "s3cr3t-value-that-must-never-be-on-disk";

async fn open(dir: &Path) -> Store {
    Store::open(dir).await.unwrap()
}

fn var(key: &str, value: &str, secret: bool) -> EnvVar {
    EnvVar {
        key: EnvKey::parse(key).unwrap(),
        value: value.to_owned(),
        flags: EnvFlags {
            secret,
            build: false,
            runtime: true,
            literal: false,
        },
    }
}

async fn an_app(store: &Store) -> Owner {
    let project = ProjectName::parse("demo").unwrap();
    projects::create(store, &project).await.unwrap();
    let app = apps::create(
        store,
        &project,
        &berth_core::NewApp {
            name: AppName::parse("web").unwrap(),
            image: ImageRef::parse("berth-test/web").unwrap(),
            container_port: Port::parse("8080").unwrap(),
            command: None,
            dangerous_mounts: false,
        },
    )
    .await
    .unwrap();
    Owner::App(app.id)
}

#[tokio::test]
async fn no_value_can_be_read_from_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let owner = an_app(&store).await;
    let vars = [
        var("API_TOKEN", SECRET, true),
        var("PLAIN", "also-hidden-1234", false),
    ];
    env::save(&store, owner, Some(0), &vars, "admin", None)
        .await
        .unwrap();
    // Before and after a checkpoint: the WAL holds the fresh pages first.
    for checkpoint in [false, true] {
        if checkpoint {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(store.pool())
                .await
                .unwrap();
        }
        scan::assert_sealed(dir.path(), SECRET);
        scan::assert_sealed(dir.path(), "also-hidden-1234");
    }
    // The same scan finds a value that is there in clear.
    scan::assert_the_scan_finds_a_value_in_clear(&store, dir.path(), SECRET).await;
    let loaded = env::load(&store, owner).await.unwrap();
    assert_eq!(loaded.vars, vars);
    assert_eq!(loaded.version, 1);
}

#[tokio::test]
async fn the_key_file_is_created_readable_by_its_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path()).await;
    let meta = std::fs::metadata(dir.path().join(crypto::KEY_FILE)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn saving_against_an_older_version_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let owner = an_app(&store).await;
    env::save(
        &store,
        owner,
        Some(0),
        &[var("A", "1", false)],
        "alice",
        None,
    )
    .await
    .unwrap();
    let err = env::save(&store, owner, Some(0), &[var("A", "2", false)], "bob", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::VersionConflict { current: 1 }),
        "{err}"
    );
    assert_eq!(env::load(&store, owner).await.unwrap().vars[0].value, "1");
}

#[tokio::test]
async fn every_save_is_in_the_history_and_can_be_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let owner = an_app(&store).await;
    let first = [var("A", "1", false), var("B", "2", true)];
    let second = [var("A", "1", false), var("C", "3", false)];
    env::save(&store, owner, Some(0), &first, "alice", None)
        .await
        .unwrap();
    let saved = env::save(&store, owner, Some(1), &second, "bob", None)
        .await
        .unwrap();
    assert_eq!(saved.version, 2);
    // The same set again is no new version.
    let again = env::save(&store, owner, Some(2), &second, "bob", None)
        .await
        .unwrap();
    assert_eq!((again.version, again.changes.len()), (2, 0));

    let history = env::history(&store, owner, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].actor, "bob");
    assert_eq!(
        history[0].changes,
        [
            ("C".to_owned(), "added".to_owned()),
            ("B".to_owned(), "removed".to_owned())
        ]
    );
    assert_eq!(env::snapshot(&store, owner, 1).await.unwrap(), first);
}

#[tokio::test]
async fn rotating_the_key_keeps_every_value_readable_and_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let owner = an_app(&store).await;
    let vars = [var("API_TOKEN", SECRET, true)];
    env::save(&store, owner, Some(0), &vars, "admin", None)
        .await
        .unwrap();
    let old_key = std::fs::read(dir.path().join(crypto::KEY_FILE)).unwrap();

    let rotation = crypto::rotate_key(&store).await.unwrap();
    assert_eq!((rotation.values, rotation.snapshots), (1, 1));
    assert_ne!(rotation.old_id, rotation.new_id);
    assert_eq!(env::load(&store, owner).await.unwrap().vars, vars);
    store.close().await;

    let new_key = std::fs::read(dir.path().join(crypto::KEY_FILE)).unwrap();
    assert_ne!(old_key, new_key);
    let meta = std::fs::metadata(dir.path().join(crypto::KEY_FILE)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let store = open(dir.path()).await;
    assert_eq!(env::load(&store, owner).await.unwrap().vars, vars);
    assert_eq!(env::snapshot(&store, owner, 1).await.unwrap(), vars);
    store.close().await;

    // The old key no longer opens this database.
    std::fs::remove_file(dir.path().join(crypto::KEY_FILE)).unwrap();
    std::fs::write(dir.path().join(crypto::KEY_FILE), old_key).unwrap();
    let err = Store::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, StoreError::BadSecretKey { .. }), "{err}");
}

#[tokio::test]
async fn a_missing_key_file_is_refused_rather_than_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let owner = an_app(&store).await;
    env::save(
        &store,
        owner,
        Some(0),
        &[var("A", "1", false)],
        "admin",
        None,
    )
    .await
    .unwrap();
    store.close().await;
    std::fs::remove_file(dir.path().join(crypto::KEY_FILE)).unwrap();
    let err = Store::open(dir.path()).await.unwrap_err();
    assert!(err.to_string().contains("restore the file"), "{err}");
}

#[tokio::test]
async fn deleting_an_app_deletes_its_variables_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let owner = an_app(&store).await;
    env::save(
        &store,
        owner,
        Some(0),
        &[var("A", "1", false)],
        "admin",
        None,
    )
    .await
    .unwrap();
    let Owner::App(id) = owner else {
        unreachable!()
    };
    apps::delete(&store, id).await.unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM env_vars) + (SELECT COUNT(*) FROM env_history) + (SELECT COUNT(*) FROM env_sets)",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_store_that_is_open_follows_a_rotation_made_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let serving = open(dir.path()).await;
    let owner = an_app(&serving).await;
    let vars = [var("API_TOKEN", SECRET, true)];
    env::save(&serving, owner, Some(0), &vars, "admin", None)
        .await
        .unwrap();
    // `berth secrets rotate-key` opens its own store on the same data dir.
    let cli = open(dir.path()).await;
    crypto::rotate_key(&cli).await.unwrap();
    cli.close().await;
    // The serving store reads and writes with the new key.
    assert_eq!(env::load(&serving, owner).await.unwrap().vars, vars);
    let more = [var("API_TOKEN", SECRET, true), var("B", "2", false)];
    env::save(&serving, owner, Some(1), &more, "admin", None)
        .await
        .unwrap();
    serving.close().await;
    let reopened = open(dir.path()).await;
    assert_eq!(env::load(&reopened, owner).await.unwrap().vars, more);
}
