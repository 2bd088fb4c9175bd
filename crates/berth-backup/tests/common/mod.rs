//! Shared test helpers: a real dump process, a real S3 server (s3s-fs) and,
//! in [`docker`], real database containers with dump and restore sidecars.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

/// Database containers and sidecars for the engine tests.
pub mod docker;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_backup::destination::S3Destination;
use berth_backup::{
    ArtifactKey, Destination, DumpSource, FormatMarker, LocalDir, S3Config, SecretString, Target,
};
use tokio::process::{Child, ChildStdout, Command};

/// A dump from a real process: `sh -c script`, its stdout and exit code.
/// The script stands in for pg_dump (which needs a server; see the e2e test).
pub fn dump_process(
    script: &str,
    marker: FormatMarker,
) -> DumpSource<ChildStdout, impl Future<Output = std::io::Result<i64>> + use<>> {
    let mut child: Child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        // Quiet tests: what a dump says on stderr is not under test here.
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sh");
    let reader = child.stdout.take().unwrap();
    let exit = async move {
        let status = child.wait().await?;
        Ok(i64::from(status.code().unwrap_or(-1)))
    };
    DumpSource {
        reader,
        exit,
        marker,
    }
}

pub const ACCESS_KEY: &str = "berthtest";
pub const SECRET_KEY: &str = "berthtestsecret";

/// A real S3 server: s3s-fs on 127.0.0.1, a free port, its own directory.
/// Killed on drop.
pub struct S3Server {
    child: std::process::Child,
    pub port: u16,
    pub root: tempfile::TempDir,
}

fn s3s_fs_binary() -> PathBuf {
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cargo")
        });
    let candidate = home.join("bin/s3s-fs");
    if candidate.exists() {
        candidate
    } else {
        PathBuf::from("s3s-fs")
    }
}

impl S3Server {
    pub fn start(buckets: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        for b in buckets {
            std::fs::create_dir(root.path().join(b)).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs is needed: cargo install s3s-fs@0.14.1 --features binary --locked");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, root }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn config(&self, bucket: &str) -> S3Config {
        Self::config_for(&self.endpoint(), bucket)
    }

    /// A config for any endpoint, with the test keys.
    pub fn config_for(endpoint: &str, bucket: &str) -> S3Config {
        let mut c = S3Config::new(
            "s3",
            endpoint,
            "us-east-1",
            bucket,
            ACCESS_KEY,
            SecretString::from(SECRET_KEY.to_owned()),
        );
        // 5 MiB parts (S3's minimum) so a test of a few MiB has several parts.
        c.part_size = 5 * 1024 * 1024;
        c.max_retries = 0;
        c
    }

    /// Every regular file under the bucket's directory, relative to it.
    pub fn files(&self, bucket: &str) -> Vec<String> {
        files_under(&self.root.path().join(bucket))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The total size of the regular files under `dir`, hidden temp files included.
pub fn bytes_under(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// A port nothing listens on: bound, then released.
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The same key in a local directory and, if given, an S3 destination.
pub fn targets(local: &LocalDir, s3: Option<S3Destination>, key: &str) -> Vec<Target> {
    let key = ArtifactKey::parse(key).unwrap();
    let mut t = vec![Target {
        destination: Destination::Local(local.clone()),
        key: key.clone(),
    }];
    if let Some(s3) = s3 {
        t.push(Target {
            destination: Destination::S3(s3),
            key,
        });
    }
    t
}
