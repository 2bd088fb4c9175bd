//! Managed databases in the store, against a real SQLite file: credentials
//! sealed at rest, re-sealed by a key rotation, a missing key noticed, and
//! one namespace with apps and stacks.

mod scan;

use berth_core::{
    AppName, Credentials, DatabaseEngine, DatabaseName, ImageRef, NewApp, Port, ProjectName,
};
use berth_store::databases::{self, NewDatabase};
use berth_store::{Store, StoreError, apps, crypto, projects};

const PASSWORD: &str = "Zq7dbPasswordThatMustNeverBeOnDisk";

fn creds() -> Credentials {
    Credentials {
        user: "main".into(),
        password: PASSWORD.into(),
        database: "main".into(),
        admin_password: None,
    }
}

async fn with_database(store: &Store) -> berth_core::Database {
    let project = ProjectName::parse("shop").unwrap();
    projects::create(store, &project).await.unwrap();
    let name = DatabaseName::parse("main").unwrap();
    databases::create(
        store,
        &project,
        &NewDatabase {
            name: &name,
            engine: DatabaseEngine::Postgres,
            version: "16",
            image: &ImageRef::parse("postgres:16").unwrap(),
            host_port: None,
        },
        &creds(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn credentials_are_sealed_and_survive_a_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let db = with_database(&store).await;
    assert_eq!(db.version, "16");
    assert_eq!(
        databases::credentials(&store, db.id).await.unwrap(),
        creds()
    );
    store.close().await;
    scan::assert_sealed(dir.path(), PASSWORD);

    let store = Store::open(dir.path()).await.unwrap();
    scan::assert_the_scan_finds_a_value_in_clear(&store, dir.path(), "clear-control-value").await;
    crypto::rotate_key(&store).await.unwrap();
    assert_eq!(
        databases::credentials(&store, db.id).await.unwrap(),
        creds()
    );
    store.close().await;

    // With only a database's credentials sealed, a lost key is noticed too.
    std::fs::remove_file(dir.path().join(crypto::KEY_FILE)).unwrap();
    let err = Store::open(dir.path()).await.unwrap_err();
    assert!(err.to_string().contains("restore the file"), "{err}");
}

#[tokio::test]
async fn apps_stacks_and_databases_share_a_projects_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let db = with_database(&store).await;
    let app = NewApp {
        name: AppName::parse("main").unwrap(),
        image: ImageRef::parse("berth-test/web:1").unwrap(),
        container_port: Port::parse("8080").unwrap(),
        command: None,
        dangerous_mounts: false,
    };
    let err = apps::create(&store, &db.project, &app).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { what } if what.contains("database")),
        "{err}"
    );
    let stack = berth_core::StackName::parse("main").unwrap();
    let err = berth_store::stacks::create(
        &store,
        &db.project,
        &berth_store::stacks::NewStack {
            name: &stack,
            source_kind: "compose",
            template: None,
            dangerous_confirmed: false,
        },
        b"{}",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    let err = projects::delete_empty(&store, &db.project)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ProjectNotEmpty), "{err}");
}
