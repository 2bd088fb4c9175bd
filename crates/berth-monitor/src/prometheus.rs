//! The latest snapshot in Prometheus' text exposition format (0.0.4).
//! Containers use cAdvisor's metric names and the server node_exporter's, so
//! existing Grafana dashboards work. Written at scrape time from the
//! snapshot, so a removed container's series disappear with it.

use std::fmt::Write;

use crate::format::unix_time;
use crate::host::CPU_MODES;
use crate::snapshot::{Snapshot, Source};

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family being written: `# HELP`, `# TYPE`, then samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The exposition of `snapshot`; berth's own series (`berth_up`, the time
/// of the snapshot) come first.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(4096 + snapshot.containers.len() * 1500);
    Family::new(
        &mut out,
        "berth_metrics_collected_timestamp_seconds",
        "gauge",
        "When berth took the snapshot these figures come from.",
    )
    .sample(&[], snapshot.at as f64);
    server(&mut out, snapshot);
    containers(&mut out, snapshot);
    out
}

fn server(out: &mut String, snap: &Snapshot) {
    let s = &snap.server;
    let hz = s.ticks_per_second.max(1) as f64;
    let mut f = Family::new(
        out,
        "node_cpu_seconds_total",
        "counter",
        "Seconds the CPUs spent in each mode.",
    );
    for (i, core) in s.core_times.iter().enumerate() {
        let cpu = i.to_string();
        for (mode, ticks) in CPU_MODES.iter().zip(core.0) {
            f.sample(&[("cpu", &cpu), ("mode", mode)], ticks as f64 / hz);
        }
    }
    let load = [
        ("node_load1", "1m load average."),
        ("node_load5", "5m load average."),
        ("node_load15", "15m load average."),
    ];
    for (i, (name, help)) in load.into_iter().enumerate() {
        Family::new(out, name, "gauge", help).sample(&[], s.load[i]);
    }
    let m = &s.memory;
    for (name, help, v) in [
        (
            "node_memory_MemTotal_bytes",
            "Memory information field MemTotal_bytes.",
            m.total,
        ),
        (
            "node_memory_MemAvailable_bytes",
            "Memory information field MemAvailable_bytes.",
            m.available,
        ),
        (
            "node_memory_SwapTotal_bytes",
            "Memory information field SwapTotal_bytes.",
            m.swap_total,
        ),
        (
            "node_memory_SwapFree_bytes",
            "Memory information field SwapFree_bytes.",
            m.swap_free,
        ),
    ] {
        Family::new(out, name, "gauge", help).sample(&[], v as f64);
    }
    let mut rx = Family::new(
        out,
        "node_network_receive_bytes_total",
        "counter",
        "Network device statistic receive_bytes.",
    );
    for (dev, r, _) in &s.net {
        rx.sample(&[("device", dev)], *r as f64);
    }
    let mut tx = Family::new(
        out,
        "node_network_transmit_bytes_total",
        "counter",
        "Network device statistic transmit_bytes.",
    );
    for (dev, _, t) in &s.net {
        tx.sample(&[("device", dev)], *t as f64);
    }
    for (name, help, pick) in [
        (
            "node_filesystem_size_bytes",
            "Filesystem size in bytes.",
            (|d: &crate::host::DiskSpace| d.total) as fn(&crate::host::DiskSpace) -> u64,
        ),
        (
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
            |d| d.total - d.used,
        ),
        (
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
            |d| d.available,
        ),
    ] {
        let mut f = Family::new(out, name, "gauge", help);
        for d in &s.disks {
            f.sample(
                &[
                    ("device", &d.device),
                    ("fstype", &d.fs_type),
                    ("mountpoint", &d.mount),
                ],
                pick(d) as f64,
            );
        }
    }
    Family::new(
        out,
        "node_boot_time_seconds",
        "gauge",
        "Node boot time, in unixtime.",
    )
    .sample(&[], (snap.at - s.uptime_secs as i64) as f64);
    Family::new(
        out,
        "machine_cpu_cores",
        "gauge",
        "Number of logical CPU cores.",
    )
    .sample(&[], s.cores() as f64);
    Family::new(
        out,
        "machine_memory_bytes",
        "gauge",
        "Amount of memory installed on the machine.",
    )
    .sample(&[], m.total as f64);
}

fn containers(out: &mut String, snap: &Snapshot) {
    type Pick = fn(&crate::ContainerStats) -> Option<f64>;
    let families: [(&'static str, &str, &str, Pick); 12] = [
        (
            "container_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed in seconds.",
            |c| Some(c.cpu_seconds),
        ),
        (
            "container_memory_working_set_bytes",
            "gauge",
            "Current working set in bytes (usage minus inactive file cache, as docker stats shows).",
            |c| Some(c.memory_bytes as f64),
        ),
        (
            "container_spec_memory_limit_bytes",
            "gauge",
            "Memory limit for the container.",
            |c| c.memory_limit.map(|l| l as f64),
        ),
        (
            "container_spec_cpu_cores",
            "gauge",
            "CPU limit of the container in cores.",
            |c| c.cpu_limit,
        ),
        (
            "container_network_receive_bytes_total",
            "counter",
            "Cumulative count of bytes received.",
            |c| Some(c.net_rx_bytes as f64),
        ),
        (
            "container_network_transmit_bytes_total",
            "counter",
            "Cumulative count of bytes transmitted.",
            |c| Some(c.net_tx_bytes as f64),
        ),
        (
            "container_fs_reads_bytes_total",
            "counter",
            "Cumulative count of bytes read.",
            |c| Some(c.blk_read_bytes as f64),
        ),
        (
            "container_fs_writes_bytes_total",
            "counter",
            "Cumulative count of bytes written.",
            |c| Some(c.blk_write_bytes as f64),
        ),
        (
            "container_processes",
            "gauge",
            "Number of processes running inside the container.",
            |c| c.pids.map(|p| p as f64),
        ),
        (
            "container_oom_events_total",
            "counter",
            "Count of out of memory events observed for the container.",
            |c| c.oom_kills.map(|n| n as f64),
        ),
        (
            "container_start_time_seconds",
            "gauge",
            "Start time of the container since unix epoch in seconds.",
            |c| {
                c.started_at
                    .as_deref()
                    .and_then(unix_time)
                    .map(|t| t as f64)
            },
        ),
        (
            "berth_container_restarts_total",
            "counter",
            "Restarts of the container by its restart policy.",
            |c| Some(c.restarts as f64),
        ),
    ];
    for (name, kind, help, pick) in families {
        let mut f = Family::new(out, name, kind, help);
        for c in snap.containers.iter().filter(|c| c.source != Source::None) {
            let Some(v) = pick(c) else { continue };
            f.sample(
                &[
                    ("id", &format!("/docker/{}", c.id)),
                    ("name", &c.name),
                    ("image", &c.image),
                    ("berth_project", c.label("berth.project")),
                    ("berth_resource", c.label("berth.resource")),
                    ("berth_service", c.label("berth.service")),
                ],
                v,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_numbers_follow_the_text_format() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
