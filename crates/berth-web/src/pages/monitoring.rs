//! The Monitoring page: the server card with its charts, and every container
//! in one table grouped by project and resource, busiest first (berth's own,
//! then, read-only, the others); one container's chart page. Sorting and
//! ranges are links: no JavaScript.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use berth_monitor::chart::{Chart, Tick};
use berth_monitor::format::{self, Unit};
use berth_monitor::{ContainerStats, Monitor, Range, Scope, Snapshot, Source};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::routes::{Access, Table};
use crate::views::{Chrome, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/monitoring", show);
    t.get(
        Access::Session,
        "/monitoring/containers/{container}",
        show_container,
    );
}

#[derive(Debug, Default, Deserialize)]
pub struct MonitoringQuery {
    /// `1h`, `24h`, `7d`, `30d`.
    #[serde(default)]
    range: String,
    /// The table's sort column.
    #[serde(default)]
    sort: String,
}

/// The table's sort columns: key, heading.
const SORTS: [(&str, &str); 6] = [
    ("cpu", "CPU"),
    ("memory", "Memory"),
    ("net", "Network"),
    ("block", "Block I/O"),
    ("restarts", "Restarts"),
    ("name", "Name"),
];

/// One chart as the partial draws it.
pub struct ChartView {
    pub title: String,
    pub view_box: String,
    pub line: String,
    pub band: String,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    pub label_y: f64,
    pub latest: String,
    pub peak: String,
    pub empty: bool,
    pub points: usize,
}

impl From<Chart> for ChartView {
    fn from(c: Chart) -> ChartView {
        ChartView {
            view_box: c.view_box(),
            title: c.title,
            line: c.line,
            band: c.band,
            y_ticks: c.y_ticks,
            x_ticks: c.x_ticks,
            label_y: c.label_y,
            latest: c.latest,
            peak: c.peak,
            empty: c.empty,
            points: c.points,
        }
    }
}

pub struct Link {
    pub label: String,
    pub href: String,
    pub current: bool,
}

pub struct CoreView {
    pub label: String,
    pub busy: String,
    /// 0–100, for the bar's width class.
    pub percent: u32,
}

pub struct DiskView {
    pub mount: String,
    pub device: String,
    pub used: String,
    pub total: String,
    pub percent: String,
    pub full: bool,
}

pub struct ServerView {
    pub cpu: String,
    pub cores: Vec<CoreView>,
    pub load: String,
    pub memory: String,
    pub swap: String,
    pub net_in: String,
    pub net_out: String,
    pub disks: Vec<DiskView>,
    pub uptime: String,
    /// Docker's own disk use: images, containers, volumes, build cache.
    pub docker_disk: Vec<(String, String)>,
}

pub struct ContainerRow {
    pub name: String,
    pub href: String,
    pub image: String,
    pub state: String,
    pub health: String,
    pub cpu: String,
    pub cpu_of_limit: String,
    pub memory: String,
    pub memory_limit: String,
    pub net: String,
    pub block: String,
    pub restarts: i64,
    pub oom: String,
    pub uptime: String,
    pub processes: String,
    pub source: &'static str,
}

pub struct ContainerGroup {
    pub title: String,
    pub managed: bool,
    pub rows: Vec<ContainerRow>,
}

#[derive(Template)]
#[template(path = "monitoring.html")]
pub struct MonitoringPage {
    pub chrome: Chrome,
    pub collected: bool,
    pub collected_at: String,
    pub interval: u64,
    pub cgroup: &'static str,
    pub problems: Vec<String>,
    pub server: ServerView,
    pub ranges: Vec<Link>,
    pub charts: Vec<ChartView>,
    pub sorts: Vec<Link>,
    pub groups: Vec<ContainerGroup>,
    pub container_count: usize,
}

#[derive(Template)]
#[template(path = "monitoring_container.html")]
pub struct ContainerMetricsPage {
    pub chrome: Chrome,
    pub name: String,
    pub row: Option<ContainerRow>,
    pub managed: bool,
    pub project: String,
    pub resource: String,
    pub service: String,
    pub processes: Vec<(String, String, String, String)>,
    pub ranges: Vec<Link>,
    pub charts: Vec<ChartView>,
}

fn range_of(query: &MonitoringQuery) -> Range {
    Range::parse(&query.range).unwrap_or(Range::Hour)
}

fn range_links(base: &str, current: Range, sort: &str) -> Vec<Link> {
    Range::ALL
        .into_iter()
        .map(|r| Link {
            label: r.as_str().to_owned(),
            href: if sort.is_empty() {
                format!("{base}?range={}", r.as_str())
            } else {
                format!("{base}?range={}&sort={sort}", r.as_str())
            },
            current: r == current,
        })
        .collect()
}

async fn chart(
    monitor: &Monitor,
    scope: Scope,
    target: &str,
    metric: &str,
    title: &str,
    unit: Unit,
    range: Range,
) -> Result<ChartView, WebError> {
    let series = monitor.history(scope, target, metric, range).await?;
    Ok(Chart::new(title, unit, &series).into())
}

/// The latest snapshot, or one taken now when the collector has not ticked yet.
async fn snapshot(monitor: &Monitor) -> std::sync::Arc<Snapshot> {
    match monitor.latest() {
        Some(s) => s,
        None => monitor.collect().await,
    }
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<MonitoringQuery>,
) -> Result<Html<String>, WebError> {
    let monitor = state.monitor()?;
    let range = range_of(&query);
    let sort = SORTS
        .iter()
        .find(|(k, _)| *k == query.sort)
        .map_or("cpu", |(k, _)| k);
    let snap = snapshot(monitor).await;
    let server = &snap.server;

    let docker_disk = monitor
        .docker_disk()
        .await
        .map(|d| {
            vec![
                ("Images".to_owned(), format::bytes(d.images_bytes)),
                ("Containers".to_owned(), format::bytes(d.containers_bytes)),
                ("Volumes".to_owned(), format::bytes(d.volumes_bytes)),
                ("Build cache".to_owned(), format::bytes(d.build_cache_bytes)),
            ]
        })
        .unwrap_or_default();
    let mem = &server.memory;
    let rate = |r: Option<f64>| r.map_or("…".to_owned(), |r| Unit::BytesPerSecond.show(r));
    let server_view = ServerView {
        cpu: server.cpu_busy.map_or("…".to_owned(), format::percent),
        cores: server
            .core_busy
            .iter()
            .enumerate()
            .map(|(i, b)| CoreView {
                label: format!("cpu{i}"),
                busy: b.map_or("…".to_owned(), format::percent),
                percent: b.map_or(0, |b| (b * 100.0).round() as u32),
            })
            .collect(),
        load: format!(
            "{:.2} {:.2} {:.2}",
            server.load[0], server.load[1], server.load[2]
        ),
        memory: format!(
            "{} of {}",
            format::bytes(mem.used()),
            format::bytes(mem.total)
        ),
        swap: if mem.swap_total == 0 {
            "none".to_owned()
        } else {
            format!(
                "{} of {}",
                format::bytes(mem.swap_used()),
                format::bytes(mem.swap_total)
            )
        },
        net_in: rate(server.net_rx_rate),
        net_out: rate(server.net_tx_rate),
        disks: server
            .disks
            .iter()
            .map(|d| DiskView {
                mount: d.mount.clone(),
                device: d.device.clone(),
                used: format::bytes(d.used),
                total: format::bytes(d.total),
                percent: format::percent(d.used_ratio()),
                full: d.used_ratio() >= 0.9,
            })
            .collect(),
        uptime: format::duration(server.uptime_secs),
        docker_disk,
    };

    let mut charts = Vec::new();
    for (metric, title, unit) in [
        ("cpu", "CPU (all cores)", Unit::Ratio),
        ("memory", "Memory used", Unit::Bytes),
        ("load1", "Load (1 min)", Unit::Plain),
        ("net_rx", "Network in", Unit::BytesPerSecond),
        ("net_tx", "Network out", Unit::BytesPerSecond),
    ] {
        charts.push(chart(monitor, Scope::Server, "", metric, title, unit, range).await?);
    }

    let running: Vec<String> = snap
        .containers
        .iter()
        .filter(|c| c.state == "running")
        .map(|c| c.id.clone())
        .collect();
    let processes = monitor.processes(&running).await;
    let cores = server.cores();
    let groups = group(&snap.containers, &processes, cores, sort, snap.at);

    Ok(render(&MonitoringPage {
        chrome: Chrome::from(&user),
        collected: monitor.latest().is_some(),
        collected_at: format!("{}s ago", (berth_core::unix_now() - snap.at).max(0)),
        interval: monitor.interval().as_secs(),
        cgroup: match snap.cgroup {
            berth_monitor::cgroup::CgroupVersion::V1 => "cgroup v1",
            berth_monitor::cgroup::CgroupVersion::V2 => "cgroup v2",
        },
        problems: snap.problems.clone(),
        server: server_view,
        ranges: range_links("/monitoring", range, sort),
        charts,
        sorts: SORTS
            .iter()
            .map(|(k, label)| Link {
                label: (*label).to_owned(),
                href: format!("/monitoring?range={}&sort={k}", range.as_str()),
                current: *k == sort,
            })
            .collect(),
        container_count: snap.containers.len(),
        groups,
    }))
}

/// Groups by project and resource (berth's containers first, then the
/// others), sorts each group by `sort` and the groups by their busiest member.
fn group(
    containers: &[ContainerStats],
    processes: &HashMap<String, Vec<berth_docker::ProcessInfo>>,
    cores: usize,
    sort: &str,
    at: i64,
) -> Vec<ContainerGroup> {
    let key = |c: &ContainerStats| -> f64 {
        match sort {
            "memory" => c.memory_bytes as f64,
            "net" => c.net_rx_rate.unwrap_or(0.0) + c.net_tx_rate.unwrap_or(0.0),
            "block" => c.blk_read_rate.unwrap_or(0.0) + c.blk_write_rate.unwrap_or(0.0),
            "restarts" => c.restarts as f64,
            _ => c.cpu_cores.unwrap_or(0.0),
        }
    };
    let mut by_group: Vec<(String, bool, Vec<&ContainerStats>)> = Vec::new();
    for c in containers {
        let managed = c.managed();
        let title = if managed {
            let project = c.label("berth.project");
            let resource = match c.label("berth.resource") {
                "" => c.label("berth.app"),
                r => r,
            };
            match (project, resource) {
                ("", "") => "berth".to_owned(),
                (p, "") => p.to_owned(),
                ("", r) => r.to_owned(),
                (p, r) => format!("{p} / {r}"),
            }
        } else {
            "Other containers (not berth's, read-only)".to_owned()
        };
        match by_group
            .iter_mut()
            .find(|(t, m, _)| *t == title && *m == managed)
        {
            Some((_, _, members)) => members.push(c),
            None => by_group.push((title, managed, vec![c])),
        }
    }
    let by_name = sort == "name";
    for (_, _, members) in &mut by_group {
        if by_name {
            members.sort_by(|a, b| a.name.cmp(&b.name));
        } else {
            members.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.name.cmp(&b.name)));
        }
    }
    let busiest =
        |members: &Vec<&ContainerStats>| members.iter().map(|c| key(c)).fold(0.0, f64::max);
    by_group.sort_by(|a, b| {
        // berth's own first; then busiest first (or by name).
        b.1.cmp(&a.1).then_with(|| {
            if by_name {
                a.0.cmp(&b.0)
            } else {
                busiest(&b.2).total_cmp(&busiest(&a.2)).then(a.0.cmp(&b.0))
            }
        })
    });
    by_group
        .into_iter()
        .map(|(title, managed, members)| ContainerGroup {
            title,
            managed,
            rows: members
                .into_iter()
                .map(|c| row(c, processes.get(&c.id), cores, at))
                .collect(),
        })
        .collect()
}

fn row(
    c: &ContainerStats,
    processes: Option<&Vec<berth_docker::ProcessInfo>>,
    cores: usize,
    at: i64,
) -> ContainerRow {
    let rate = |r: Option<f64>| r.map_or("…".to_owned(), |r| Unit::BytesPerSecond.show(r));
    let measured = c.source != Source::None;
    let names = processes
        .map(|list| {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for p in list {
                let name = p.name().to_owned();
                match counts.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((name, 1)),
                }
            }
            counts
                .into_iter()
                .map(|(n, k)| if k > 1 { format!("{n} ×{k}") } else { n })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    ContainerRow {
        name: c.name.clone(),
        href: format!("/monitoring/containers/{}", c.name),
        image: c.image.clone(),
        state: c.state.clone(),
        health: c.health.clone().unwrap_or_default(),
        cpu: if measured {
            c.cpu_cores.map_or("…".to_owned(), format::cores)
        } else {
            String::new()
        },
        cpu_of_limit: c
            .cpu_of_limit(cores)
            .map(|r| {
                let of = if c.cpu_limit.is_some() {
                    "of limit"
                } else {
                    "of host"
                };
                format!("{} {of}", format::percent(r))
            })
            .unwrap_or_default(),
        memory: if measured {
            format::bytes(c.memory_bytes)
        } else {
            String::new()
        },
        memory_limit: match (c.memory_limit, c.memory_of_limit()) {
            (Some(l), Some(r)) => format!("{} of {}", format::percent(r), format::bytes(l)),
            _ if measured => "no limit".to_owned(),
            _ => String::new(),
        },
        net: if measured {
            format!("↓ {} ↑ {}", rate(c.net_rx_rate), rate(c.net_tx_rate))
        } else {
            String::new()
        },
        block: if measured {
            format!("r {} w {}", rate(c.blk_read_rate), rate(c.blk_write_rate))
        } else {
            String::new()
        },
        restarts: c.restarts,
        oom: match (c.oom_kills, c.oom_killed) {
            (Some(n), true) => format!("{n} (last exit)"),
            (Some(n), false) => n.to_string(),
            (None, true) => "last exit".to_owned(),
            (None, false) => String::new(),
        },
        uptime: if c.state == "running" {
            c.started_at
                .as_deref()
                .and_then(format::unix_time)
                .map(|t| format::duration((at - t).max(0) as u64))
                .unwrap_or_default()
        } else {
            String::new()
        },
        processes: names,
        source: match c.source {
            Source::Cgroup => "cgroup files",
            Source::DockerStats => "Docker stats",
            Source::None => "",
        },
    }
}

pub async fn show_container(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(name): Path<String>,
    Query(query): Query<MonitoringQuery>,
) -> Result<Html<String>, WebError> {
    let monitor = state.monitor()?;
    let range = range_of(&query);
    let snap = snapshot(monitor).await;
    let current = snap.containers.iter().find(|c| c.name == name);
    // A container that is gone still has its history; an unknown name with
    // no history at all is not found.
    let known_history = monitor
        .history(Scope::Container, &name, "memory", Range::Month)
        .await?;
    if current.is_none() && known_history.buckets.is_empty() {
        return Err(WebError::NotFound("container"));
    }
    let processes = match current.filter(|c| c.state == "running") {
        Some(c) => monitor
            .processes(std::slice::from_ref(&c.id))
            .await
            .remove(&c.id)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut charts = Vec::new();
    for (metric, title, unit) in [
        ("cpu", "CPU (cores)", Unit::Cores),
        ("memory", "Memory", Unit::Bytes),
        ("net_rx", "Network in", Unit::BytesPerSecond),
        ("net_tx", "Network out", Unit::BytesPerSecond),
        ("blk_read", "Block read", Unit::BytesPerSecond),
        ("blk_write", "Block write", Unit::BytesPerSecond),
    ] {
        charts.push(chart(monitor, Scope::Container, &name, metric, title, unit, range).await?);
    }
    let cores = snap.server.cores();
    Ok(render(&ContainerMetricsPage {
        chrome: Chrome::from(&user),
        row: current.map(|c| row(c, Some(&processes), cores, snap.at)),
        managed: current.is_some_and(ContainerStats::managed),
        project: current
            .map(|c| c.label("berth.project").to_owned())
            .unwrap_or_default(),
        resource: current
            .map(|c| c.label("berth.resource").to_owned())
            .unwrap_or_default(),
        service: current
            .map(|c| c.label("berth.service").to_owned())
            .unwrap_or_default(),
        processes: processes
            .iter()
            .map(|p| {
                (
                    p.pid.clone(),
                    p.user.clone(),
                    p.name().to_owned(),
                    p.command.clone(),
                )
            })
            .collect(),
        ranges: range_links(&format!("/monitoring/containers/{name}"), range, ""),
        charts,
        name,
    }))
}
