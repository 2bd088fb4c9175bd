//! Walks berth's whole route table against the real router (a real SQLite
//! file; Docker is never reached because auth answers first) and proves that
//! only login, setup, `/healthz`, static assets and the deploy webhooks
//! (whose credential is the app's secret) answer without credentials, that every state-changing dashboard route wants its CSRF
//! token, that every API route is in the OpenAPI document, and that a
//! wrongly typed API field is reported under its name.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth_core::{Password, Username};
use berth_deploy::Runtime;
use berth_docker::DockerClient;
use berth_store::{Store, passwords, sessions, users};
use berth_web::{Access, AppState, route_table, router};
use http_body_util::BodyExt;
use tower::ServiceExt;

const PUBLIC: [&str; 6] = [
    "/healthz",
    "/static/{file}",
    "/setup",
    "/login",
    "/hooks/{project}/{app}/{secret}",
    "/hooks/{project}/{app}",
];

fn concrete(path: &str) -> String {
    path.replace("{project}", "demo")
        .replace("{app}", "web")
        .replace("{file}", "style.css")
        .replace("{number}", "1")
        .replace("{secret}", "not-the-secret")
        .replace("{stack}", "tea")
        .replace("{service}", "db")
        .replace("{template}", "gitea")
}

async fn state() -> (tempfile::TempDir, AppState, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    // Nothing listens there: a route that reached Docker would fail loudly, not pass.
    let docker = DockerClient::connect(Some("unix:///nonexistent/berth-routes.sock")).unwrap();
    let runtime = Runtime::new(store.clone(), docker).await.unwrap();
    (
        dir,
        AppState::new(runtime.services(), Some("setup-token".into())),
        store,
    )
}

/// The admin account, made straight in the store.
async fn admin(store: &Store) -> berth_core::User {
    let hash = passwords::hash(&Password::parse_new("a long password").unwrap())
        .await
        .unwrap();
    users::create(store, &Username::parse("admin").unwrap(), &hash)
        .await
        .unwrap()
}

/// A logged-in browser session of the admin.
async fn admin_session(store: &Store) -> berth_core::NewSession {
    let user = admin(store).await;
    sessions::create(store, user.id).await.unwrap()
}

#[tokio::test]
async fn only_login_setup_healthz_static_assets_and_webhooks_are_public() {
    let (_dir, state, store) = state().await;
    admin(&store).await;
    let app = router(state);
    let table = route_table();
    assert!(table.len() > 20, "the table lists every route");

    for route in &table {
        let public = PUBLIC.contains(&route.path.as_str());
        assert_eq!(
            route.access == Access::Public,
            public,
            "{} {} has the wrong access class",
            route.method,
            route.path
        );
        if public {
            continue;
        }
        let request = Request::builder()
            .method(route.method.clone())
            .uri(concrete(&route.path))
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        match route.access {
            Access::Session => {
                assert_eq!(
                    response.status(),
                    StatusCode::SEE_OTHER,
                    "{} {}",
                    route.method,
                    route.path
                );
                assert_eq!(
                    response.headers()["location"],
                    "/login",
                    "{} {}",
                    route.method,
                    route.path
                );
            }
            Access::Bearer => {
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{} {}",
                    route.method,
                    route.path
                );
                // A wrong token is refused the same way.
                let request = Request::builder()
                    .method(route.method.clone())
                    .uri(concrete(&route.path))
                    .header("authorization", "Bearer berth_not-a-token")
                    .body(Body::empty())
                    .unwrap();
                let response = app.clone().oneshot(request).await.unwrap();
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{} {}",
                    route.method,
                    route.path
                );
            }
            Access::Public => unreachable!(),
        }
    }
    // The webhooks answer 401 to a wrong secret, an unsigned call and an unknown app alike.
    for uri in [
        "/hooks/demo/web/not-the-secret",
        "/hooks/demo/web",
        "/hooks/Bad_Name/web",
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .body(Body::from("{}"))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
}

#[tokio::test]
async fn every_dashboard_post_needs_the_sessions_csrf_token() {
    let (_dir, state, store) = state().await;
    let session = admin_session(&store).await;
    let app = router(state);
    for route in route_table()
        .iter()
        .filter(|r| r.method == Method::POST && r.access == Access::Session)
    {
        for body in ["", "csrf=wrong", "name=x"] {
            let request = Request::builder()
                .method(Method::POST)
                .uri(concrete(&route.path))
                .header("cookie", format!("berth_session={}", session.token))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "POST {} with body {body:?}",
                route.path
            );
        }
    }
    // The public forms want their pre-session token as well.
    for path in ["/login", "/setup"] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("username=admin&password=a+long+password"))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "POST {path}");
    }
}

#[tokio::test]
async fn every_api_route_is_described_in_the_openapi_document() {
    let (_dir, state, store) = state().await;
    let (_, token) = berth_store::api_tokens::create(&store, "routes-test", Default::default())
        .await
        .unwrap();
    let app = router(state);
    let request = Request::builder()
        .uri("/api/v1/openapi.json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for route in route_table()
        .iter()
        .filter(|r| r.access == Access::Bearer && r.path != "/api/v1/openapi.json")
    {
        let method = route.method.as_str().to_lowercase();
        assert!(
            doc["paths"][route.path.as_str()][&method].is_object(),
            "{} {} is missing from openapi.json",
            route.method,
            route.path
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // The schemas come with the routes that use them: none is missing.
    let text = doc.to_string();
    let references: Vec<&str> = text
        .split("\"$ref\":\"#/components/schemas/")
        .skip(1)
        .collect();
    assert!(references.len() > 20, "the bodies refer to their schemas");
    for reference in references {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "schema {name} is referenced but not in openapi.json"
        );
    }
}

#[tokio::test]
async fn a_wrongly_typed_api_field_is_a_422_under_that_field() {
    let (_dir, state, store) = state().await;
    let (_, token) = berth_store::api_tokens::create(&store, "routes-test", Default::default())
        .await
        .unwrap();
    let app = router(state);
    for (body, field) in [
        (r#"{"drain_secs": "5"}"#, "drain_secs"),
        (r#"{"restart_policy": "sometimes"}"#, "restart_policy"),
        (r#"{"cpus": true}"#, "cpus"),
        ("[]", "body"),
        ("{", "body"),
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/projects/demo/apps/web/deploy-settings")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(error["fields"][field].is_string(), "{body}: {error}");
    }
}

#[tokio::test]
async fn logged_in_pages_and_api_answers_are_never_cached_but_assets_are() {
    let (_dir, state, store) = state().await;
    let session = admin_session(&store).await;
    let (_, token) = berth_store::api_tokens::create(&store, "cache-test", Default::default())
        .await
        .unwrap();
    let app = router(state);
    let get = |uri: &str, header: (&str, String)| {
        Request::builder()
            .uri(uri)
            .header(header.0, header.1)
            .body(Body::empty())
            .unwrap()
    };
    let settings = app
        .clone()
        .oneshot(get(
            "/settings",
            ("cookie", format!("berth_session={}", session.token)),
        ))
        .await
        .unwrap();
    assert_eq!(settings.status(), StatusCode::OK);
    assert_eq!(settings.headers()["cache-control"], "no-store");
    let api = app
        .clone()
        .oneshot(get(
            "/api/v1/openapi.json",
            ("authorization", format!("Bearer {token}")),
        ))
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::OK);
    assert_eq!(api.headers()["cache-control"], "no-store");
    let asset = app
        .oneshot(get("/static/style.css", ("accept", "text/css".to_owned())))
        .await
        .unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
    assert_ne!(
        asset.headers().get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
}
