//! `cargo bench -p berth-monitor`: the cost of one collection tick with 20
//! running containers (busybox from docker/test-images, labelled
//! `berth.test`, removed at the end), as this process's CPU time (user +
//! system, from /proc/self/stat) and wall time, per tick and per container;
//! then, as the anchor, one `docker stats --no-stream` over the same
//! containers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth_docker::{ContainerSpec, DockerClient};
use berth_monitor::{Monitor, MonitorConfig};

const CONTAINERS: usize = 20;
const TICKS: u32 = 50;

/// This process's CPU time so far (user + system).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command (which may hold spaces) start after ')'.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = rustix_ticks();
    Duration::from_secs_f64(ticks as f64 / hz)
}

fn rustix_ticks() -> f64 {
    // USER_HZ; 100 on every Linux berth runs on.
    100.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let docker = DockerClient::connect(None).unwrap();
    let label = format!("monitor-bench-{}", std::process::id());
    let mut ids = Vec::new();
    for i in 0..CONTAINERS {
        let spec = ContainerSpec {
            name: format!("berth-bench-{label}-{i}"),
            image: "berth-test/web:latest".to_owned(),
            cmd: Some(vec!["/busybox".into(), "sleep".into(), "3600".into()]),
            labels: BTreeMap::from([("berth.test".to_owned(), label.clone())]),
            ..Default::default()
        };
        let id = docker.create_container(&spec).await.unwrap();
        docker.start_container(&id).await.unwrap();
        ids.push(id);
    }
    let dir = tempfile::tempdir().unwrap();
    let store = berth_store::Store::open(dir.path()).await.unwrap();
    let monitor = Monitor::new(docker.clone(), store, MonitorConfig::default());
    let result = std::panic::AssertUnwindSafe(measure(&monitor, &ids));
    let outcome = futures_util::FutureExt::catch_unwind(result).await;
    for id in &ids {
        let _ = docker.remove_container(id).await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn measure(monitor: &Monitor, ids: &[String]) {
    // Warm up: the first tick inspects every container and finds its cgroup.
    let first = monitor.tick().await.unwrap();
    let mine = first
        .containers
        .iter()
        .filter(|c| ids.contains(&c.id))
        .count();
    assert_eq!(mine, CONTAINERS, "every bench container is seen");
    let total = first
        .containers
        .iter()
        .filter(|c| c.state == "running")
        .count();
    for (label, store) in [("collect only", false), ("collect + store", true)] {
        let (cpu0, wall0) = (cpu_time(), Instant::now());
        for _ in 0..TICKS {
            if store {
                monitor.tick().await.unwrap();
            } else {
                monitor.collect().await;
            }
            // Ticks a second apart, as in life they are seconds apart.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cpu = cpu_time() - cpu0;
        let wall = wall0.elapsed() - Duration::from_millis(20) * TICKS;
        let per_tick = cpu / TICKS;
        println!(
            "{label}: {total} running containers ({CONTAINERS} of the bench): per tick {:.0} µs CPU \
             ({:.0} µs per container), {:.1} ms wall; at a 10 s interval {:.3} % of one core",
            per_tick.as_secs_f64() * 1e6,
            per_tick.as_secs_f64() * 1e6 / total as f64,
            wall.as_secs_f64() * 1e3 / TICKS as f64,
            per_tick.as_secs_f64() / 10.0 * 100.0,
        );
    }
    let anchor = Instant::now();
    let out = std::process::Command::new("docker")
        .args(["stats", "--no-stream"])
        .args(ids)
        .output()
        .unwrap();
    assert!(out.status.success());
    println!(
        "anchor: docker stats --no-stream over the {CONTAINERS} containers took {:.0} ms",
        anchor.elapsed().as_secs_f64() * 1e3
    );
}
