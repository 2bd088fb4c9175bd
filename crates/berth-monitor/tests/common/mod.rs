//! Helpers for the monitor's tests: a real SQLite file, and busybox
//! containers on the real engine, labelled `berth.test=<id>` and removed when
//! the guard drops (even after a panic).

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use berth_docker::{ContainerSpec, DockerClient};
use berth_store::Store;

/// The busybox image every test container runs (docker/test-images/web).
pub const IMAGE: &str = "berth-test/web:latest";

/// A fresh store in a temp dir; keep the dir alive as long as the store.
pub async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).await.unwrap();
    (dir, store)
}

/// One test's containers.
pub struct TestEnv {
    pub docker: DockerClient,
    pub id: String,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        TestEnv {
            docker: DockerClient::connect(None).expect("DOCKER_HOST is valid"),
            id: format!(
                "monitor-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// Starts a busybox container running `script` (through `sh -c`, a
    /// fixed string of the test, not user input), with a memory limit.
    /// Returns its ID and name.
    pub async fn run(&self, what: &str, script: &str, memory: Option<i64>) -> (String, String) {
        let name = format!("berth-test-{}-{what}", self.id);
        let spec = ContainerSpec {
            name: name.clone(),
            image: IMAGE.to_owned(),
            cmd: Some(vec![
                "/busybox".into(),
                "sh".into(),
                "-c".into(),
                script.into(),
            ]),
            labels: BTreeMap::from([
                ("berth.test".to_owned(), self.id.clone()),
                ("berth.project".to_owned(), "monitor-test".to_owned()),
                ("berth.resource".to_owned(), what.to_owned()),
            ]),
            memory_bytes: memory,
            ..Default::default()
        };
        let id = self.docker.create_container(&spec).await.unwrap();
        self.docker.start_container(&id).await.unwrap();
        (id, name)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let id = self.id.clone();
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let docker = DockerClient::connect(None)?;
                for c in docker
                    .list_containers(&[("berth.test", id.as_str())])
                    .await?
                {
                    docker.remove_container(&c.id).await?;
                }
                Ok::<_, berth_docker::DockerError>(())
            })
        })
        .join();
        if !matches!(cleaned, Ok(Ok(()))) {
            eprintln!("cleanup of berth.test={} failed", self.id);
        }
    }
}

/// `docker stats --no-stream` memory of a container, in bytes (the anchor
/// users compare with).
pub fn docker_stats_memory(id: &str) -> u64 {
    let out = std::process::Command::new("docker")
        .args(["stats", "--no-stream", "--format", "{{.MemUsage}}", id])
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let used = text.split('/').next().unwrap().trim();
    parse_size(used).unwrap_or_else(|| panic!("cannot read {used:?}"))
}

/// `20.5MiB`, `612KiB`, `1.2GiB`, `100B` (the CLI's units).
fn parse_size(s: &str) -> Option<u64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.trim().parse().ok()?;
    let mult = match unit {
        "B" => 1.0,
        "KiB" | "kB" => 1024.0,
        "MiB" | "MB" => 1024.0 * 1024.0,
        "GiB" | "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}
