//! Getting a build context out of a git repository with the `git` program:
//! argument arrays only (never a shell), `--` before every URL and path, no
//! terminal prompts, and the process killed if the deploy is cancelled.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// A shallow clone of `branch`; returns the commit checked out.
pub(crate) async fn clone(url: &str, branch: &str, into: &Path) -> Result<String, String> {
    if url.starts_with('-') || branch.starts_with('-') {
        return Err("a repository URL or branch may not start with '-'".to_owned());
    }
    let mut args = vec!["clone", "--quiet", "--single-branch", "--no-tags"];
    // Local clones ignore --depth with a warning; remote ones are shallow.
    if url.contains("://") && !url.starts_with("file://") || url.contains('@') {
        args.extend(["--depth", "1"]);
    }
    if !branch.is_empty() {
        args.extend(["--branch", branch]);
    }
    args.push("--");
    args.push(url);
    let target = into.to_string_lossy().into_owned();
    args.push(&target);
    run(&args, None).await?;
    let head = run(&["rev-parse", "HEAD"], Some(into)).await?;
    Ok(String::from_utf8_lossy(&head).trim().to_owned())
}

/// A tar archive of `subdir` (or the whole tree) at HEAD: the build context.
/// `git archive` leaves out `.git` and untracked files, as a build should.
pub(crate) async fn context_tar(repo: &Path, subdir: &str) -> Result<Vec<u8>, String> {
    let subdir = subdir.trim_matches('/');
    if subdir.split('/').any(|part| part == "..") {
        return Err("the subdirectory may not contain '..'".to_owned());
    }
    let tree = if subdir.is_empty() {
        "HEAD".to_owned()
    } else {
        format!("HEAD:{subdir}")
    };
    run(&["archive", "--format=tar", &tree], Some(repo)).await
}

async fn run(args: &[&str], dir: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        // Never ask about unknown host keys on a terminal nobody watches.
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "git {} failed: {}",
            args.first().copied().unwrap_or_default(),
            stderr.trim()
        ))
    }
}
