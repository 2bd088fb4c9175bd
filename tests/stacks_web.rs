//! Stacks through the dashboard's API and pages against real Docker.
//!
//! NEEDS THE STACKS RUNTIME: these were written with the web layer, before
//! `berth-deploy/src/stacks` had bodies; they pass only once it does (and
//! the runtime's engineer owns them from then on).

mod common;

use std::time::{Duration, Instant};

use common::{Api, TestApp};
use reqwest::Method;
use serde_json::{Value, json};

/// A compose file of the offline test image, with a secret-looking variable.
const COMPOSE: &str = "services:\n  web:\n    image: berth-test/web:latest\n    environment:\n      ADMIN_PASSWORD: ${ADMIN_PASSWORD}\n";

async fn wait_for_stack(app: &TestApp, api: &Api, path: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stack = api.get(app, path).await;
        if stack["status"] == status || Instant::now() > deadline {
            assert_eq!(stack["status"], status, "{stack}");
            return stack;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_dry_run_plans_without_installing_and_an_install_runs_until_uninstalled() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("stk").await;
    let api = Api::new(&app);
    let stacks = format!("/api/v1/projects/{project}/stacks");
    let body =
        json!({"name": "site", "compose": COMPOSE, "inputs": {"ADMIN_PASSWORD": "pw-not-in-json"}});

    let mut dry = body.clone();
    dry["dry_run"] = json!(true);
    let (status, plan) = api.post(&app, &stacks, dry).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["services"][0]["name"], "web");
    assert!(!plan.to_string().contains("pw-not-in-json"));
    assert_eq!(
        api.get(&app, &stacks).await,
        json!([]),
        "a dry run installs nothing"
    );

    let (status, stack) = api.post(&app, &stacks, body).await;
    assert_eq!(status, 201, "{stack}");
    assert_eq!(stack["status"], "installing");
    let detail = wait_for_stack(&app, &api, &format!("{stacks}/site"), "running").await;
    assert_eq!(detail["services"][0]["state"], "running");
    assert_eq!(detail["services"][0]["unpinned"], true);

    let page = app
        .get_html(&format!("/projects/{project}/stacks/site"))
        .await;
    assert!(page.contains(">unpinned</span>") && !page.contains("pw-not-in-json"));
    let dashboard = app.get_html("/").await;
    assert!(dashboard.contains(&format!("/projects/{project}/stacks/site")));

    let logs = api
        .get(&app, &format!("{stacks}/site/services/web/logs?lines=10"))
        .await;
    assert!(logs["lines"].is_array());

    let (status, _) = api
        .send(
            &app,
            Method::DELETE,
            &format!("{stacks}/site?volumes=keep"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(api.get(&app, &stacks).await, json!([]));
}

#[tokio::test]
async fn a_plan_with_errors_is_a_422_with_the_plan() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("stk").await;
    let api = Api::new(&app);
    let (status, plan) = api
        .post(
            &app,
            &format!("/api/v1/projects/{project}/stacks"),
            json!({"name": "bad", "compose": "services:\n  web:\n    image: nginx:1.27.3\n    volumes_from: [x]\n", "dry_run": true}),
        )
        .await;
    assert_eq!(status, 422, "{plan}");
    assert_eq!(plan["errors"][0]["line"], 4);
    assert!(plan["error"].is_string());
}

/// A plain compose file's HTTP port becomes a route through the edge (and
/// is published nowhere); an update of the stateless service rolls: the new
/// container serves before the old one goes, and no request fails meanwhile.
#[tokio::test]
async fn a_routed_service_answers_through_the_edge_and_an_update_rolls_without_a_failed_request() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("stk-edge").await;
    let api = Api::new(&app);
    let stacks = format!("/api/v1/projects/{project}/stacks");
    let compose = "services:\n  web:\n    image: berth-test/web:latest\n    ports:\n      - \"8080:8080\"\n    environment:\n      MARK: ${MARK:-one}\n";
    let (status, stack) = api
        .post(&app, &stacks, json!({"name": "site", "compose": compose}))
        .await;
    assert_eq!(status, 201, "{stack}");
    let detail = wait_for_stack(&app, &api, &format!("{stacks}/site"), "running").await;
    let host = format!("site.{project}.localhost");
    assert_eq!(detail["routes"][0]["host"], host, "{detail}");
    assert_eq!(detail["services"][0]["strategy"], "rolling");
    assert_eq!(detail["services"][0]["published"], json!([]));
    let container = format!("berth_{project}_site_web");
    // `docker port` must succeed: a missing container would print nothing too.
    assert_eq!(
        common::docker_out(&["port", &container]),
        "",
        "nothing is published on the host"
    );
    let page = app.get_via_edge(&host, "/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("berth-test-web"));

    // Load through the edge while the update rolls the service.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = app.edge_client(&[&host]);
    let url = app.edge_url(&host, "/");
    let load = tokio::spawn({
        let stop = stop.clone();
        async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }
    });
    let old_id = docker_id(&container);
    let (status, outcome) = api
        .send(
            &app,
            Method::PUT,
            &format!("{stacks}/site"),
            Some(json!({"inputs": {"MARK": "two"}})),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load.await.unwrap();
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["changed"], json!(["web"]));
    assert_ne!(docker_id(&container), old_id, "the service was replaced");
    assert!(ok > 20, "the load ran through the update ({ok} requests)");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
    println!("rolling update under load: {ok} requests, 0 failed");

    let (status, body) = api
        .send(
            &app,
            Method::DELETE,
            &format!("{stacks}/site?volumes=delete&confirm=site"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn docker_id(container: &str) -> String {
    common::docker_out(&["inspect", "-f", "{{.Id}}", container])
}

/// A stack service answers on the user's own domain instead of the host
/// berth picks (and asks the ACME CA for its certificate); an update can
/// take the domain away again. A bad domain changes nothing.
#[tokio::test]
async fn a_service_takes_the_users_own_domain_and_gives_it_back() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("stk-dom").await;
    let api = Api::new(&app);
    let stacks = format!("/api/v1/projects/{project}/stacks");
    let compose =
        "services:\n  web:\n    image: berth-test/web:latest\n    ports:\n      - \"8080\"\n";
    let (status, body) = api
        .post(
            &app,
            &stacks,
            json!({"name": "shop", "compose": compose, "domains": {"web": "not a domain"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("domain.web"), "{body}");
    assert_eq!(api.get(&app, &stacks).await, json!([]));

    let own = format!("shop-{project}.example.test");
    let (status, body) = api
        .post(
            &app,
            &stacks,
            json!({"name": "shop", "compose": compose, "domains": {"web": own}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let detail = wait_for_stack(&app, &api, &format!("{stacks}/shop"), "running").await;
    assert_eq!(detail["routes"][0]["host"], own.as_str(), "{detail}");
    assert_eq!(detail["routes"][0]["own_domain"], true);
    let page = app.get_via_edge(&own, "/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("berth-test-web"));
    // The generated host is not served meanwhile.
    let generated = format!("shop.{project}.localhost");
    assert_ne!(app.get_via_edge(&generated, "/").await.status(), 200);

    let (status, body) = api
        .send(
            &app,
            Method::PUT,
            &format!("{stacks}/shop"),
            Some(json!({"domains": {}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let detail = api.get(&app, &format!("{stacks}/shop")).await;
    assert_eq!(detail["routes"][0]["host"], generated.as_str(), "{detail}");
    assert_eq!(app.get_via_edge(&generated, "/").await.status(), 200);
    let (status, _) = api
        .send(
            &app,
            Method::DELETE,
            &format!("{stacks}/shop?volumes=delete&confirm=shop"),
            None,
        )
        .await;
    assert_eq!(status, 200);
}
