//! The JSON API with a token from `berth token create`, against the real daemon.

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, docker_objects_of, fetch_text, started_at};
use serde_json::{Value, json};

struct Api<'a> {
    app: &'a TestApp,
    token: String,
}

impl Api<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.app.api(&self.token, method, path, body).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> u16 {
        self.send(reqwest::Method::DELETE, path, None).await.0
    }
}

#[tokio::test]
async fn scripts_drive_projects_and_apps_through_the_api() {
    let mut app = TestApp::spawn().await;
    let out = app.cli(&["token", "create", "--name", "ci"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("berth_"), "{token}");

    // No token, no entry.
    let response = app
        .http
        .get(app.at("/api/v1/projects"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");

    let project = app.unique_project("api");
    let api = Api { app: &app, token };
    let (status, engine) = api.get("/api/v1/engine").await;
    assert_eq!(status, 200);
    assert_eq!(engine["available"], true, "{engine}");
    assert!(engine["version"].is_string());

    let (status, body) = api
        .post("/api/v1/projects", json!({ "name": "Not Valid" }))
        .await;
    assert_eq!(status, 422);
    assert!(
        body["fields"]["name"]
            .as_str()
            .unwrap()
            .contains("lowercase"),
        "{body}"
    );
    let (status, body) = api.post("/api/v1/projects", json!("not an object")).await;
    assert_eq!(status, 422, "{body}");

    let (status, body) = api
        .post("/api/v1/projects", json!({ "name": project }))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = api
        .post("/api/v1/projects", json!({ "name": project }))
        .await;
    assert_eq!(status, 409);

    let apps = format!("/api/v1/projects/{project}/apps");
    let (status, body) = api
        .post(
            &apps,
            json!({ "name": "api", "image": "berth-test/web", "port": 8080 }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["image_pinned"], false, "no tag means latest: flagged");
    // The first deployment exists when the answer comes, with its number and where to follow it.
    assert_eq!(body["deployment"]["number"], 1, "{body}");
    assert_eq!(body["deployment"]["trigger"], "create", "{body}");
    let first = body["deployment"]["url"].as_str().expect("deployment url");
    let (status, dep) = api.get(first).await;
    assert_eq!(status, 200, "{dep}");
    assert_eq!(dep["number"], 1);

    let path = format!("{apps}/api");
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = loop {
        let (_, body) = api.get(&path).await;
        if body["status"] == "running" {
            break body;
        }
        assert!(Instant::now() < deadline, "never running: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let address = running["local_address"]
        .as_str()
        .expect("address")
        .to_owned();
    assert!(fetch_text(&address).await.contains("berth-test-web"));

    let (containers, _) = docker_objects_of(&project);
    assert_eq!(containers.len(), 1);
    let started_before = started_at(&containers[0]);
    let (status, body) = api.post(&format!("{path}/restart"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "running");
    // The container really started again (the answer comes after the restart).
    assert_ne!(
        started_at(&containers[0]),
        started_before,
        "restart was a no-op"
    );

    // Eight requests for a missing page: busybox httpd logs each as
    // `[client]: response:404`, and nothing else asks for a missing page.
    let address = api.get(&path).await.1["local_address"]
        .as_str()
        .expect("address after restart")
        .to_owned();
    for _ in 0..8 {
        let response = reqwest::get(format!("{address}/missing-{}", common::hex_id()))
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
    let is_404 = |line: &Value| line.as_str().unwrap().trim_end().ends_with("response:404");
    let deadline = Instant::now() + Duration::from_secs(20);
    let all = loop {
        let (status, body) = api.get(&format!("{path}/logs?lines=100")).await;
        assert_eq!(status, 200, "{body}");
        let lines = body["lines"].as_array().unwrap().clone();
        if lines.iter().filter(|l| is_404(l)).count() == 8 {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "the 404s never reached the logs: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(all.len() > 8, "the earlier answers are there too: {all:?}");
    // `lines` bounds the tail: the last five, all of them our 404s.
    let (status, body) = api.get(&format!("{path}/logs?lines=5")).await;
    assert_eq!(status, 200);
    let tail = body["lines"].as_array().unwrap();
    assert_eq!(tail.len(), 5, "{body}");
    assert!(tail.iter().all(is_404), "{body}");
    assert_eq!(tail[..], all[all.len() - 5..]);

    let (status, body) = api.get("/api/v1/apps").await;
    assert_eq!(status, 200);
    assert!(
        body.as_array()
            .unwrap()
            .iter()
            .any(|a| a["project"] == project.as_str())
    );

    assert_eq!(
        api.delete(&format!("/api/v1/projects/{project}")).await,
        409,
        "not empty yet"
    );
    assert_eq!(
        api.delete(&path).await,
        200,
        "deleting an app answers the volumes it kept"
    );
    assert_eq!(api.get(&path).await.0, 404);
    assert_eq!(
        api.delete(&format!("/api/v1/projects/{project}")).await,
        204
    );
    assert_eq!(docker_objects_of(&project), (vec![], vec![]));

    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/v1/projects/{project}/apps"]["post"].is_object());
}

#[tokio::test]
async fn tokens_are_listed_without_their_secret_and_a_revoked_one_gets_401() {
    let app = TestApp::spawn().await;
    let create = |name: &str| {
        let out = app.cli(&["token", "create", "--name", name], None);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let ci = create("ci");
    let deploy_bot = create("deploy-bot");
    let status = async |token: &str| {
        app.api(token, reqwest::Method::GET, "/api/v1/projects", None)
            .await
            .0
    };
    assert_eq!(status(&ci).await, 200);
    assert_eq!(status(&deploy_bot).await, 200);

    let out = app.cli(&["token", "list"], None);
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(listed.contains("ci\t"), "{listed}");
    assert!(listed.contains("deploy-bot\t"), "{listed}");
    assert!(listed.contains("last used"), "{listed}");
    assert!(
        !listed.contains(&ci) && !listed.contains(&deploy_bot),
        "{listed}"
    );

    let out = app.cli(&["token", "revoke", "--name", "ci"], None);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(status(&ci).await, 401, "a revoked token is refused");
    assert_eq!(status(&deploy_bot).await, 200, "the others keep working");
    let out = app.cli(&["token", "revoke", "--name", "ci"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no API token named ci"));
}

#[tokio::test]
async fn a_read_only_token_reads_but_changes_nothing_and_an_expiry_is_listed() {
    let app = TestApp::spawn().await;
    let out = app.cli(
        &[
            "token",
            "create",
            "--name",
            "monitoring",
            "--read-only",
            "--expires-in-days",
            "30",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let reader = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = app.cli(&["token", "create", "--name", "ci"], None);
    let writer = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let (status, _) = app
        .api(&reader, reqwest::Method::GET, "/api/v1/projects", None)
        .await;
    assert_eq!(status, 200, "a read-only token reads");
    let response = app
        .http
        .head(app.at("/api/v1/projects"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "HEAD is a read");
    for method in [reqwest::Method::POST, reqwest::Method::DELETE] {
        let (status, body) = app
            .api(
                &reader,
                method.clone(),
                "/api/v1/projects",
                Some(json!({"name": "fromreader"})),
            )
            .await;
        assert_eq!(status, 403, "{method}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("read-only"),
            "{body}"
        );
    }
    let (_, projects) = app
        .api(&writer, reqwest::Method::GET, "/api/v1/projects", None)
        .await;
    assert!(
        !projects.to_string().contains("fromreader"),
        "nothing was made"
    );
    // A token without the flag may still write.
    let (status, body) = app
        .api(
            &writer,
            reqwest::Method::POST,
            "/api/v1/projects",
            Some(json!({"name": "fromwriter"})),
        )
        .await;
    assert!(status < 300, "{status} {body}");

    let out = app.cli(&["token", "list"], None);
    let listed = String::from_utf8(out.stdout).unwrap();
    let line = |name: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("{name} in {listed}"))
            .to_owned()
    };
    assert!(line("monitoring").contains("read-only"), "{listed}");
    assert!(line("monitoring").contains("expires 20"), "{listed}");
    assert!(line("ci").contains("never expires"), "{listed}");
    assert!(line("ci").contains("read-write"), "{listed}");

    let out = app.cli(
        &["token", "create", "--name", "x", "--expires-in-days", "0"],
        None,
    );
    assert!(!out.status.success(), "zero days is refused");
}

#[tokio::test]
async fn the_tokens_page_makes_a_token_once_lists_its_last_use_and_revokes_it() {
    let app = TestApp::spawn().await;
    app.setup_admin().await;
    let response = app
        .post_form(
            "/tokens",
            "/tokens",
            &[("name", "ci"), ("expires_in_days", "7"), ("read_only", "1")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let start = html
        .find("id=\"new-token\">")
        .expect("the new token is shown")
        + 15;
    let token = html[start..start + html[start..].find('<').unwrap()].to_owned();
    assert!(token.starts_with("berth_"), "{token}");

    let (status, _) = app
        .api(&token, reqwest::Method::GET, "/api/v1/projects", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api(
            &token,
            reqwest::Method::POST,
            "/api/v1/projects",
            Some(json!({"name": "nope"})),
        )
        .await;
    assert_eq!(
        status, 403,
        "the page's read-only box made a read-only token"
    );

    let page = app.get_html("/tokens").await;
    assert!(!page.contains(&token), "the token is shown once only");
    let row_start = page.find("data-name=\"ci\"").expect("the token is listed");
    let row = &page[row_start..row_start + page[row_start..].find("</tr>").unwrap()];
    assert!(row.contains("read-only"), "{row}");
    assert!(!row.contains(">never<"), "its use is shown: {row}");
    assert!(row.contains("Revoke"), "{row}");

    let id = {
        let tag = page[..row_start].rfind("id=\"token-").unwrap() + 10;
        page[tag..tag + page[tag..].find('"').unwrap()].to_owned()
    };
    let response = app
        .post_form("/tokens", &format!("/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(response.status(), 303);
    let (status, _) = app
        .api(&token, reqwest::Method::GET, "/api/v1/projects", None)
        .await;
    assert_eq!(status, 401, "a revoked token is refused");
    assert!(!app.get_html("/tokens").await.contains("data-name=\"ci\""));

    // A bad expiry is reported at its field and makes nothing.
    let response = app
        .post_form(
            "/tokens",
            "/tokens",
            &[("name", "later"), ("expires_in_days", "0")],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"e-expires_in_days\""), "{html}");
    assert!(!html.contains("id=\"new-token\""));
}
