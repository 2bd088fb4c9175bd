//! Deployments against the real daemon and the real edge: builds from a
//! local git repository, zero-downtime switches, a failing health check that
//! leaves the old version serving, rollback, kill -9 in the middle of a
//! deploy, the queue, and webhooks with wrong signatures.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::git::{file_url, git, git_repo, head};
use common::{Api, TestApp, docker_objects_of, location};
use serde_json::{Value, json};

/// A running berth with a project whose app `web` (berth-test/web) runs as deployment 1.
async fn running_web(hint: &str) -> (TestApp, String, Api) {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_web_app(hint).await;
    app.wait_for_status(&project, "web", "running").await;
    let api = Api::new(&app);
    let first = api.wait_for_end(&app, &project, 1).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    (app, project, api)
}

/// What the edge answers for the app's default host.
async fn via_edge(app: &TestApp, project: &str) -> (u16, String) {
    let response = app
        .get_via_edge(&format!("web.{project}.localhost"), "/")
        .await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Commits a Dockerfile (FROM the test image, serving `page`) to the repo's `main`.
fn commit_page(repo: &Path, page: &str) -> String {
    commit_site(repo, page, "")
}

/// Like `commit_page`, with `extra` instructions at the end of the Dockerfile.
fn commit_site(repo: &Path, page: &str, extra: &str) -> String {
    std::fs::create_dir_all(repo.join("site")).unwrap();
    std::fs::write(
        repo.join("site/Dockerfile"),
        format!("FROM berth-test/web:latest\nARG GREETING=unset\nCOPY index.html /www/index.html\nLABEL berth.test.greeting=$GREETING\n{extra}"),
    )
    .unwrap();
    std::fs::write(repo.join("site/index.html"), page).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", page]);
    head(repo)
}

/// Deploy settings that build from `url`'s branch `main`, in its folder
/// `site`, with the settings in `more` on top.
fn git_settings(url: &str, more: Value) -> Value {
    let mut settings = json!({
        "source": "git",
        "git_url": url,
        "git_branch": "main",
        "git_subdir": "site",
    });
    let more = more
        .as_object()
        .expect("more settings are an object")
        .clone();
    settings.as_object_mut().unwrap().extend(more);
    settings
}

fn containers_of(project: &str) -> Vec<(String, String)> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=berth.project={project}"),
            "--format",
            "{{.Names}} {{.Label \"berth.deployment\"}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

fn image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test]
async fn a_local_git_repository_is_built_deployed_and_rolled_back_without_leftovers() {
    let (app, project, api) = running_web("git").await;
    let repo = git_repo();
    let v1 = format!("version one {}", common::hex_id());
    let commit1 = commit_page(repo.path(), &v1);

    api.settings(
        &app,
        &project,
        git_settings(
            &file_url(repo.path()),
            json!({
                "health_path": "/",
                "health_interval_ms": 100,
                "drain_secs": 1,
                "memory_mb": 64,
                "cpus": 0.5,
                "restart_policy": "on-failure",
            }),
        ),
    )
    .await;
    // A build-time variable reaches the build as a build arg.
    let (status, body) = api
        .post(
            &app,
            &format!("/api/v1/projects/{project}/apps/web/env"),
            json!({"vars": [{"key": "GREETING", "value": "hello build", "build": true, "runtime": false}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let number = api.deploy(&app, &project).await;
    assert_eq!(number, 2);
    let dep = api.wait_for_end(&app, &project, 2).await;
    assert_eq!(dep["status"], "succeeded", "{dep}");
    assert_eq!(dep["commit"], commit1.as_str());
    assert_eq!(dep["image"], format!("berth-build/{project}-web:2"));
    let log = common::deployment_log(&dep);
    assert!(log.contains("checked out commit"), "{log}");
    assert!(
        log.contains("COPY index.html"),
        "the build output is in the log: {log}"
    );
    assert!(log.contains("health check passed"), "{log}");
    assert!(log.contains("1 build args: GREETING"), "{log}");
    let label = Command::new("docker")
        .args([
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"berth.test.greeting\"}}",
            &format!("berth-build/{project}-web:2"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "hello build");
    assert_eq!(via_edge(&app, &project).await, (200, v1.clone()));

    // One container, named after the deployment, with its limits and restart policy.
    assert_eq!(
        containers_of(&project),
        vec![(format!("berth_{project}_web_2"), "2".to_owned())]
    );
    let inspect = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}",
            &format!("berth_{project}_web_2"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        "67108864 500000000 on-failure"
    );
    // The dashboard shows them.
    let page = app
        .get_html(&format!("/projects/{project}/apps/web/deployments"))
        .await;
    assert!(
        page.contains("64 MB") && page.contains("0.5 CPUs") && page.contains("on-failure"),
        "{page}"
    );

    // A second commit, then a rollback to the first build.
    let v2 = format!("version two {}", common::hex_id());
    commit_page(repo.path(), &v2);
    assert_eq!(api.deploy(&app, &project).await, 3);
    assert_eq!(
        api.wait_for_end(&app, &project, 3).await["status"],
        "succeeded"
    );
    assert_eq!(via_edge(&app, &project).await, (200, v2));

    let (status, rollback) = api
        .post(
            &app,
            &format!("/api/v1/projects/{project}/apps/web/deployments/2/rollback"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{rollback}");
    assert_eq!(rollback["number"], 4);
    let dep = api.wait_for_end(&app, &project, 4).await;
    assert_eq!(dep["status"], "succeeded", "{dep}");
    assert_eq!(dep["rollback_of"], 2);
    assert_eq!(via_edge(&app, &project).await, (200, v1));
    assert_eq!(
        containers_of(&project),
        vec![(format!("berth_{project}_web_4"), "4".to_owned())]
    );

    // Deleting the app removes the images berth built for it.
    assert!(image_exists(&format!("berth-build/{project}-web:2")));
    assert_eq!(api.delete_app(&app, &project, "web").await, 200);
    assert!(!image_exists(&format!("berth-build/{project}-web:2")));
    assert!(!image_exists(&format!("berth-build/{project}-web:3")));
    assert_eq!(docker_objects_of(&project), (vec![], vec![]));
}

/// With no HTTP check set, an image's own HEALTHCHECK decides: a healthy
/// image goes live, an unhealthy one leaves the old version serving.
#[tokio::test]
async fn the_images_own_healthcheck_decides_when_no_http_check_is_set() {
    let (app, project, api) = running_web("imagecheck").await;
    let repo = git_repo();
    let healthy = format!("healthy image {}", common::hex_id());
    commit_site(
        repo.path(),
        &healthy,
        "HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD [\"/busybox\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8080/\"]\n",
    );
    api.settings(
        &app,
        &project,
        git_settings(
            &file_url(repo.path()),
            json!({
                "health_path": "",
                "drain_secs": 1,
            }),
        ),
    )
    .await;
    let number = api.deploy(&app, &project).await;
    let dep = api.wait_for_end(&app, &project, number).await;
    assert_eq!(dep["status"], "succeeded", "{dep}");
    let log = dep["log"].to_string();
    assert!(log.contains("the image's HEALTHCHECK"), "{log}");
    assert!(log.contains("health check passed: healthy"), "{log}");
    assert_eq!(via_edge(&app, &project).await, (200, healthy.clone()));

    commit_site(
        repo.path(),
        "never served",
        "HEALTHCHECK --interval=1s --timeout=2s --retries=1 CMD [\"/busybox\", \"false\"]\n",
    );
    let number = api.deploy(&app, &project).await;
    let dep = api.wait_for_end(&app, &project, number).await;
    assert_eq!(dep["status"], "failed", "{dep}");
    let reason = dep["reason"].as_str().unwrap();
    assert!(reason.contains("HEALTHCHECK says unhealthy"), "{reason}");
    assert_eq!(via_edge(&app, &project).await, (200, healthy));
}

/// The Docker ID and `State.StartedAt` of a container: both stay the same
/// only if it was neither replaced nor stopped and started again.
fn id_and_started_at(container: &str) -> String {
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.Id}} {{.State.StartedAt}}",
            container,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker inspect {container}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_keeps_the_old_version_serving() {
    let (app, project, api) = running_web("health").await;
    let (status, before) = via_edge(&app, &project).await;
    assert_eq!(status, 200);
    let old = format!("berth_{project}_web_1");
    let old_identity = id_and_started_at(&old);
    // A slow check keeps the new container up for over a second, while the
    // edge is probed.
    api.settings(
        &app,
        &project,
        json!({"health_path": "/missing", "health_interval_ms": 500, "health_retries": 3}),
    )
    .await;

    // Requests go to the edge the whole time the deployment runs.
    let host = format!("web.{project}.localhost");
    let client = app.edge_client(&[&host]);
    let url = app.edge_url(&host, "/");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let probe = tokio::spawn({
        let stop = stop.clone();
        let sent = sent.clone();
        async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let answer = match client.get(&url).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.text().await {
                            Ok(body) => (status, body),
                            Err(err) => (status, format!("body error: {err}")),
                        }
                    }
                    Err(err) => (0, format!("request error: {err}")),
                };
                answers.push(answer);
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        }
    });

    let number = api.deploy(&app, &project).await;
    let path = format!("/api/v1/projects/{project}/apps/web/deployments/{number}");
    let deadline = Instant::now() + Duration::from_secs(120);
    // Probes answered between the first and the last sight of the new container.
    let mut while_new_ran: Option<(usize, usize)> = None;
    let dep = loop {
        let new_runs = tokio::task::spawn_blocking({
            let project = project.clone();
            move || {
                containers_of(&project)
                    .iter()
                    .any(|(_, n)| *n == number.to_string())
            }
        })
        .await
        .unwrap();
        if new_runs {
            let now = sent.load(std::sync::atomic::Ordering::SeqCst);
            while_new_ran = Some((while_new_ran.map_or(now, |(first, _)| first), now));
        }
        let (status, dep) = api.send(&app, reqwest::Method::GET, &path, None).await;
        assert!(status == 200 || status == 404, "GET {path}: {status} {dep}");
        if status == 200 && !matches!(dep["status"].as_str(), Some("queued" | "running")) {
            break dep;
        }
        assert!(
            Instant::now() < deadline,
            "deployment #{number} never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = probe.await.unwrap();
    let (first, last) = while_new_ran.expect("the new container was never seen running");
    assert!(
        last - first >= 5,
        "only {} probes while the new container ran",
        last - first
    );
    assert!(
        answers.len() >= 20,
        "too few probes during the deploy: {}",
        answers.len()
    );
    let bad: Vec<_> = answers
        .iter()
        .filter(|answer| **answer != (200, before.clone()))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} requests during the failing deploy were not the old version: {:?}",
        bad.len(),
        answers.len(),
        &bad[..bad.len().min(5)]
    );
    // The very same container served throughout: never stopped, never replaced.
    assert_eq!(id_and_started_at(&old), old_identity);

    assert_eq!(dep["status"], "failed", "{dep}");
    let reason = dep["reason"].as_str().unwrap();
    assert!(
        reason.contains("GET /missing failed 3 times (last: answered 404)"),
        "{reason}"
    );
    assert!(
        reason.contains("last lines of the new container"),
        "{reason}"
    );
    // The old version never stopped serving, and the new container is gone.
    assert_eq!(via_edge(&app, &project).await, (200, before));
    assert_eq!(
        containers_of(&project),
        vec![(format!("berth_{project}_web_1"), "1".to_owned())]
    );
    let html = app.wait_for_status(&project, "web", "running").await;
    assert!(
        html.contains(&format!("berth_{project}_web_1")) || common::app_address(&html).is_some()
    );
    let page = app
        .get_html(&format!(
            "/projects/{project}/apps/web/deployments/{number}"
        ))
        .await;
    assert!(page.contains("answered 404"), "the page says why");
}

/// Starts a deployment that a long start period keeps in its health check,
/// and waits until its container exists. Returns its number.
async fn deploy_held_in_health_check(app: &TestApp, project: &str, api: &Api) -> i64 {
    api.settings(app, project, json!({"health_start_secs": 60}))
        .await;
    let number = api.deploy(app, project).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !containers_of(project)
        .iter()
        .any(|(_, n)| *n == number.to_string())
    {
        assert!(
            Instant::now() < deadline,
            "the new container never appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    number
}

/// A deployment queued behind a running one survives a `kill -9` of berth:
/// after the restart the interrupted one is failed and the queued one runs.
#[tokio::test]
async fn a_queued_deployment_resumes_after_berth_is_killed() {
    let (app, project, api) = running_web("resume").await;
    let running = deploy_held_in_health_check(&app, &project, &api).await;
    // The next one waits behind it, with a short check of its own.
    api.settings(&app, &project, json!({"health_start_secs": 1}))
        .await;
    let queued = api.deploy(&app, &project).await;
    let path = format!("/api/v1/projects/{project}/apps/web/deployments/{queued}");
    assert_eq!(api.get(&app, &path).await["status"], "queued");

    let token = api.token.clone();
    let app = app.restart_on_same_data_after(|| {}).await;
    let api = Api { token };
    let interrupted = api.wait_for_end(&app, &project, running).await;
    assert_eq!(interrupted["status"], "failed", "{interrupted}");
    let resumed = api.wait_for_end(&app, &project, queued).await;
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    assert!(
        resumed["log"]
            .to_string()
            .contains("berth restarted; the deployment resumes"),
        "{resumed}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_of(&project)
        != vec![(format!("berth_{project}_web_{queued}"), queued.to_string())]
    {
        assert!(Instant::now() < deadline, "{:?}", containers_of(&project));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn killing_berth_mid_deploy_leaves_exactly_one_version_serving_after_restart() {
    let (app, project, api) = running_web("kill").await;
    let (_, before) = via_edge(&app, &project).await;
    let number = deploy_held_in_health_check(&app, &project, &api).await;
    let token = api.token.clone();
    let app = app.restart_on_same_data_after(|| {}).await;
    let api = Api { token };
    let dep = api.wait_for_end(&app, &project, number).await;
    assert_eq!(dep["status"], "failed", "{dep}");
    assert!(
        dep["reason"].as_str().unwrap().contains("interrupted"),
        "{dep}"
    );
    // Reconcile removed the half-deployed container; the old one serves.
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_of(&project).len() != 1 {
        assert!(Instant::now() < deadline, "{:?}", containers_of(&project));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        containers_of(&project),
        vec![(format!("berth_{project}_web_1"), "1".to_owned())]
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = via_edge(&app, &project).await;
        if got == (200, before.clone()) {
            break;
        }
        assert!(Instant::now() < deadline, "the edge answers {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the next deployment works.
    api.settings(&app, &project, json!({"health_start_secs": 1}))
        .await;
    let next = api.deploy(&app, &project).await;
    assert_eq!(
        api.wait_for_end(&app, &project, next).await["status"],
        "succeeded"
    );
    assert_eq!(containers_of(&project).len(), 1);
}

#[tokio::test]
async fn a_webhook_with_a_wrong_signature_is_refused_and_deploys_nothing() {
    let (app, project, api) = running_web("hook").await;
    let page = app
        .get_html(&format!("/projects/{project}/apps/web/deployments"))
        .await;
    let marker = "id=\"webhook-url\">";
    let start = page.find(marker).unwrap() + marker.len();
    let url = &page[start..start + page[start..].find('<').unwrap()];
    let secret = url.rsplit('/').next().unwrap().to_owned();
    let client = reqwest::Client::new();
    let body = r#"{"ref":"refs/heads/main"}"#;
    let hook = app.at(&format!("/hooks/{project}/web"));

    let wrong = format!(
        "sha256={}",
        berth_deploy::hmac_hex("not the secret", body.as_bytes())
    );
    let response = client
        .post(&hook)
        .header("x-github-event", "push")
        .header("x-hub-signature-256", wrong)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .post(format!("{hook}/not-the-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .post(&hook)
        .header("x-gitlab-token", "nope")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let list = api
        .get(
            &app,
            &format!("/api/v1/projects/{project}/apps/web/deployments"),
        )
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "nothing was deployed: {list}"
    );

    // The right signature deploys; so does the secret URL.
    let right = format!(
        "sha256={}",
        berth_deploy::hmac_hex(&secret, body.as_bytes())
    );
    let delivery = common::hex_id();
    let push = || {
        client
            .post(&hook)
            .header("x-github-event", "push")
            .header("x-github-delivery", &delivery)
            .header("x-hub-signature-256", &right)
            .body(body)
    };
    let response = push().send().await.unwrap();
    assert_eq!(response.status(), 202);
    let queued: Value = response.json().await.unwrap();
    let dep = api
        .wait_for_end(&app, &project, queued["deployment"].as_i64().unwrap())
        .await;
    assert_eq!(dep["status"], "succeeded", "{dep}");
    assert_eq!(dep["trigger"], "webhook (github)");
    // The same signed delivery sent again is answered and deploys nothing.
    let response = push().send().await.unwrap();
    assert_eq!(response.status(), 200);
    let replay: Value = response.json().await.unwrap();
    assert_eq!(replay["result"], "ignored", "{replay}");
    // Also after a restart: the ids handled are kept in the database.
    let app = app.restart_on_same_data_after(|| {}).await;
    let hook = app.at(&format!("/hooks/{project}/web"));
    let response = client
        .post(&hook)
        .header("x-github-event", "push")
        .header("x-github-delivery", &delivery)
        .header("x-hub-signature-256", &right)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a replay after a restart");
    let replay: Value = response.json().await.unwrap();
    assert_eq!(replay["result"], "ignored", "{replay}");
    let list = api
        .get(
            &app,
            &format!("/api/v1/projects/{project}/apps/web/deployments"),
        )
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "no new deployment: {list}"
    );
    let response = client
        .post(format!("{hook}/{secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn one_deploy_runs_at_a_time_a_newer_request_replaces_a_queued_one_and_a_running_one_can_be_cancelled()
 {
    let (app, project, api) = running_web("queue").await;
    api.settings(&app, &project, json!({"health_start_secs": 60}))
        .await;
    let running = api.deploy(&app, &project).await;
    let queued = api.deploy(&app, &project).await;
    let newest = api.deploy(&app, &project).await;
    let replaced = api.wait_for_end(&app, &project, queued).await;
    assert_eq!(replaced["status"], "cancelled");
    assert_eq!(
        replaced["reason"],
        format!("replaced by deployment #{newest}")
    );
    let list = api
        .get(
            &app,
            &format!("/api/v1/projects/{project}/apps/web/deployments"),
        )
        .await;
    let status_of = |n: i64| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["number"] == n)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of(running), "running");
    assert_eq!(status_of(newest), "queued");

    // Cancel both from the dashboard: the old version keeps serving.
    let base = format!("/projects/{project}/apps/web/deployments");
    let response = app
        .post_form(&base, &format!("{base}/{newest}/cancel"), &[])
        .await;
    assert_eq!(response.status(), 303);
    let response = app
        .post_form(&base, &format!("{base}/{running}/cancel"), &[])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{base}/{running}"));
    assert_eq!(
        api.wait_for_end(&app, &project, running).await["status"],
        "cancelled"
    );
    assert_eq!(
        api.wait_for_end(&app, &project, newest).await["status"],
        "cancelled"
    );
    assert_eq!(
        containers_of(&project),
        vec![(format!("berth_{project}_web_1"), "1".to_owned())]
    );
    assert_eq!(via_edge(&app, &project).await.0, 200);
}

#[tokio::test]
async fn an_app_created_from_a_git_repository_on_the_project_page_builds_it_with_the_settings_of_switching_later()
 {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project("gitnew").await;
    let repo = git_repo();
    let page = format!("from the new-app form {}", common::hex_id());
    let commit = commit_page(repo.path(), &page);
    let repo_path = repo.path().display().to_string();

    // Without a repository: the error sits next to the field, what was typed stays.
    let form_page = format!("/projects/{project}");
    let action = format!("/projects/{project}/apps");
    let mut fields = vec![
        ("name", "web"),
        ("source", "git"),
        ("image", ""),
        ("port", "8080"),
        ("command", ""),
        ("git_url", ""),
        ("git_branch", "main"),
        ("git_subdir", "site"),
        ("dockerfile", ""),
    ];
    let response = app.post_form(&form_page, &action, &fields).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"e-git_url\""), "{html}");
    assert!(html.contains("value=\"site\""), "{html}");
    assert!(
        html.contains("name=\"source\" value=\"git\" checked"),
        "{html}"
    );

    // A plain path on the server; no image needed.
    fields[5] = ("git_url", repo_path.as_str());
    let response = app.post_form(&form_page, &action, &fields).await;
    assert_eq!(response.status(), 303);
    let api = Api::new(&app);
    let dep = api.wait_for_end(&app, &project, 1).await;
    assert_eq!(dep["status"], "succeeded", "{dep}");
    assert_eq!(dep["trigger"], "create");
    assert_eq!(dep["commit"], commit.as_str());
    assert_eq!(dep["image"], format!("berth-build/{project}-web:1"));
    assert_eq!(via_edge(&app, &project).await, (200, page));

    // An image app switched to the same repository afterwards has the same settings.
    let (status, body) = api
        .post(
            &app,
            &format!("/api/v1/projects/{project}/apps"),
            json!({"name": "later", "image": "berth-test/web", "port": 8080}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let later = format!("/api/v1/projects/{project}/apps/later/deploy-settings");
    let (status, body) = api
        .post(&app, &later, git_settings(&repo_path, json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    let without_key = |mut settings: Value| {
        // Each app has its own deploy key.
        settings.as_object_mut().unwrap().remove("deploy_key");
        settings
    };
    let created = without_key(
        api.get(
            &app,
            &format!("/api/v1/projects/{project}/apps/web/deploy-settings"),
        )
        .await,
    );
    assert_eq!(created["source"], "git");
    assert_eq!(created, without_key(api.get(&app, &later).await));

    // Deleting the apps removes what was built for them.
    for name in ["web", "later"] {
        assert_eq!(api.delete_app(&app, &project, name).await, 200);
    }
    assert!(!image_exists(&format!("berth-build/{project}-web:1")));
}

/// A real sshd on 127.0.0.1 (a child of the test, killed on drop) with its
/// own host key, letting in root with the keys in `authorized_keys`.
struct Sshd {
    child: std::process::Child,
    port: u16,
    authorized_keys: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, "").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n",
                dir.path().join("host_key").display(),
                authorized_keys.display()
            ),
        )
        .unwrap();
        let child = Sshd::spawn(dir.path(), port);
        Sshd {
            child,
            port,
            authorized_keys,
            dir,
        }
    }

    /// A new host key in `dir` and sshd started on `port` with it.
    fn spawn(dir: &Path, port: u16) -> std::process::Child {
        let host_key = dir.join("host_key");
        let _ = std::fs::remove_file(&host_key);
        let _ = std::fs::remove_file(host_key.with_extension("pub"));
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .output()
            .expect("ssh-keygen is installed");
        assert!(out.status.success(), "{out:?}");
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("openssh-server is installed (tests/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
            assert!(child.try_wait().unwrap().is_none(), "sshd exited: {log}");
            assert!(Instant::now() < deadline, "sshd never listened: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// The same server (address, users) answering with a different host key,
    /// as a machine in between would.
    fn restart_with_a_new_host_key(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Sshd::spawn(self.dir.path(), self.port);
    }

    /// `ssh-keygen -l` of the host key: `SHA256:…`.
    fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.path().join("host_key.pub"))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().nth(1).unwrap().to_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn files_named_key(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "key"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_private_repository_is_cloned_over_ssh_with_the_apps_deploy_key_and_refused_without_it() {
    let mut sshd = Sshd::start();
    let (app, project, api) = running_web("ssh").await;
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "-q", "-b", "main"]);
    let page = format!("cloned over ssh {}", common::hex_id());
    let commit = commit_page(work.path(), &page);
    let bare = tempfile::tempdir().unwrap();
    git(bare.path(), &["init", "-q", "--bare", "-b", "main"]);
    let bare_path = bare.path().display().to_string();
    git(work.path(), &["push", "-q", &bare_path, "main"]);

    // The public key, in the API and on the deploy settings page; never the private one.
    let settings_path = format!("/api/v1/projects/{project}/apps/web/deploy-settings");
    let public = api.get(&app, &settings_path).await["deploy_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    assert_eq!(
        api.get(&app, &settings_path).await["deploy_key"],
        public.as_str(),
        "made once"
    );
    let html = app
        .get_html(&format!("/projects/{project}/apps/web/deployments"))
        .await;
    assert!(html.contains(&public), "the page shows the public key");
    assert!(!html.contains("PRIVATE KEY"));
    std::fs::write(&sshd.authorized_keys, format!("{public}\n")).unwrap();

    api.settings(
        &app,
        &project,
        git_settings(
            &format!("ssh://root@127.0.0.1:{}{bare_path}", sshd.port),
            json!({
                "health_path": "/",
                "health_interval_ms": 100,
                "drain_secs": 1,
            }),
        ),
    )
    .await;
    assert_eq!(
        api.get(&app, &settings_path).await["ssh_host_keys"],
        json!([]),
        "no host key before the first clone"
    );
    let number = api.deploy(&app, &project).await;
    let dep = api.wait_for_end(&app, &project, number).await;
    assert_eq!(dep["status"], "succeeded", "{dep}\nsshd: {}", sshd.log());
    assert_eq!(dep["commit"], commit.as_str());
    assert!(
        dep["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "using the app's deploy key"),
        "{dep}"
    );
    assert_eq!(via_edge(&app, &project).await, (200, page.clone()));
    let builds = app.data_dir.join("builds");
    assert_eq!(files_named_key(&builds), Vec::<std::path::PathBuf>::new());
    // The host key was recorded in berth's own known_hosts at the first
    // clone, and is shown in the API and on the page.
    let found = Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", sshd.port))
        .arg("-f")
        .arg(app.data_dir.join("known_hosts"))
        .output()
        .unwrap();
    assert!(found.status.success(), "{found:?}");
    let recorded = format!("ssh-ed25519 {}", sshd.fingerprint());
    assert_eq!(
        api.get(&app, &settings_path).await["ssh_host_keys"],
        json!([recorded])
    );
    let html = app
        .get_html(&format!("/projects/{project}/apps/web/deployments"))
        .await;
    assert!(html.contains(&recorded), "the page shows {recorded}");

    // The same address with another host key: the clone is stopped with
    // words that say so, and the recorded key stays.
    sshd.restart_with_a_new_host_key();
    let number = api.deploy(&app, &project).await;
    let dep = api.wait_for_end(&app, &project, number).await;
    assert_eq!(dep["status"], "failed", "{dep}");
    let log = common::deployment_log(&dep);
    assert!(
        log.contains(&format!(
            "the SSH host key of [127.0.0.1]:{} is not the one recorded",
            sshd.port
        )),
        "{log}"
    );
    assert!(!log.contains("REMOTE HOST IDENTIFICATION"), "{log}");
    assert_eq!(
        api.get(&app, &settings_path).await["ssh_host_keys"],
        json!([recorded])
    );
    assert_eq!(via_edge(&app, &project).await, (200, page.clone()));
    // The admin accepts the new key by removing the old one, as the message says.
    let removed = Command::new("ssh-keygen")
        .arg("-R")
        .arg(format!("[127.0.0.1]:{}", sshd.port))
        .arg("-f")
        .arg(app.data_dir.join("known_hosts"))
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");

    // Without the key in authorized_keys the clone fails with git's words,
    // and the version that serves keeps serving.
    std::fs::write(&sshd.authorized_keys, "").unwrap();
    let number = api.deploy(&app, &project).await;
    let dep = api.wait_for_end(&app, &project, number).await;
    assert_eq!(dep["status"], "failed", "{dep}");
    let log = common::deployment_log(&dep);
    assert!(log.contains("git clone failed"), "{log}");
    assert!(log.contains("Permission denied (publickey)"), "{log}");
    assert_eq!(files_named_key(&builds), Vec::<std::path::PathBuf>::new());
    assert_eq!(via_edge(&app, &project).await, (200, page));

    assert_eq!(api.delete_app(&app, &project, "web").await, 200);
}

#[tokio::test]
async fn git_sources_off_the_transport_list_are_refused_and_nothing_runs() {
    let (app, project, api) = running_web("gitpolicy").await;
    let path = format!("/api/v1/projects/{project}/apps/web/deploy-settings");
    let marker = std::env::temp_dir().join(format!("berth-ext-{}", common::hex_id()));
    let ext = format!("ext::sh -c touch% {}", marker.display());
    for url in [
        ext.as_str(),
        "http://127.0.0.1:1/plain.git",
        "git://127.0.0.1/a.git",
        "file:///etc",
        "/root",
    ] {
        let (status, body) = api
            .post(
                &app,
                &path,
                json!({"source": "git", "git_url": url, "git_branch": "main"}),
            )
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert!(body["fields"]["git_url"].is_string(), "{url}: {body}");
    }
    // A health-check path is written into a request line: CR/LF would split it.
    let (status, body) = api
        .post(&app, &path, json!({"health_path": "/up\r\nHost: other"}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["fields"]["health_path"].is_string(), "{body}");
    let (_, body) = api.send(&app, reqwest::Method::GET, &path, None).await;
    assert_eq!(body["source"], "image", "nothing was saved: {body}");
    assert_eq!(body["health_path"], "", "nothing was saved: {body}");
    assert!(!marker.exists(), "the ext:: command ran");
}

#[tokio::test]
async fn at_most_two_builds_run_at_once_the_third_waits_its_turn() {
    let (app, project, api) = running_web("buildslots").await;
    let mut repos = Vec::new();
    for n in 0..3 {
        let repo = git_repo();
        // Slow enough that the three builds overlap.
        commit_site(
            repo.path(),
            &format!("build {n}"),
            "RUN [\"/busybox\", \"sleep\", \"4\"]\n",
        );
        let (status, body) = api
            .post(
                &app,
                &format!("/api/v1/projects/{project}/apps"),
                git_settings(
                    &file_url(repo.path()),
                    json!({"name": format!("b{n}"), "image": "", "port": 8080}),
                ),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        repos.push(repo);
    }
    let mut waited = 0;
    for n in 0..3 {
        let dep = api
            .wait_for_deployment(&app, &project, &format!("b{n}"), 1)
            .await;
        assert_eq!(dep["status"], "succeeded", "{dep}");
        let full = api
            .get(
                &app,
                &format!("/api/v1/projects/{project}/apps/b{n}/deployments/1"),
            )
            .await;
        let log = full["log"].to_string();
        if log.contains("waiting for a build slot") {
            waited += 1;
        }
    }
    assert_eq!(waited, 1, "exactly one of three builds waited for a slot");
}

#[tokio::test]
async fn the_credentials_in_a_git_url_never_reach_the_deploy_log() {
    let (app, project, api) = running_web("gitcreds").await;
    // Nothing listens on port 1: the clone fails at once, after berth logged it.
    api.settings(
        &app,
        &project,
        json!({
            "source": "git",
            "git_url": "https://deploy:s3cr3t-in-url@127.0.0.1:1/r.git",
            "git_branch": "main",
        }),
    )
    .await;
    let number = api.deploy(&app, &project).await;
    let dep = api.wait_for_end(&app, &project, number).await;
    assert_eq!(dep["status"], "failed", "{dep}");
    let full = api
        .get(
            &app,
            &format!("/api/v1/projects/{project}/apps/web/deployments/{number}"),
        )
        .await;
    let log = common::deployment_log(&full);
    assert!(
        log.contains("cloning https://***@127.0.0.1:1/r.git"),
        "the log names the source: {log}"
    );
    assert!(!log.contains("s3cr3t-in-url"), "{log}");
}

#[tokio::test]
async fn a_git_urls_credentials_show_as_stars_and_a_form_sent_back_as_shown_keeps_them() {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_web_app("gitseal").await;
    let api = Api::new(&app);
    let token = "glpat-k33pMe-9x7";
    let url = format!("https://ci:{token}@127.0.0.1:1/o/r.git");
    let shown = "https://***@127.0.0.1:1/o/r.git";
    let path = format!("/api/v1/projects/{project}/apps/web/deploy-settings");
    let (status, body) = api
        .post(
            &app,
            &path,
            json!({"source": "git", "git_url": url, "git_branch": "main"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["git_url"], shown, "the answer to the change: {body}");
    let got = api.get(&app, &path).await;
    assert_eq!(got["git_url"], shown, "{got}");
    assert!(!got.to_string().contains(token), "{got}");

    let page = format!("/projects/{project}/apps/web/deployments");
    let html = app.get_html(&page).await;
    assert!(
        html.contains(shown),
        "the settings form shows the URL masked"
    );
    assert!(!html.contains(token), "the page never holds the token");
    let overview = app.get_html(&format!("/projects/{project}/apps/web")).await;
    assert!(!overview.contains(token), "nor does the app's page");

    // The form sent back as shown, with another field changed: the stored
    // credentials stay, and the change is saved.
    let fields: Vec<(&str, String)> = vec![
        ("source", "git".into()),
        ("git_url", shown.into()),
        ("git_branch", "release".into()),
        ("health_status", "200".into()),
        ("health_interval_ms", "1000".into()),
        ("health_timeout_ms", "2000".into()),
        ("health_retries", "30".into()),
        ("health_start_secs", "1".into()),
        ("drain_secs", "2".into()),
        ("stop_timeout_secs", "10".into()),
        ("restart_policy", "unless-stopped".into()),
        ("keep_images", "5".into()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = app
        .post_form(
            &page,
            &format!("/projects/{project}/apps/web/deploy-settings"),
            &fields,
        )
        .await;
    assert_eq!(saved.status(), 303, "{}", saved.text().await.unwrap());
    // And through the API, changing only the branch (the URL is left out).
    let (status, body) = api.post(&app, &path, json!({"git_subdir": "site"})).await;
    assert_eq!(status, 200, "{body}");
    // `***` for a different host has nothing to stand for.
    let (status, body) = api
        .post(
            &app,
            &path,
            json!({"git_url": "https://***@elsewhere.example/o/r.git"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("git_url"), "{body}");

    let store = berth_store::Store::open(&app.data_dir).await.unwrap();
    let app_row = berth_store::apps::find(
        &store,
        &berth_core::ProjectName::parse(&project).unwrap(),
        &berth_core::AppName::parse("web").unwrap(),
    )
    .await
    .unwrap();
    let settings = berth_store::deployments::settings(&store, app_row.id)
        .await
        .unwrap();
    let berth_core::deployment::Source::Git(git) = settings.source else {
        panic!("still a git source: {settings:?}");
    };
    assert_eq!(git.url, url, "the credentials were kept");
    assert_eq!(
        (git.branch.as_str(), git.subdir.as_str()),
        ("release", "site")
    );
    store.close().await;

    let mut db = std::fs::read(app.data_dir.join("berth.db")).unwrap();
    db.extend(std::fs::read(app.data_dir.join("berth.db-wal")).unwrap_or_default());
    let holds = |needle: &[u8]| db.windows(needle.len()).any(|w| w == needle);
    assert!(!holds(token.as_bytes()), "the token is sealed at rest");
    assert!(
        holds(shown.as_bytes()),
        "positive control: the scan finds the masked URL kept in clear"
    );
}

#[tokio::test]
async fn a_build_longer_than_the_apps_build_time_out_is_stopped_and_the_old_version_serves() {
    let (app, project, api) = running_web("buildtime").await;
    let path = format!("/api/v1/projects/{project}/apps/web/deploy-settings");
    assert_eq!(api.get(&app, &path).await["build_timeout_mins"], 30);
    for refused in [0, 241] {
        let (status, body) = api
            .post(&app, &path, json!({"build_timeout_mins": refused}))
            .await;
        assert_eq!(status, 422, "{refused}: {body}");
        assert!(body["fields"]["build_timeout_mins"].is_string(), "{body}");
    }
    let repo = git_repo();
    let marker = common::hex_id();
    commit_site(
        repo.path(),
        "never served",
        // The test image has no /bin/sh: busybox's own, in exec form.
        &format!("RUN [\"/busybox\", \"sh\", \"-c\", \"/busybox sleep 600; echo {marker}\"]\n"),
    );
    api.settings(
        &app,
        &project,
        git_settings(
            &file_url(repo.path()),
            json!({
                "build_timeout_mins": 1,
            }),
        ),
    )
    .await;
    assert_eq!(api.get(&app, &path).await["build_timeout_mins"], 1);
    let html = app
        .get_html(&format!("/projects/{project}/apps/web/deployments"))
        .await;
    assert!(
        html.contains(r#"name="build_timeout_mins""#),
        "the form has the field"
    );

    let started = Instant::now();
    let number = api.deploy(&app, &project).await;
    let dep = api.wait_for_end(&app, &project, number).await;
    let took = started.elapsed();
    assert_eq!(dep["status"], "failed", "{dep}");
    assert!(
        dep["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("took longer than 1 minute and were stopped"),
        "{dep}"
    );
    assert!(
        took >= Duration::from_secs(59) && took < Duration::from_secs(150),
        "stopped after {took:?}"
    );
    assert_eq!(
        via_edge(&app, &project).await.0,
        200,
        "the old version serves"
    );
    // Closing the build's stream makes Docker stop the step that sleeps.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("docker")
            .args(["ps", "-a", "--no-trunc", "--format", "{{.Command}}"])
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&out.stdout).contains(&marker) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the build's container is still there"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_build_context_is_streamed_so_a_large_repository_does_not_raise_berths_memory() {
    let (app, project, api) = running_web("bigctx").await;
    let repo = git_repo();
    // 48 MiB that compress badly (xorshift), in the build context.
    const SIZE: usize = 48 << 20;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut big = Vec::with_capacity(SIZE);
    while big.len() < SIZE {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        big.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::create_dir_all(repo.path().join("site")).unwrap();
    std::fs::write(repo.path().join("site/big.bin"), &big).unwrap();
    drop(big);
    let page = format!("large context {}", common::hex_id());
    let commit = commit_page(repo.path(), &page);
    api.settings(
        &app,
        &project,
        git_settings(
            &file_url(repo.path()),
            json!({
                "health_path": "/",
                "health_interval_ms": 100,
                "drain_secs": 1,
            }),
        ),
    )
    .await;
    let before = common::peak_rss_kib(app.pid());
    let number = api.deploy(&app, &project).await;
    let dep = api.wait_for_end(&app, &project, number).await;
    assert_eq!(dep["status"], "succeeded", "{dep}");
    assert_eq!(dep["commit"], commit.as_str());
    assert_eq!(via_edge(&app, &project).await, (200, page));
    let after = common::peak_rss_kib(app.pid());
    // The whole context in memory would add 48 MiB at least.
    assert!(
        after.saturating_sub(before) < 16 * 1024,
        "berth's peak memory grew from {before} KiB to {after} KiB during the build"
    );
}
