//! git for the tests' local repositories. The berth tests use it through
//! `common`, and crates/berth-deploy's stack tests include it with
//! `#[path]`, so it depends only on std and tempfile.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::path::Path;
use std::process::Command;

/// Runs git in `dir` as a test author; it must succeed.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=berth test",
            "-c",
            "user.email=test@berth.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An empty repository on the branch `main` in a new temp dir.
pub fn git_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    repo
}

/// The commit `HEAD` points at in `repo`.
pub fn head(repo: &Path) -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .expect("git is installed");
    assert!(out.status.success(), "git rev-parse HEAD in {repo:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A `file://` URL for a local repository.
pub fn file_url(repo: &Path) -> String {
    format!("file://{}", repo.display())
}
