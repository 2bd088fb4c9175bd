//! Domains against a real SQLite file in a temp dir.

use berth_core::{
    AppName, DomainName, DomainTarget, ImageRef, NewApp, NewDomain, PathPrefix, Port, ProjectName,
    TlsMode,
};
use berth_store::apps;
use berth_store::domains;
use berth_store::{Store, StoreError, projects};

fn domain(host: &str, prefix: &str, target: DomainTarget) -> NewDomain {
    NewDomain {
        host: DomainName::parse(host).unwrap(),
        path_prefix: PathPrefix::parse(prefix).unwrap(),
        strip_prefix: false,
        target,
        tls_mode: TlsMode::Acme,
        redirect_https: true,
        hsts: false,
    }
}

#[tokio::test]
async fn a_host_and_prefix_route_once_and_go_with_their_app() {
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

    domains::add(
        &store,
        app.id,
        &domain("shop.example.com", "", DomainTarget::App),
    )
    .await
    .unwrap();
    let blog = DomainTarget::Static {
        dir: "/srv/blog".into(),
        spa_fallback: true,
    };
    domains::add(
        &store,
        app.id,
        &domain("shop.example.com", "/blog/", blog.clone()),
    )
    .await
    .unwrap();
    assert!(matches!(
        domains::add(
            &store,
            app.id,
            &domain("SHOP.example.com", "/", DomainTarget::App)
        )
        .await,
        Err(StoreError::AlreadyExists { .. })
    ));

    let listed = domains::list_for_app(&store, app.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].path_prefix.as_str(), "/");
    assert_eq!(listed[1].path_prefix.as_str(), "/blog");
    assert_eq!(listed[1].target, blog);
    assert_eq!(listed[1].app.as_str(), "web");

    let host = DomainName::parse("shop.example.com").unwrap();
    let blog_prefix = PathPrefix::parse("/blog").unwrap();
    assert_eq!(
        domains::remove(&store, app.id, &host, Some(&blog_prefix))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        domains::remove(&store, app.id, &host, Some(&blog_prefix)).await,
        Err(StoreError::NotFound { .. })
    ));

    apps::delete(&store, app.id).await.unwrap();
    assert!(domains::list_all(&store).await.unwrap().is_empty());

    assert_eq!(domains::dashboard_domain(&store).await.unwrap(), None);
    let admin = DomainName::parse("berth.example.com").unwrap();
    domains::set_dashboard_domain(&store, Some(&admin))
        .await
        .unwrap();
    assert_eq!(
        domains::dashboard_domain(&store).await.unwrap(),
        Some(admin)
    );
    domains::set_dashboard_domain(&store, None).await.unwrap();
    assert_eq!(domains::dashboard_domain(&store).await.unwrap(), None);
}
