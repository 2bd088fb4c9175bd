//! The collector against the real engine and a real SQLite file: busybox
//! containers that burn CPU and hold memory, read through their cgroup
//! files (and, when those cannot be read, through Docker's one-shot stats).

mod common;

use std::time::Duration;

use berth_monitor::chart::{Chart, MAX_POINTS};
use berth_monitor::format::Unit;
use berth_monitor::{Monitor, MonitorConfig, Range, Scope, Source};
use common::{TestEnv, docker_stats_memory, store};

/// A shell loop that keeps one core busy.
const BURN: &str = "while :; do :; done";
/// About 24 MiB in /dev/shm (tmpfs: charged to the container, never
/// inactive file cache), then sleep.
const HOLD_MEMORY: &str = "/busybox dd if=/dev/zero of=/dev/shm/fill bs=1048576 count=24 2>/dev/null; exec /busybox sleep 3600";

#[tokio::test]
async fn a_container_burning_cpu_shows_cpu_and_rising_counters_from_its_cgroup() {
    let env = TestEnv::new();
    let (id, name) = env.run("burn", BURN, Some(64 << 20)).await;
    let (_dir, store) = store().await;
    let monitor = Monitor::new(env.docker.clone(), store, MonitorConfig::default());

    let first = monitor.tick().await.unwrap();
    let c0 = first
        .containers
        .iter()
        .find(|c| c.id == id)
        .unwrap()
        .clone();
    assert_eq!(c0.source, Source::Cgroup, "{:?}", first.problems);
    assert_eq!(c0.name, name);
    assert_eq!(c0.memory_limit, Some(64 << 20));
    assert_eq!(c0.cpu_cores, None, "no rate before a second sample");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = monitor.tick().await.unwrap();
    let c1 = second.containers.iter().find(|c| c.id == id).unwrap();
    // Lower bounds are loose: this machine is shared, and the loop gets
    // what the scheduler leaves it.
    assert!(
        c1.cpu_seconds > c0.cpu_seconds + 0.05,
        "the CPU counter rose by {} s in 1.5 s",
        c1.cpu_seconds - c0.cpu_seconds
    );
    let cores = c1.cpu_cores.unwrap();
    let machine = second.server.cores() as f64;
    assert!(
        cores > 0.05 && cores < machine + 0.1,
        "a busy loop uses up to one core, saw {cores}"
    );
    assert!(c1.cpu_of_limit(second.server.cores()).unwrap() > 0.0);
    assert_eq!(c1.pids, Some(1));
    assert!(
        second.server.cpu_busy.unwrap() > 0.0,
        "the server saw the burn too"
    );
    assert!(second.server.memory.total > 0);
    assert!(
        !second.server.disks.is_empty(),
        "the root mount is a real filesystem"
    );

    // The rates went into the history, under the container's name.
    let series = monitor
        .history(Scope::Container, &name, "cpu", Range::Hour)
        .await
        .unwrap();
    assert_eq!(series.buckets.len(), 1);
    assert!(series.buckets[0].max > 0.05);

    // /metrics shows the counter with cAdvisor's name and berth's labels.
    let text = berth_monitor::prometheus::render(&second);
    let line = text
        .lines()
        .find(|l| l.starts_with("container_cpu_usage_seconds_total{") && l.contains(&name))
        .unwrap_or_else(|| panic!("no cpu line for {name} in\n{text}"));
    assert!(line.contains("berth_project=\"monitor-test\""), "{line}");
    assert!(line.contains("berth_resource=\"burn\""), "{line}");
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - c1.cpu_seconds).abs() < 1e-6);
}

#[tokio::test]
async fn memory_agrees_with_docker_stats_both_from_cgroup_files_and_from_the_fallback() {
    let env = TestEnv::new();
    let (id, _) = env.run("memory", HOLD_MEMORY, Some(128 << 20)).await;
    let (_dir, store) = store().await;
    let monitor = Monitor::new(env.docker.clone(), store.clone(), MonitorConfig::default());
    // Wait until the fill is done: memory stops growing.
    let mut ours = 0;
    for _ in 0..50 {
        let snap = monitor.collect().await;
        let now = snap
            .containers
            .iter()
            .find(|c| c.id == id)
            .unwrap()
            .memory_bytes;
        if now >= 24 << 20 && now == ours {
            break;
        }
        ours = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let snap = monitor.collect().await;
    let c = snap.containers.iter().find(|c| c.id == id).unwrap();
    assert_eq!(c.source, Source::Cgroup);
    let anchor = docker_stats_memory(&id);
    let close = |a: u64, b: u64| (a as f64 - b as f64).abs() <= 0.05 * b as f64;
    assert!(
        close(c.memory_bytes, anchor),
        "berth {} vs docker stats {anchor}",
        c.memory_bytes
    );
    assert!(c.memory_bytes >= 24 << 20, "the 24 MiB in /dev/shm count");

    // A monitor that cannot read cgroup files asks Docker's one-shot stats.
    let blind = Monitor::new(
        env.docker.clone(),
        store,
        MonitorConfig {
            cgroup_root: "/nonexistent/berth-cgroup".into(),
            ..MonitorConfig::default()
        },
    );
    let snap = blind.collect().await;
    let c = snap.containers.iter().find(|c| c.id == id).unwrap();
    assert_eq!(c.source, Source::DockerStats);
    assert!(
        close(c.memory_bytes, anchor),
        "fallback {} vs docker stats {anchor}",
        c.memory_bytes
    );
    assert!(c.cpu_seconds >= 0.0);
}

#[tokio::test]
async fn a_day_of_points_draws_at_most_600_buckets_and_keeps_the_spike() {
    let (_dir, store) = store().await;
    let series = berth_store::metrics::series_id(&store, Scope::Server, "", "load1")
        .await
        .unwrap();
    let now = berth_store::now();
    // 24 h at 10 s: 8640 points, one spike.
    let mut tx = store.pool().begin().await.unwrap();
    for i in 0..8640 {
        let at = now - 86_400 + i * 10;
        let value = if i == 4321 { 50.0 } else { 1.0 };
        sqlx::query("INSERT INTO metric_points (series_id, at, value) VALUES (?, ?, ?)")
            .bind(series)
            .bind(at)
            .bind(value)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let env = TestEnv::new();
    let monitor = Monitor::new(env.docker.clone(), store, MonitorConfig::default());
    let day = monitor
        .history(Scope::Server, "", "load1", Range::Day)
        .await
        .unwrap();
    let chart = Chart::new("Load", Unit::Plain, &day);
    assert!(chart.points <= MAX_POINTS, "{} points", chart.points);
    assert!(
        chart.points > 500,
        "{} points: the day is covered",
        chart.points
    );
    assert_eq!(chart.peak, "50.00");
    assert_eq!(chart.line.matches('M').count(), 1, "no gaps in a full day");
}
