//! Certificate rows and the hosts that want ACME, against a real SQLite file.

use berth_core::{
    AppName, DomainName, DomainTarget, ImageRef, NewApp, NewDomain, PathPrefix, Port, ProjectName,
    TlsMode, certificate::Issued, certificate::Source,
};
use berth_store::apps;
use berth_store::certificates;
use berth_store::domains;
use berth_store::{Store, projects};

async fn store_with_app() -> (tempfile::TempDir, Store, berth_core::AppId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let project = ProjectName::parse("demo").unwrap();
    projects::create(&store, &project).await.unwrap();
    let app = apps::create(
        &store,
        &project,
        &NewApp {
            name: AppName::parse("web").unwrap(),
            image: ImageRef::parse("berth-test/web").unwrap(),
            container_port: Port::parse("8080").unwrap(),
            command: None,
            dangerous_mounts: false,
        },
    )
    .await
    .unwrap();
    (dir, store, app.id)
}

async fn add(store: &Store, app: berth_core::AppId, host: &str, prefix: &str, tls_mode: TlsMode) {
    domains::add(
        store,
        app,
        &NewDomain {
            host: DomainName::parse(host).unwrap(),
            path_prefix: PathPrefix::parse(prefix).unwrap(),
            strip_prefix: false,
            target: DomainTarget::App,
            tls_mode,
            redirect_https: true,
            hsts: false,
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn acme_is_wanted_by_acme_domains_and_the_dashboard_but_not_wildcards_or_plain_http() {
    let (_dir, store, app) = store_with_app().await;
    add(&store, app, "shop.example.com", "", TlsMode::Acme).await;
    add(&store, app, "shop.example.com", "/blog", TlsMode::Acme).await;
    add(&store, app, "*.example.com", "", TlsMode::Acme).await;
    add(&store, app, "plain.example.com", "", TlsMode::None).await;
    add(&store, app, "own.example.com", "", TlsMode::Uploaded).await;
    domains::set_dashboard_domain(
        &store,
        Some(&DomainName::parse("berth.example.com").unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(
        certificates::acme_hosts(&store).await.unwrap(),
        ["berth.example.com", "shop.example.com"]
    );
}

#[tokio::test]
async fn a_renewal_replaces_the_row_and_reports_the_old_files_and_a_failure_keeps_it() {
    let (_dir, store, _) = store_with_app().await;
    let pending = certificates::ensure_acme(&store, "shop.example.com")
        .await
        .unwrap();
    assert!(pending.serial.is_none());
    let issued = |serial: &str| Issued {
        names: vec!["shop.example.com".into()],
        issuer: "Test CA".into(),
        serial: serial.into(),
        not_before: 1,
        not_after: 2,
        cert_path: format!("/certs/{serial}.crt"),
        key_path: format!("/certs/{serial}.key"),
        account_id: None,
        next_attempt_at: Some(100),
    };
    let (first, stale) =
        certificates::record_issued(&store, "shop.example.com", Source::Acme, &issued("01"))
            .await
            .unwrap();
    assert_eq!(first.id, pending.id);
    assert!(stale.is_empty());

    certificates::record_failure(&store, first.id, "the CA refused", false, 500)
        .await
        .unwrap();
    let failed = certificates::find(&store, first.id).await.unwrap();
    assert_eq!(failed.serial.as_deref(), Some("01"));
    assert_eq!((failed.failures, failed.next_attempt_at), (1, Some(500)));
    assert_eq!(failed.last_error.as_deref(), Some("the CA refused"));

    let (second, stale) =
        certificates::record_issued(&store, "shop.example.com", Source::Acme, &issued("02"))
            .await
            .unwrap();
    assert_eq!(second.serial.as_deref(), Some("02"));
    assert_eq!((second.failures, second.last_error), (0, None));
    assert_eq!(stale, ["/certs/01.crt", "/certs/01.key"]);

    // An uploaded certificate is never turned back into an ACME one.
    certificates::record_issued(&store, "own.example.com", Source::Uploaded, &issued("03"))
        .await
        .unwrap();
    let own = certificates::ensure_acme(&store, "own.example.com")
        .await
        .unwrap();
    assert_eq!(own.source, Source::Uploaded);
}
