//! Stacks through the real router and a real SQLite file, with nothing
//! behind `Stacks` yet: every request here is refused by the web layer
//! before it reaches the stacks service, which is what these tests prove
//! (a request that got through would reach Docker at a socket where
//! nothing listens, or a service body still being written, and fail the
//! test). Installs that succeed are tested against real Docker in the
//! workspace's `tests/`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth_core::{Password, ProjectName, Username};
use berth_deploy::Runtime;
use berth_docker::DockerClient;
use berth_store::{Store, passwords, sessions, users};
use berth_web::{AppState, router};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

struct TestWeb {
    _dir: tempfile::TempDir,
    app: axum::Router,
    token: String,
    session: berth_core::NewSession,
}

async fn web() -> TestWeb {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let docker = DockerClient::connect(Some("unix:///nonexistent/berth-stacks.sock")).unwrap();
    let runtime = Runtime::new(store.clone(), docker).await.unwrap();
    let services = runtime.services();
    services
        .projects
        .create_project(&ProjectName::parse("demo").unwrap())
        .await
        .unwrap();
    let hash = passwords::hash(&Password::parse_new("a long password").unwrap())
        .await
        .unwrap();
    let user = users::create(&store, &Username::parse("admin").unwrap(), &hash)
        .await
        .unwrap();
    let session = sessions::create(&store, user.id).await.unwrap();
    let (_, token) = berth_store::api_tokens::create(&store, "stacks-test", Default::default())
        .await
        .unwrap();
    TestWeb {
        _dir: dir,
        app: router(AppState::new(services, None)),
        token,
        session,
    }
}

impl TestWeb {
    async fn api(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post_form(&self, uri: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut all = vec![("csrf", self.session.csrf_token.as_str())];
        all.extend_from_slice(fields);
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("cookie", format!("berth_session={}", self.session.token))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(serde_urlencoded::to_string(&all).unwrap()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn get_page(&self, uri: &str) -> (StatusCode, String) {
        let request = Request::builder()
            .uri(uri)
            .header("cookie", format!("berth_session={}", self.session.token))
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

const STACKS: &str = "/api/v1/projects/demo/stacks";

#[tokio::test]
async fn an_install_needs_exactly_one_source() {
    let web = web().await;
    for body in [
        serde_json::json!({"name": "tea"}),
        serde_json::json!({"name": "tea", "template": "gitea", "compose": "services: {}"}),
        serde_json::json!({"name": "tea", "template": "gitea", "git": {"url": "https://example.com/x.git"}}),
    ] {
        let (status, error) = web.api(Method::POST, STACKS, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(error["fields"]["source"].is_string(), "{body}: {error}");
    }
}

#[tokio::test]
async fn a_bad_name_an_unknown_template_or_an_empty_file_is_a_422_under_its_field() {
    let web = web().await;
    for (body, field) in [
        (
            serde_json::json!({"name": "Bad_Name", "template": "gitea"}),
            "name",
        ),
        (
            serde_json::json!({"name": "tea", "template": "no-such"}),
            "template",
        ),
        (
            serde_json::json!({"name": "tea", "compose": "  "}),
            "compose",
        ),
        (
            serde_json::json!({"name": "tea", "git": {"url": "--upload-pack=x"}}),
            "git_url",
        ),
        (
            serde_json::json!({"name": "tea", "template": "gitea", "dry_run": "yes"}),
            "dry_run",
        ),
        (
            serde_json::json!({"name": "tea", "template": "gitea", "publish": [{"service": "db", "port": 0}]}),
            "publish",
        ),
    ] {
        let (status, error) = web.api(Method::POST, STACKS, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(error["fields"][field].is_string(), "{body}: {error}");
    }
}

#[tokio::test]
async fn an_install_with_dangerous_settings_needs_them_confirmed() {
    let web = web().await;
    let compose = "services:\n  web:\n    image: nginx:1.27.3\n    privileged: true\n";
    let (status, error) = web
        .api(
            Method::POST,
            STACKS,
            Some(serde_json::json!({"name": "tea", "compose": compose})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["fields"]["confirm_dangerous"]
            .as_str()
            .is_some_and(|m| m.contains("privileged")),
        "{error}"
    );
}

#[tokio::test]
async fn uninstall_wants_the_volumes_choice_and_the_name_to_delete_them() {
    let web = web().await;
    let (status, error) = web
        .api(Method::DELETE, &format!("{STACKS}/tea"), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error["fields"]["volumes"].is_string(), "{error}");
    let (status, error) = web
        .api(
            Method::DELETE,
            &format!("{STACKS}/tea?volumes=sometimes"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    for uri in ["?volumes=delete", "?volumes=delete&confirm=other"] {
        let (status, error) = web
            .api(Method::DELETE, &format!("{STACKS}/tea{uri}"), None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
        assert!(error["fields"]["confirm"].is_string(), "{uri}: {error}");
    }
}

#[tokio::test]
async fn an_update_takes_at_most_one_source_and_bad_names_are_not_found() {
    let web = web().await;
    let (status, error) = web
        .api(
            Method::PUT,
            &format!("{STACKS}/tea"),
            Some(serde_json::json!({"compose": "services: {}", "template": "gitea"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error["fields"]["source"].is_string(), "{error}");
    let (status, _) = web
        .api(Method::GET, &format!("{STACKS}/Bad_Name"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Refused for the service's name: "tea" does not exist either, so a
    // request that got past the check would be "stack not found".
    let (status, error) = web
        .api(
            Method::GET,
            &format!("{STACKS}/tea/services/..%2F/logs"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"], "service not found");
    let (status, html) = web
        .get_page("/projects/demo/stacks/tea/services/a%2Fb/logs")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("service not found"), "{html}");
}

#[tokio::test]
async fn the_templates_are_listed_with_their_metadata() {
    let web = web().await;
    let (status, templates) = web.api(Method::GET, "/api/v1/templates", None).await;
    assert_eq!(status, StatusCode::OK);
    let gitea = templates
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "gitea")
        .unwrap();
    assert_eq!(gitea["category"], "development");
    assert!(gitea["version"].is_string());
}

#[tokio::test]
async fn the_catalogue_searches_and_filters_on_the_server() {
    let web = web().await;
    let (status, html) = web.get_page("/catalogue?q=git&project=demo").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"template-gitea\""), "{html}");
    assert!(html.contains("/projects/demo/install/gitea"));
    assert!(!html.contains("id=\"template-wordpress\""));
    let (_, html) = web
        .get_page("/projects/demo/catalogue?category=development")
        .await;
    assert!(html.contains("id=\"template-gitea\""));
    assert!(!html.contains("id=\"template-jellyfin\""));
    let (status, _) = web.get_page("/projects/nope/catalogue").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_refused_install_form_comes_back_filled_in_without_its_secrets() {
    let web = web().await;
    let compose = "services:\n  web:\n    image: nginx:1.27.3\n    environment:\n      ADMIN_PASSWORD: ${ADMIN_PASSWORD}\n      TITLE: ${TITLE}\n";
    let (status, html) = web
        .post_form(
            "/projects/demo/install",
            &[
                ("name", "Bad_Name"),
                ("source", "compose"),
                ("compose", compose),
                ("input.ADMIN_PASSWORD", "hunter2-never-shown"),
                ("input.TITLE", "My site"),
                ("action", "install"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("value=\"Bad_Name\""), "{html}");
    assert!(html.contains("value=\"My site\""));
    assert!(html.contains("nginx:1.27.3"), "the plan is shown");
    assert!(
        !html.contains("hunter2"),
        "a secret went back into the page"
    );
    assert!(html.contains("enter it again"));
}

#[tokio::test]
async fn an_unknown_template_has_no_install_form() {
    let web = web().await;
    let (status, _) = web.get_page("/projects/demo/install/no-such").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, html) = web.get_page("/projects/demo/install").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"compose\""));
}

#[tokio::test]
async fn a_stack_name_that_cannot_exist_is_not_found_on_the_pages() {
    let web = web().await;
    // Refusing a wrongly typed confirmation re-shows the stack page, which
    // needs the stacks service: that case waits for the runtime's tests.
    let (status, _) = web
        .post_form(
            "/projects/demo/stacks/Bad_Name/uninstall",
            &[("confirm", "x")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = web
        .get_page("/projects/demo/stacks/tea/services/a%2Fb/logs")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
