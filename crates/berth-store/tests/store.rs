//! The store against a real SQLite file in a temp dir.

mod scan;

use berth_core::{
    AppName, AppStatus, DesiredState, ImageRef, NewApp, Password, Port, ProjectName, Username,
};
use berth_store::apps;
use berth_store::{
    Store, StoreError, api_tokens, certificates, passwords, projects, sessions, users,
};

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).await.unwrap();
    (dir, store)
}

fn new_app(name: &str) -> NewApp {
    NewApp {
        name: AppName::parse(name).unwrap(),
        image: ImageRef::parse("berth-test/web:1").unwrap(),
        container_port: Port::parse("8080").unwrap(),
        command: Some(berth_core::Command::parse("httpd -f -p '80 80'").unwrap()),
        dangerous_mounts: false,
    }
}

#[tokio::test]
async fn opening_creates_the_data_dir_and_migrates_once() {
    let (dir, store) = open().await;
    assert!(dir.path().join("data/berth.db").exists());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    store.close().await;
    // Opening again runs no migration twice and keeps the data.
    let again = Store::open(&dir.path().join("data")).await.unwrap();
    assert_eq!(users::count(&again).await.unwrap(), 0);
}

#[tokio::test]
async fn apps_are_unique_per_project_and_keep_their_parsed_fields() {
    let (_dir, store) = open().await;
    let a = ProjectName::parse("a").unwrap();
    let b = ProjectName::parse("b").unwrap();
    projects::create(&store, &a).await.unwrap();
    projects::create(&store, &b).await.unwrap();
    assert!(matches!(
        projects::create(&store, &a).await,
        Err(StoreError::AlreadyExists { .. })
    ));

    let app = apps::create(&store, &a, &new_app("web")).await.unwrap();
    assert_eq!(app.status, AppStatus::Pending);
    assert_eq!(app.desired_state, DesiredState::Running);
    assert_eq!(
        app.command.as_ref().unwrap().args(),
        ["httpd", "-f", "-p", "80 80"]
    );
    assert!(matches!(
        apps::create(&store, &a, &new_app("web")).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    apps::create(&store, &b, &new_app("web"))
        .await
        .expect("same name in another project");
    let missing = ProjectName::parse("missing").unwrap();
    assert!(matches!(
        apps::create(&store, &missing, &new_app("web")).await,
        Err(StoreError::NotFound { .. })
    ));

    apps::set_status(
        &store,
        app.id,
        AppStatus::Crashed,
        Some("exited with code 3"),
    )
    .await
    .unwrap();
    let upstream: std::net::SocketAddr = "172.18.0.7:8080".parse().unwrap();
    apps::set_container(&store, app.id, Some("abc"), Some(32768), Some(upstream))
        .await
        .unwrap();
    let found = apps::find(&store, &a, &AppName::parse("web").unwrap())
        .await
        .unwrap();
    assert_eq!(
        (found.status, found.status_detail.as_deref()),
        (AppStatus::Crashed, Some("exited with code 3"))
    );
    assert_eq!(found.upstream, Some(upstream));
    assert_eq!(
        (found.container_id.as_deref(), found.host_port),
        (Some("abc"), Some(32768))
    );

    assert!(matches!(
        projects::delete_empty(&store, &a).await,
        Err(StoreError::ProjectNotEmpty)
    ));
    apps::delete(&store, app.id).await.unwrap();
    projects::delete_empty(&store, &a).await.unwrap();
    let listed = projects::list_with_app_counts(&store).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].app_count, 1);
}

#[tokio::test]
async fn the_database_file_holds_no_password_session_or_api_token_in_clear() {
    let (dir, store) = open().await;
    let password = "a-very-memorable-password";
    let hash = passwords::hash(&Password::parse_new(password).unwrap())
        .await
        .unwrap();
    let user = users::create_first(&store, &Username::parse("admin").unwrap(), &hash)
        .await
        .unwrap()
        .unwrap();
    assert!(
        users::create_first(&store, &Username::parse("second").unwrap(), &hash)
            .await
            .unwrap()
            .is_none(),
        "only the first"
    );
    let session = sessions::create(&store, user.id).await.unwrap();
    let (_, token) = api_tokens::create(&store, "ci", Default::default())
        .await
        .unwrap();
    assert!(
        sessions::find_user(&store, &session.token)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        api_tokens::authenticate(&store, &token)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        api_tokens::authenticate(&store, "berth_wrong")
            .await
            .unwrap()
            .is_none()
    );
    assert!(passwords::verify(password, &hash).await);
    assert!(!passwords::verify("wrong", &hash).await);

    let data = dir.path().join("data");
    for secret in [password, session.token.as_str(), token.as_str()] {
        scan::assert_sealed(&data, secret);
    }
    // And once the store is closed and everything is in the main file.
    store.close().await;
    for secret in [password, session.token.as_str(), token.as_str()] {
        scan::assert_sealed(&data, secret);
    }
    let store = Store::open(&data).await.unwrap();
    scan::assert_the_scan_finds_a_value_in_clear(&store, &data, &session.token).await;
}

#[tokio::test]
async fn the_dummy_hash_is_a_real_argon2_hash() {
    // Login verifies unknown users against it; if it did not parse, timing would tell.
    assert!(!passwords::verify("anything", passwords::DUMMY_HASH).await);
    assert!(!passwords::verify("anything", "not a hash").await);
    assert!(argon2::password_hash::PasswordHash::new(passwords::DUMMY_HASH).is_ok());
}

#[tokio::test]
async fn the_full_app_list_is_ordered_and_keeps_every_field() {
    let (_dir, store) = open().await;
    for project in ["zeta", "alpha"] {
        projects::create(&store, &ProjectName::parse(project).unwrap())
            .await
            .unwrap();
    }
    let zeta = ProjectName::parse("zeta").unwrap();
    let alpha = ProjectName::parse("alpha").unwrap();
    let mut tricky = new_app("b");
    tricky.command = Some(berth_core::Command::parse(r#"sh -c "echo \"ünï\" 'x'""#).unwrap());
    let b = apps::create(&store, &zeta, &tricky).await.unwrap();
    apps::create(&store, &zeta, &new_app("a")).await.unwrap();
    apps::create(&store, &alpha, &new_app("c")).await.unwrap();
    apps::set_status(
        &store,
        b.id,
        AppStatus::Crashed,
        Some("exited with code \"3\""),
    )
    .await
    .unwrap();
    apps::set_container(
        &store,
        b.id,
        Some("abc"),
        Some(40000),
        Some("172.18.0.8:3000".parse().unwrap()),
    )
    .await
    .unwrap();

    let listed = apps::list_all(&store).await.unwrap();
    let names: Vec<String> = listed
        .iter()
        .map(|a| format!("{}/{}", a.project, a.name))
        .collect();
    assert_eq!(names, ["alpha/c", "zeta/a", "zeta/b"]);
    // The list path reads the same app as a single lookup.
    let one = apps::find(&store, &zeta, &AppName::parse("b").unwrap())
        .await
        .unwrap();
    let from_list = &listed[2];
    assert_eq!(format!("{from_list:?}"), format!("{one:?}"));
    assert_eq!(
        from_list.command.as_ref().unwrap().args(),
        ["sh", "-c", "echo \"ünï\" 'x'"]
    );
}

/// Moves a session's last use `secs` into the past, as if it had been idle.
async fn idle_for(store: &Store, secs: i64) {
    sqlx::query("UPDATE sessions SET last_seen_at = last_seen_at - ?")
        .bind(secs)
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_session_left_idle_ends_before_its_lifetime_and_its_use_is_written_once_a_minute() {
    let (_dir, store) = open().await;
    let hash = passwords::hash(&Password::parse_new("a-long-password").unwrap())
        .await
        .unwrap();
    let user = users::create_first(&store, &Username::parse("admin").unwrap(), &hash)
        .await
        .unwrap()
        .unwrap();
    let session = sessions::create(&store, user.id).await.unwrap();
    let seen = |store: &Store| {
        let token = session.token.clone();
        let store = store.clone();
        async move {
            sessions::last_seen(&store, &token)
                .await
                .unwrap()
                .expect("the session exists")
        }
    };
    let created = seen(&store).await;

    // Used again within the minute: found, and nothing is written.
    idle_for(&store, 30).await;
    assert!(
        sessions::find_user(&store, &session.token)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(seen(&store).await, created - 30, "no write within a minute");

    // A minute or more since the last write: the use is written down.
    idle_for(&store, 60).await;
    assert!(
        sessions::find_user(&store, &session.token)
            .await
            .unwrap()
            .is_some()
    );
    assert!(seen(&store).await >= created, "the use is recorded");

    // Unused just short of the idle limit: still valid, and that use starts it again.
    idle_for(&store, sessions::IDLE_SECS - 5).await;
    assert!(
        sessions::find_user(&store, &session.token)
            .await
            .unwrap()
            .is_some()
    );
    // Unused for the idle limit: over, days before its lifetime ends.
    idle_for(&store, sessions::IDLE_SECS).await;
    const { assert!(sessions::IDLE_SECS < sessions::LIFETIME_SECS) };
    assert!(
        sessions::find_user(&store, &session.token)
            .await
            .unwrap()
            .is_none(),
        "an idle session ends"
    );
    // And the hourly clean-up removes it.
    let other = sessions::create(&store, user.id).await.unwrap();
    assert_eq!(sessions::delete_expired(&store).await.unwrap(), 1);
    assert!(
        sessions::find_user(&store, &other.token)
            .await
            .unwrap()
            .is_some(),
        "a session in use stays"
    );
}

#[tokio::test]
async fn an_expired_token_is_refused_and_the_scope_is_kept() {
    let (_dir, store) = open().await;
    let now = berth_store::now();
    let (_, ends_soon) = api_tokens::create(
        &store,
        "monitoring",
        berth_core::TokenScope {
            expires_at: Some(now + 3600),
            read_only: true,
        },
    )
    .await
    .unwrap();
    let found = api_tokens::authenticate(&store, &ends_soon)
        .await
        .unwrap()
        .expect("valid until it expires");
    assert!(found.read_only);
    assert!(found.allows("GET") && found.allows("HEAD"));
    assert!(!found.allows("POST") && !found.allows("DELETE") && !found.allows("PUT"));

    // An hour later: the same token is refused.
    sqlx::query("UPDATE api_tokens SET expires_at = ? WHERE name = 'monitoring'")
        .bind(now - 1)
        .execute(store.pool())
        .await
        .unwrap();
    assert!(
        api_tokens::authenticate(&store, &ends_soon)
            .await
            .unwrap()
            .is_none(),
        "an expired token authenticates nothing"
    );
    let (_, forever) = api_tokens::create(&store, "ci", Default::default())
        .await
        .unwrap();
    let found = api_tokens::authenticate(&store, &forever)
        .await
        .unwrap()
        .unwrap();
    assert!(found.expires_at.is_none() && !found.read_only && found.allows("POST"));
}

#[tokio::test]
async fn a_stacks_own_domains_want_certificates_and_its_addresses_survive_new_routes() {
    use berth_store::stacks::{self, NewStack, StackRouteRow};
    let (_dir, store) = open().await;
    let project = ProjectName::parse("shop").unwrap();
    projects::create(&store, &project).await.unwrap();
    let name = berth_core::StackName::parse("web").unwrap();
    let stack = stacks::create(
        &store,
        &project,
        &NewStack {
            name: &name,
            source_kind: "compose",
            template: None,
            dangerous_confirmed: false,
        },
        b"{\"sealed\": true}",
    )
    .await
    .unwrap();
    assert_eq!(
        stacks::state(&store, stack.id).await.unwrap(),
        b"{\"sealed\": true}"
    );
    let route = |host: &str, acme: bool, address: Option<&str>| StackRouteRow {
        service: "web".into(),
        host: host.into(),
        path: "/".into(),
        port: 8080,
        address: address.map(Into::into),
        acme,
    };
    stacks::set_routes(
        &store,
        stack.id,
        &[
            route("web.shop.localhost", false, Some("172.18.0.5")),
            route("shop.example.com", true, None),
        ],
    )
    .await
    .unwrap();
    let wanted = certificates::acme_hosts(&store).await.unwrap();
    assert!(
        wanted.contains(&"shop.example.com".to_owned()),
        "{wanted:?}"
    );
    assert!(
        !wanted.contains(&"web.shop.localhost".to_owned()),
        "{wanted:?}"
    );
    // New routes (an update) keep the running service's address.
    stacks::set_routes(&store, stack.id, &[route("shop.example.org", false, None)])
        .await
        .unwrap();
    let routes = stacks::routes(&store, stack.id).await.unwrap();
    assert_eq!(routes[0].address.as_deref(), Some("172.18.0.5"));
    assert!(
        !certificates::acme_hosts(&store)
            .await
            .unwrap()
            .contains(&"shop.example.com".to_owned())
    );
    // A host another stack serves is refused, and nothing changes.
    let other = berth_core::StackName::parse("other").unwrap();
    let second = stacks::create(
        &store,
        &project,
        &NewStack {
            name: &other,
            source_kind: "compose",
            template: None,
            dangerous_confirmed: false,
        },
        b"{}",
    )
    .await
    .unwrap();
    assert!(
        stacks::set_routes(&store, second.id, &[route("shop.example.org", false, None)])
            .await
            .is_err()
    );
    // The project cannot go while it has stacks.
    assert!(projects::delete_empty(&store, &project).await.is_err());
}
