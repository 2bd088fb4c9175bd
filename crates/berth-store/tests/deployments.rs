//! Deployments in the store, against a real SQLite file: numbering, the
//! queue that keeps only the newest waiting deployment, logs read by
//! position, settings with defaults, and the webhook secret sealed at rest.

mod scan;

use berth_core::{
    AppName, DeploySettings, DeploymentStatus, GitSource, ImageRef, Port, ProjectName,
    deployment::Source,
};
use berth_store::deployments::{self, NewDeployment};
use berth_store::{Store, apps, crypto, projects};

async fn an_app(store: &Store) -> berth_core::AppId {
    let project = ProjectName::parse("demo").unwrap();
    projects::create(store, &project).await.unwrap();
    apps::create(
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
    .unwrap()
    .id
}

/// A store in a temp dir with the app `demo/web` in it.
async fn store_with_an_app() -> (tempfile::TempDir, Store, berth_core::AppId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let app = an_app(&store).await;
    (dir, store, app)
}

/// `secret` is sealed in the database file, where the scan would find it
/// in clear; then the key is rotated.
async fn assert_sealed_then_rotate(store: &Store, dir: &std::path::Path, secret: &str) {
    scan::assert_sealed(dir, secret);
    scan::assert_the_scan_finds_a_value_in_clear(store, dir, secret).await;
    crypto::rotate_key(store).await.unwrap();
}

/// With its key file gone, the store refuses to open (what it sealed would
/// be lost) and writes no new key.
async fn assert_a_lost_key_is_refused(store: Store, dir: &std::path::Path) {
    store.close().await;
    std::fs::remove_file(dir.join(crypto::KEY_FILE)).unwrap();
    let err = Store::open(dir).await.unwrap_err();
    assert!(
        matches!(err, berth_store::StoreError::BadSecretKey { .. }),
        "{err}"
    );
    assert!(
        !dir.join(crypto::KEY_FILE).exists(),
        "no new key was written"
    );
}

fn new(trigger: &str) -> NewDeployment {
    NewDeployment {
        trigger: trigger.to_owned(),
        image: Some("berth-test/web:latest".to_owned()),
        ..NewDeployment::default()
    }
}

#[tokio::test]
async fn a_newer_deployment_replaces_the_one_still_waiting_but_not_the_one_running() {
    let (_dir, store, app) = store_with_an_app().await;
    let (first, _) = deployments::enqueue(&store, app, &new("api"))
        .await
        .unwrap();
    assert_eq!(first.number, 1);
    deployments::mark_running(&store, first.id).await.unwrap();
    let (second, replaced) = deployments::enqueue(&store, app, &new("api"))
        .await
        .unwrap();
    assert!(
        replaced.is_empty(),
        "a running deployment is never replaced"
    );
    let (third, replaced) = deployments::enqueue(&store, app, &new("webhook"))
        .await
        .unwrap();
    assert_eq!(third.number, 3);
    assert_eq!(replaced.len(), 1);
    let second = deployments::find(&store, second.id).await.unwrap();
    assert_eq!(second.status, DeploymentStatus::Cancelled);
    assert_eq!(second.reason.as_deref(), Some("replaced by deployment #3"));
    let active: Vec<i64> = deployments::list_active(&store)
        .await
        .unwrap()
        .iter()
        .map(|d| d.number)
        .collect();
    assert_eq!(active, vec![1, 3]);

    deployments::append_log(&store, first.id, &["a".into(), "b".into()])
        .await
        .unwrap();
    deployments::append_log(&store, first.id, &["c".into()])
        .await
        .unwrap();
    let all = deployments::log_since(&store, first.id, 0).await.unwrap();
    assert_eq!(all, vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]);
    assert_eq!(
        deployments::log_since(&store, first.id, 2).await.unwrap(),
        vec![(3, "c".into())]
    );
}

#[tokio::test]
async fn settings_default_round_trip_and_the_webhook_secret_survives_a_key_rotation() {
    let (dir, store, app) = store_with_an_app().await;
    assert_eq!(
        deployments::settings(&store, app).await.unwrap(),
        DeploySettings::default()
    );
    let secret = deployments::webhook_secret(&store, app).await.unwrap();
    assert_eq!(
        deployments::webhook_secret(&store, app).await.unwrap(),
        secret,
        "made once"
    );

    let defaults = DeploySettings::default();
    let settings = DeploySettings {
        source: Source::Git(GitSource {
            url: "file:///srv/repo".into(),
            branch: "main".into(),
            subdir: "site".into(),
            dockerfile: String::new(),
        }),
        health: berth_core::HealthCheck {
            path: Some("/healthz".into()),
            ..defaults.health.clone()
        },
        memory_mb: Some(256),
        cpu_millis: Some(1500),
        restart_policy: berth_core::RestartPolicy::Always,
        ..defaults
    };
    deployments::save_settings(&store, app, &settings)
        .await
        .unwrap();
    assert_eq!(deployments::settings(&store, app).await.unwrap(), settings);
    assert_eq!(
        deployments::webhook_secret(&store, app).await.unwrap(),
        secret,
        "saving settings keeps the secret"
    );

    assert_sealed_then_rotate(&store, dir.path(), &secret).await;
    assert_eq!(
        deployments::webhook_secret(&store, app).await.unwrap(),
        secret
    );
    let fresh = deployments::regenerate_webhook_secret(&store, app)
        .await
        .unwrap();
    assert_ne!(fresh, secret);
}

#[tokio::test]
async fn a_deploy_key_is_kept_once_sealed_at_rest_and_survives_a_key_rotation() {
    let (dir, store, app) = store_with_an_app().await;
    assert_eq!(
        deployments::deploy_key_public(&store, app).await.unwrap(),
        None
    );
    assert_eq!(
        deployments::deploy_key_private(&store, app).await.unwrap(),
        None
    );
    let private = b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot really a key 7f3a9c\n-----END OPENSSH PRIVATE KEY-----\n";
    let public = deployments::save_deploy_key(&store, app, "ssh-ed25519 AAAA first", private)
        .await
        .unwrap();
    assert_eq!(public, "ssh-ed25519 AAAA first");
    assert_eq!(
        deployments::save_deploy_key(&store, app, "ssh-ed25519 AAAA second", b"other")
            .await
            .unwrap(),
        public,
        "a second first use keeps the key already stored"
    );
    // Saving the settings keeps the key.
    deployments::save_settings(&store, app, &DeploySettings::default())
        .await
        .unwrap();
    scan::assert_sealed(dir.path(), "not really a key 7f3a9c");
    scan::assert_the_scan_finds_a_value_in_clear(&store, dir.path(), "not really a key 7f3a9c")
        .await;
    crypto::rotate_key(&store).await.unwrap();
    assert_eq!(
        deployments::deploy_key_private(&store, app)
            .await
            .unwrap()
            .as_deref(),
        Some(&private[..])
    );
    assert_eq!(
        deployments::deploy_key_public(&store, app)
            .await
            .unwrap()
            .as_deref(),
        Some("ssh-ed25519 AAAA first")
    );
}

#[tokio::test]
async fn a_lost_key_is_refused_when_only_a_webhook_secret_is_sealed() {
    // No environment variable at all: the check once counted only those,
    // and replaced the key, leaving the webhook secret unreadable.
    let (dir, store, app) = store_with_an_app().await;
    deployments::webhook_secret(&store, app).await.unwrap();
    assert_a_lost_key_is_refused(store, dir.path()).await;
}

#[tokio::test]
async fn a_log_keeps_its_newest_lines_and_says_how_many_were_cut() {
    let (_dir, store, app) = store_with_an_app().await;
    let (dep, _) = deployments::enqueue(&store, app, &new("api"))
        .await
        .unwrap();
    let total = deployments::MAX_LOG_LINES + 2_500;
    let lines: Vec<String> = (1..=total).map(|n| format!("line {n}")).collect();
    for chunk in lines.chunks(1_000) {
        deployments::append_log(&store, dep.id, chunk)
            .await
            .unwrap();
    }
    let log = deployments::log_since(&store, dep.id, 0).await.unwrap();
    assert_eq!(log.len() as i64, deployments::MAX_LOG_LINES + 1);
    assert_eq!(
        log[0].1,
        "[2500 earlier lines were cut: a deployment keeps its last 10000 lines]"
    );
    assert_eq!(log[1].1, "line 2501");
    assert_eq!(log.last().unwrap().1, format!("line {total}"));
}

fn git_settings(url: &str) -> DeploySettings {
    DeploySettings {
        source: Source::Git(GitSource {
            url: url.into(),
            branch: "main".into(),
            ..GitSource::default()
        }),
        ..DeploySettings::default()
    }
}

async fn git_url_column(store: &Store, app: berth_core::AppId) -> String {
    sqlx::query_scalar("SELECT git_url FROM deploy_settings WHERE app_id = ?")
        .bind(app.get())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_git_urls_credentials_are_sealed_at_rest_and_survive_a_key_rotation() {
    let (dir, store, app) = store_with_an_app().await;
    let url = "https://ci:glpat-t0ken-7q2w@gitlab.example.com/o/r.git";
    let settings = git_settings(url);
    deployments::save_settings(&store, app, &settings)
        .await
        .unwrap();
    assert_eq!(deployments::settings(&store, app).await.unwrap(), settings);
    assert_eq!(
        git_url_column(&store, app).await,
        "https://***@gitlab.example.com/o/r.git",
        "the column in clear holds the URL masked"
    );
    assert_sealed_then_rotate(&store, dir.path(), "glpat-t0ken-7q2w").await;
    assert_eq!(deployments::settings(&store, app).await.unwrap(), settings);

    // A URL without credentials is kept in clear, and the sealed one goes.
    let plain = git_settings("https://gitlab.example.com/o/public.git");
    deployments::save_settings(&store, app, &plain)
        .await
        .unwrap();
    assert_eq!(deployments::settings(&store, app).await.unwrap(), plain);
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT git_url_sealed FROM deploy_settings WHERE app_id = ?")
            .bind(app.get())
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(sealed, None);
}

#[tokio::test]
async fn a_lost_key_is_refused_when_only_a_git_url_is_sealed() {
    let (dir, store, app) = store_with_an_app().await;
    deployments::save_settings(
        &store,
        app,
        &git_settings("https://tok3n@example.com/r.git"),
    )
    .await
    .unwrap();
    assert_a_lost_key_is_refused(store, dir.path()).await;
}

#[tokio::test]
async fn a_git_url_an_older_berth_stored_in_clear_is_sealed_at_the_next_open() {
    let (dir, store, app) = store_with_an_app().await;
    let url = "https://x-access-token:ghs_0ldTok3nInClear@github.com/o/r.git";
    deployments::save_settings(&store, app, &git_settings("https://github.com/o/r.git"))
        .await
        .unwrap();
    // What a berth before sealing wrote: the whole URL in the column.
    sqlx::query("UPDATE deploy_settings SET git_url = ? WHERE app_id = ?")
        .bind(url)
        .bind(app.get())
        .execute(store.pool())
        .await
        .unwrap();
    assert!(
        scan::holds(&scan::database_bytes(dir.path()), b"ghs_0ldTok3nInClear"),
        "positive control: the scan finds the token written in clear"
    );
    store.close().await;

    let store = Store::open(dir.path()).await.unwrap();
    assert_eq!(
        deployments::settings(&store, app).await.unwrap(),
        git_settings(url)
    );
    assert_eq!(
        git_url_column(&store, app).await,
        "https://***@github.com/o/r.git"
    );
    scan::assert_sealed(dir.path(), "ghs_0ldTok3nInClear");
}

#[tokio::test]
async fn a_webhook_delivery_is_handled_once_per_app_across_reopens_until_it_expires() {
    let (dir, store, app) = store_with_an_app().await;
    let other = apps::create(
        &store,
        &ProjectName::parse("demo").unwrap(),
        &berth_core::NewApp {
            name: AppName::parse("api").unwrap(),
            image: ImageRef::parse("berth-test/web").unwrap(),
            container_port: Port::parse("8080").unwrap(),
            command: None,
            dangerous_mounts: false,
        },
    )
    .await
    .unwrap()
    .id;
    let record = |app, id: &'static str| {
        let store = store.clone();
        async move {
            deployments::record_webhook_delivery(&store, app, id)
                .await
                .unwrap()
        }
    };
    assert!(record(app, "d-1").await);
    assert!(!record(app, "d-1").await, "the same delivery again");
    assert!(record(other, "d-1").await, "another app's delivery");
    store.close().await;

    let store = Store::open(dir.path()).await.unwrap();
    assert!(
        !deployments::record_webhook_delivery(&store, app, "d-1")
            .await
            .unwrap(),
        "remembered after a reopen"
    );
    // Once expired, the id is forgotten (and its row removed).
    sqlx::query("UPDATE webhook_deliveries SET expires_at = 0 WHERE delivery = 'd-1'")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(
        deployments::record_webhook_delivery(&store, app, "d-2")
            .await
            .unwrap()
    );
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 1, "only d-2 is left");
    assert!(
        deployments::record_webhook_delivery(&store, app, "d-1")
            .await
            .unwrap()
    );
}
