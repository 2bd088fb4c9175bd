//! `berth stack plan`: the real binary plans files and prints JSON, and
//! fails with the errors (key and line) when it cannot plan.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn berth_plan(file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["stack", "plan"])
        .arg(file)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the berth binary runs")
}

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("compose.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `name` of each item of a JSON list.
fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect()
}

#[test]
fn a_template_of_berths_own_plans_as_json_without_secret_values() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/templates/gitea.yaml");
    let out = berth_plan(&file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(names(&plan["services"]), ["gitea", "db"]);
    assert_eq!(plan["services"][1]["strategy"], "recreate");
    assert_eq!(plan["routes"][0]["service"], "gitea");
    assert_eq!(names(&plan["generated"]), ["DB_PASSWORD", "SECRET_KEY"]);
    // Environment shows keys only: no value, not even a placeholder.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("<DB_PASSWORD>"), "{text}");
    assert!(plan["errors"].as_array().unwrap().is_empty());
}

#[test]
fn an_unsupported_key_fails_the_plan_naming_the_key_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "services:\n  web:\n    image: nginx:1.27.3\n    volumes_from: [other]\n",
    );
    let out = berth_plan(&file, &["--format", "compose"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 4: services.web.volumes_from"),
        "{stderr}"
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["errors"][0]["line"], 4);
}

#[test]
fn a_required_variable_comes_from_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "services:\n  web:\n    image: nginx:${TAG:?give the nginx version}\n",
    );
    let out = berth_plan(&file, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("give the nginx version"), "{stderr}");

    let out = berth_plan(&file, &["--input", "TAG=1.27.3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["services"][0]["image"], "nginx:1.27.3");
    assert_eq!(plan["inputs"][0]["name"], "TAG");
    assert_eq!(plan["inputs"][0]["required"], true);
}
