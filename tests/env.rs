//! Environment variables end to end: the real binary, the real SQLite file,
//! the real Docker daemon. Paste a `.env`, review the diff, save, redeploy,
//! and read the container's environment back with `docker inspect`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestApp, csrf_token, docker_objects_of, location};
use serde_json::{Value, json};

const MASK: &str = "••••••••";
const SECRET: &str = "pa$$w0rd-that-never-touches-disk";

/// A `.env` as people paste it: CRLF, comments, `export`, quotes, escapes,
/// a multi-line value, references and a literal.
const PASTED: &str = "# database\r\n\
export DB_HOST=db.internal\r\n\
DB_PASSWORD='pa$$w0rd-that-never-touches-disk'\r\n\
DATABASE_URL=\"postgres://app:${DB_PASSWORD}@${DB_HOST}/app\"  # built from the two above\r\n\
GREETING=\"hello\\tworld\"\r\n\
CERT=\"-----BEGIN-----\r\nline two\r\n-----END-----\"\r\n\
RAW='${NOT_INTERPOLATED}'\r\n\
EMPTY=\r\n";

fn expected_env() -> BTreeMap<String, String> {
    [
        ("DB_HOST", "db.internal"),
        ("DB_PASSWORD", SECRET),
        (
            "DATABASE_URL",
            "postgres://app:pa$$w0rd-that-never-touches-disk@db.internal/app",
        ),
        ("GREETING", "hello\tworld"),
        ("CERT", "-----BEGIN-----\nline two\n-----END-----"),
        ("RAW", "${NOT_INTERPOLATED}"),
        ("EMPTY", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn running_app(hint: &str) -> (TestApp, String) {
    let mut app = TestApp::spawn().await;
    app.setup_admin().await;
    let project = app.create_project(hint).await;
    let response = app
        .create_app(&project, "web", "berth-test/web", "8080", "")
        .await;
    assert_eq!(response.status(), 303);
    app.wait_for_status(&project, "web", "running").await;
    (app, project)
}

fn env_base(project: &str) -> String {
    format!("/projects/{project}/apps/web/env")
}

/// Posts the editor's bulk view to `step` (review, save, edit) with the page's CSRF token.
async fn post_bulk(
    app: &TestApp,
    project: &str,
    step: &str,
    version: &str,
    text: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let base = env_base(project);
    let mut fields = vec![("mode", "bulk"), ("version", version), ("text", text)];
    fields.extend_from_slice(extra);
    app.post_form(&base, &format!("{base}/{step}"), &fields)
        .await
}

/// The container's environment minus what its image sets.
fn container_env(project: &str) -> BTreeMap<String, String> {
    let (containers, _) = docker_objects_of(project);
    assert_eq!(containers.len(), 1, "one container for the app");
    let env = |args: &[&str]| -> Vec<String> {
        let out = Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}");
        serde_json::from_slice::<Option<Vec<String>>>(&out.stdout)
            .unwrap()
            .unwrap_or_default()
    };
    let image: Vec<String> = env(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Env}}",
        "berth-test/web",
    ]);
    env(&["inspect", "-f", "{{json .Config.Env}}", &containers[0]])
        .into_iter()
        .filter(|pair| !image.contains(pair))
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("#{id} on the page:\n{html}"));
    let rest = &html[start..];
    &rest[..rest
        .find("</table>")
        .or(rest.find("</div>"))
        .unwrap_or(rest.len())]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_pasted_env_file_is_reviewed_saved_and_redeployed_into_the_container() {
    let (app, project) = running_app("env").await;
    let base = env_base(&project);

    // The review shows every key as added, with the secret masked.
    let response = post_bulk(&app, &project, "review", "0", PASTED, &[]).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let diff = section(&html, "env-diff");
    for key in expected_env().keys() {
        assert!(
            diff.contains(&format!("<code>{key}</code>")),
            "{key} in {diff}"
        );
    }
    assert!(!diff.contains(SECRET), "the diff masks secrets: {diff}");
    assert!(diff.contains(MASK));
    assert_eq!(diff.matches("chg-added").count(), expected_env().len());

    // Reviewing saved nothing.
    let page = app.get_html(&base).await;
    assert!(page.contains("Version 0"), "nothing saved by a review");

    // Save and redeploy: the container is recreated with exactly the saved set.
    let response = post_bulk(&app, &project, "save", "0", PASTED, &[("redeploy", "1")]).await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    // The redeploy is queued; the answer is its live log, not a wait.
    assert!(
        location(&response).starts_with(&format!("/projects/{project}/apps/web/deployments/")),
        "{}",
        location(&response)
    );
    assert_eq!(app.wait_for_deployments(&project, "web").await, "succeeded");
    assert_eq!(container_env(&project), expected_env());

    // The editor shows the saved set, the secret masked, and no stale banner.
    let page = app.get_html(&format!("{base}?view=bulk")).await;
    assert!(page.contains("Version 1"));
    assert!(!page.contains(SECRET), "the secret is masked in the editor");
    assert!(page.contains(MASK));
    assert!(
        !page.contains("id=\"env-stale\""),
        "the container is up to date"
    );

    // Neither the database nor its WAL holds the secret in clear. The main
    // file must be there, and the same scan must find the variables' names,
    // which are kept in clear beside the sealed values: a scan of a missing,
    // renamed or empty file cannot pass.
    let mut bytes = std::fs::read(app.data_dir.join("berth.db")).expect("the database file");
    bytes.extend(std::fs::read(app.data_dir.join("berth.db-wal")).unwrap_or_default());
    for name in ["DB_PASSWORD", "DATABASE_URL", "GREETING"] {
        assert!(
            contains(&bytes, name.as_bytes()),
            "positive control: the scan sees the saved variable {name}"
        );
    }
    assert!(
        !contains(&bytes, SECRET.as_bytes()),
        "the database holds the secret"
    );
    assert!(
        !contains(&bytes, b"db.internal"),
        "the database holds a value"
    );
    let key = std::fs::metadata(app.data_dir.join("secret.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );
}

#[tokio::test]
async fn saving_never_restarts_the_app_and_says_it_still_has_the_old_values() {
    let (app, project) = running_app("envstale").await;
    let base = env_base(&project);
    let (before, _) = docker_objects_of(&project);

    let response = post_bulk(&app, &project, "save", "0", "MODE=one\n", &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{base}?saved=1"));
    let page = app.get_html(&location(&response)).await;
    assert!(
        page.contains("id=\"env-stale\""),
        "the page offers a redeploy"
    );
    assert!(page.contains("Saved as version 1"));
    let (after, _) = docker_objects_of(&project);
    assert_eq!(before, after, "the container was not touched");
    assert!(container_env(&project).is_empty());

    let response = app.post_form(&base, &format!("{base}/redeploy"), &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(app.wait_for_deployments(&project, "web").await, "succeeded");
    assert_eq!(container_env(&project)["MODE"], "one");
    assert!(!app.get_html(&base).await.contains("id=\"env-stale\""));
}

#[tokio::test]
async fn bad_input_keeps_the_text_as_typed_and_saves_nothing() {
    let (app, project) = running_app("envbad").await;
    let base = env_base(&project);
    let typed = "A=1\n1BAD=x\nA=2\nMY-VAR=y\nB=\"never closed\n";
    for step in ["review", "save"] {
        let response = post_bulk(&app, &project, step, "0", typed, &[]).await;
        assert_eq!(response.status(), 422, "{step}");
        let html = response.text().await.unwrap();
        let errors = section(&html, "env-errors");
        for line in [
            "line 2:",
            "line 3: A is already set on line 1",
            "line 4:",
            "line 5:",
        ] {
            assert!(errors.contains(line), "{step}: {line} in {errors}");
        }
        // The text area holds exactly what was typed.
        assert!(
            html.contains("A=1\n1BAD=x\nA=2\nMY-VAR=y\nB=&quot;never closed\n</textarea>")
                || html.contains("A=1\n1BAD=x\nA=2\nMY-VAR=y\nB=&#34;never closed\n</textarea>"),
            "{html}"
        );
    }
    // An unknown reference is refused too, with the text kept.
    let response = post_bulk(&app, &project, "save", "0", "URL=${project.NOPE}\n", &[]).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("${project.NOPE} is not set"), "{html}");
    assert!(app.get_html(&base).await.contains("Version 0"));
}

#[tokio::test]
async fn saving_over_someone_elses_change_shows_the_diff_against_theirs_and_keeps_the_text() {
    let (app, project) = running_app("envrace").await;
    let base = env_base(&project);
    // Two editors open version 0; the first one saves.
    let response = post_bulk(&app, &project, "save", "0", "A=theirs\nB=1\n", &[]).await;
    assert_eq!(response.status(), 303);
    // The second saves against version 0: refused, shown against version 1.
    let response = post_bulk(&app, &project, "save", "0", "A=mine\n", &[]).await;
    assert_eq!(response.status(), 409);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"env-conflict\""));
    assert!(html.contains("Someone saved version 1"));
    let diff = section(&html, "env-diff");
    assert!(diff.contains("theirs") && diff.contains("mine"), "{diff}");
    assert!(diff.contains("chg-removed"), "B would be removed: {diff}");
    assert!(html.contains("name=\"text\" value=\"A=mine\n\""), "{html}");
    assert!(html.contains("name=\"version\" value=\"1\""));
    let page = app.get_html(&format!("{base}?view=bulk")).await;
    assert!(page.contains("A=theirs"), "their change stands");
}

#[tokio::test]
async fn the_history_shows_who_changed_what_and_reverts_in_one_click() {
    let (app, project) = running_app("envhist").await;
    let base = env_base(&project);
    post_bulk(&app, &project, "save", "0", "A=1\nTOKEN=abc\n", &[]).await;
    post_bulk(
        &app,
        &project,
        "save",
        "1",
        &format!("A=2\nTOKEN={MASK}\nC=3\n"),
        &[],
    )
    .await;
    let html = app.get_html(&format!("{base}/history")).await;
    assert!(html.contains("Version 2") && html.contains("Version 1"));
    assert!(html.contains("admin"));
    assert!(html.contains("<code>C</code>"));
    assert!(!html.contains("abc"), "no value in the history");

    let response = app
        .post_form(
            &format!("{base}/history"),
            &format!("{base}/revert"),
            &[("version", "1"), ("expected", "2")],
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = app.get_html(&location(&response)).await;
    assert!(page.contains("Reverted to version 1"), "{page}");
    let page = app.get_html(&format!("{base}?view=bulk")).await;
    assert!(page.contains("A=1") && !page.contains("C=3"));
    let html = app.get_html(&format!("{base}/history")).await;
    assert!(html.contains("reverted to version 1"));
}

#[tokio::test]
async fn a_secret_is_revealed_only_when_asked_and_switching_views_keeps_edits() {
    let (app, project) = running_app("envreveal").await;
    let base = env_base(&project);
    post_bulk(
        &app,
        &project,
        "save",
        "0",
        "API_TOKEN=tok-123456\nA=1\n",
        &[],
    )
    .await;
    let page = app.get_html(&base).await;
    assert!(!page.contains("tok-123456"));
    // Reveal one row on purpose.
    let csrf = csrf_token(&page);
    let response = app
        .http
        .post(app.at(&format!("{base}/edit")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("mode", "rows"),
            ("version", "1"),
            ("key_0", "API_TOKEN"),
            ("value_0", MASK),
            ("orig_0", "API_TOKEN"),
            ("secret_0", "on"),
            ("runtime_0", "on"),
            ("key_1", "A"),
            ("value_1", "edited"),
            ("orig_1", ""),
            ("runtime_1", "on"),
            ("reveal", "API_TOKEN"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("tok-123456"), "revealed on purpose");
    assert!(html.contains(">edited</textarea>"), "the edit is kept");
    // Switch the same draft to the .env view: the edit follows, the secret stays masked.
    let response = app
        .http
        .post(app.at(&format!("{base}/edit")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("mode", "rows"),
            ("version", "1"),
            ("key_0", "API_TOKEN"),
            ("value_0", MASK),
            ("orig_0", "API_TOKEN"),
            ("secret_0", "on"),
            ("runtime_0", "on"),
            ("key_1", "A"),
            ("value_1", "edited"),
            ("runtime_1", "on"),
            ("switch", "bulk"),
        ])
        .send()
        .await
        .unwrap();
    let html = response.text().await.unwrap();
    assert!(html.contains("A=edited"), "{html}");
    assert!(!html.contains("tok-123456"));
    assert!(
        html.contains(&format!("API_TOKEN=&quot;{MASK}&quot;"))
            || html.contains(&format!("API_TOKEN=&#34;{MASK}&#34;")),
        "{html}"
    );
}

#[tokio::test]
async fn scripts_set_list_and_delete_variables_through_the_api() {
    let (app, project) = running_app("envapi").await;
    let out = app.cli(&["token", "create", "--name", "ci"], None);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let path = format!("/api/v1/projects/{project}/apps/web/env");
    let send = async |method: reqwest::Method, path: &str, body: Option<Value>| {
        app.api(&token, method, path, body).await
    };

    let (status, body) = send(
        reqwest::Method::POST,
        &path,
        Some(json!({"vars": [{"key": "API_KEY", "value": "k-1"}, {"key": "PORT", "value": "80"}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["env"]["version"], 1);
    assert_eq!(body["env"]["redeploy_needed"], true);
    let (_, body) = send(reqwest::Method::GET, &path, None).await;
    assert_eq!(body["vars"][0]["key"], "API_KEY");
    assert_eq!(body["vars"][0]["secret"], true);
    assert_eq!(body["vars"][0]["value"], Value::Null, "masked by default");
    assert_eq!(body["vars"][1]["value"], "80");
    let (_, body) = send(reqwest::Method::GET, &format!("{path}?reveal=true"), None).await;
    assert_eq!(body["vars"][0]["value"], "k-1");

    // Import a .env, merged; an invalid key is a 422 naming the line.
    let (status, body) = send(
        reqwest::Method::POST,
        &path,
        Some(json!({"dotenv": "A=1\n2B=x\n"})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["fields"]["dotenv"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{body}"
    );
    // A stale version is a 409 and changes nothing.
    let (status, _) = send(
        reqwest::Method::POST,
        &path,
        Some(json!({"vars": [{"key": "PORT", "value": "81"}], "version": 0})),
    )
    .await;
    assert_eq!(status, 409);

    let (status, _) = send(reqwest::Method::DELETE, &format!("{path}/PORT"), None).await;
    assert_eq!(status, 204);
    let (status, _) = send(reqwest::Method::DELETE, &format!("{path}/PORT"), None).await;
    assert_eq!(status, 404);
    let (_, body) = send(reqwest::Method::GET, &path, None).await;
    assert_eq!(body["version"], 2);
    assert_eq!(body["vars"].as_array().unwrap().len(), 1);

    // The history names the token.
    let html = app
        .get_html(&format!("{}/history", env_base(&project)))
        .await;
    assert!(html.contains("api token ci"), "{html}");

    // Save and redeploy through the API.
    let (status, _) = send(
        reqwest::Method::POST,
        &path,
        Some(json!({"vars": [{"key": "MODE", "value": "api"}], "redeploy": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.wait_for_deployments(&project, "web").await, "succeeded");
    let env = container_env(&project);
    assert_eq!(
        (env["API_KEY"].as_str(), env["MODE"].as_str()),
        ("k-1", "api")
    );
}

#[tokio::test]
async fn shared_variables_are_referenced_by_apps_and_show_who_uses_them() {
    let (app, project) = running_app("envshared").await;
    let project_env = format!("/projects/{project}/env");
    let response = app
        .post_form(
            &project_env,
            &format!("{project_env}/save"),
            &[
                ("mode", "bulk"),
                ("version", "0"),
                ("text", "DB_HOST=shared-db\n"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let response = app
        .post_form(
            "/env",
            "/env/save",
            &[("mode", "bulk"), ("version", "0"), ("text", "REGION=eu\n")],
        )
        .await;
    assert_eq!(response.status(), 303);
    let text = "URL=${project.DB_HOST}/${global.REGION}\n";
    let response = post_bulk(&app, &project, "save", "0", text, &[("redeploy", "1")]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(app.wait_for_deployments(&project, "web").await, "succeeded");
    assert_eq!(container_env(&project)["URL"], "shared-db/eu");
    let html = app.get_html(&project_env).await;
    let uses = section(&html, "env-uses");
    assert!(uses.contains(&format!("{project}/web")), "{uses}");

    // Removing a shared variable an app uses is refused, with the text kept.
    let response = app
        .post_form(
            &project_env,
            &format!("{project_env}/save"),
            &[("mode", "bulk"), ("version", "1"), ("text", "OTHER=1\n")],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains(&format!("{project}/web would break")),
        "{html}"
    );
    assert!(html.contains("OTHER=1\n</textarea>"));
    assert!(app.get_html(&project_env).await.contains("Version 1"));
}

#[tokio::test]
async fn rotating_the_key_keeps_every_value() {
    let (app, project) = running_app("envrotate").await;
    post_bulk(
        &app,
        &project,
        "save",
        "0",
        "API_TOKEN=before-rotation\n",
        &[],
    )
    .await;
    let old_key = std::fs::read(app.data_dir.join("secret.key")).unwrap();
    let data_dir = app.data_dir.clone();
    let app = app
        .restart_on_same_data_after(|| {
            let out = common::run_cli(&data_dir, &["secrets", "rotate-key"], None);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted 1 values"));
        })
        .await;
    assert_ne!(
        std::fs::read(app.data_dir.join("secret.key")).unwrap(),
        old_key
    );
    app.login("admin", common::PASSWORD).await;
    let base = env_base(&project);
    let csrf = csrf_token(&app.get_html(&base).await);
    let response = app
        .http
        .post(app.at(&format!("{base}/edit")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("mode", "bulk"),
            ("version", "1"),
            ("text", &format!("API_TOKEN={MASK}\n")),
            ("reveal", "*"),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.text().await.unwrap().contains("before-rotation"));
}

#[tokio::test]
async fn the_row_flags_decide_what_reaches_the_container() {
    let (app, project) = running_app("envrows").await;
    let base = env_base(&project);
    let response = app
        .post_form(
            &base,
            &format!("{base}/save"),
            &[
                ("mode", "rows"),
                ("version", "0"),
                ("key_0", "A"),
                ("value_0", "1"),
                ("runtime_0", "on"),
                ("key_1", "BUILD_ONLY"),
                ("value_1", "x"),
                ("build_1", "on"),
                ("key_2", "LITERAL"),
                ("value_2", "${A} $$"),
                ("runtime_2", "on"),
                ("literal_2", "on"),
                ("key_3", "EXPANDED"),
                ("value_3", "${A} $$"),
                ("runtime_3", "on"),
                ("key_4", "MULTI"),
                ("value_4", "one\r\ntwo"),
                ("runtime_4", "on"),
                ("key_5", "GONE"),
                ("value_5", "x"),
                ("runtime_5", "on"),
                ("remove_5", "on"),
                ("key_6", ""),
                ("value_6", ""),
                ("runtime_6", "on"),
                ("redeploy", "1"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(app.wait_for_deployments(&project, "web").await, "succeeded");
    let expected: BTreeMap<String, String> = [
        ("A", "1"),
        ("LITERAL", "${A} $$"),
        ("EXPANDED", "1 $"),
        ("MULTI", "one\ntwo"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(container_env(&project), expected);
    // A row with neither build nor runtime is refused, the rows kept as typed.
    let response = app
        .post_form(
            &base,
            &format!("{base}/review"),
            &[
                ("mode", "rows"),
                ("version", "1"),
                ("key_0", "NOWHERE"),
                ("value_0", "typed value"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("choose build-time, runtime or both"),
        "{html}"
    );
    assert!(html.contains(">typed value</textarea>"));
}

#[tokio::test]
async fn the_editor_script_is_served_like_the_stylesheet() {
    let app = TestApp::spawn().await;
    let response = app.get("/static/env.js").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(response.text().await.unwrap().contains("beforeunload"));
}

#[tokio::test]
async fn an_interpolation_bomb_is_refused_quickly_and_saves_nothing() {
    let (app, project) = running_app("envbomb").await;
    let out = app.cli(&["token", "create", "--name", "bomb"], None);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let path = format!("/api/v1/projects/{project}/apps/web/env");
    // 30 doublings of 8 bytes: 8 GiB if nothing stopped it; about 1 KB to send.
    let mut vars = vec![json!({"key": "A0", "value": "xxxxxxxx"})];
    for n in 1..=30 {
        vars.push(
            json!({"key": format!("A{n}"), "value": format!("${{A{}}}${{A{}}}", n - 1, n - 1)}),
        );
    }
    let started = Instant::now();
    let (status, body) = app
        .api(
            &token,
            reqwest::Method::POST,
            &path,
            Some(json!({ "vars": vars })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("KiB"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let (_, body) = app.api(&token, reqwest::Method::GET, &path, None).await;
    assert_eq!(body["version"], 0, "nothing was saved: {body}");
    let peak_kib = common::peak_rss_kib(app.pid());
    assert!(peak_kib < 200 * 1024, "peak RSS {peak_kib} KiB");
}
