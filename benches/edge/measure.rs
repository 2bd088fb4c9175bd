//! Driving a setup with wrk and reading what it cost: requests/s, latency,
//! failed requests and the CPU time the proxy's own processes or threads used.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Plan {
    /// One round of wrk against one setup.
    pub duration: Duration,
    /// Rounds per setup. The machine's load drifts (other tenants, CPU
    /// boost), so setups take turns in rotating order and the median
    /// round counts, instead of one long run each that may catch a bad minute.
    pub rounds: usize,
    pub connections: u32,
}

/// One thing to measure: a name for the report, the URL wrk drives, and
/// whose CPU time counts as the proxy's.
pub struct Setup<'a> {
    pub name: &'a str,
    pub url: String,
    pub cpu: &'a Cpu,
}

pub struct Figures {
    pub requests: u64,
    /// CPU time the proxy used per request (its own threads or processes only).
    pub cpu_us_per_request: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Socket errors (connect, read, write, timeout) and non-2xx answers.
    pub errors: u64,
}

/// Prints one setup's figures on a line.
pub fn report(name: &str, f: &Figures) {
    let mut line = format!(
        "{name}: {:>9.0} req/s  p50 {:>6.3} ms  p99 {:>6.3} ms  CPU {:>5.1} us/req",
        f.requests_per_sec, f.p50_ms, f.p99_ms, f.cpu_us_per_request
    );
    if f.errors > 0 {
        line.push_str(&format!("  ({} failed requests)", f.errors));
    }
    println!("{line}");
}

/// Prints `f`'s figures as ratios to another setup's (`other`, named `against`).
pub fn compare(name: &str, f: &Figures, against: &str, other: &Figures) {
    println!(
        "{name} vs {against}: throughput x{:.2}, p99 {:+.3} ms, CPU per request x{:.2}",
        f.requests_per_sec / other.requests_per_sec,
        f.p99_ms - other.p99_ms,
        f.cpu_us_per_request / other.cpu_us_per_request
    );
}

/// Measures each setup `plan.rounds` times, taking turns in rotating order
/// (A B C, B C A, ...), and gives each setup's median figures (each
/// figure's own median).
pub fn rounds(plan: &Plan, setups: &[Setup<'_>]) -> anyhow::Result<Vec<Figures>> {
    let mut runs: Vec<Vec<Figures>> = setups.iter().map(|_| Vec::new()).collect();
    for round in 0..plan.rounds {
        for i in 0..setups.len() {
            let at = (i + round) % setups.len();
            runs[at].push(wrk(plan, &setups[at].url, setups[at].cpu)?);
        }
    }
    // Each round too: the spread between rounds says what a difference
    // between medians is worth on this machine.
    for (setup, figures) in setups.iter().zip(&runs) {
        let each = |f: fn(&Figures) -> f64, digits: usize| {
            figures
                .iter()
                .map(|r| format!("{:.digits$}", f(r)))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!(
            "  rounds {}: {} req/s, CPU {} us/req",
            setup.name,
            each(|r| r.requests_per_sec, 0),
            each(|r| r.cpu_us_per_request, 1)
        );
    }
    Ok(runs.iter().map(|r| median(r)).collect())
}

fn median(runs: &[Figures]) -> Figures {
    let mid = |f: fn(&Figures) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Figures {
        requests: runs.iter().map(|r| r.requests).sum(),
        cpu_us_per_request: mid(|r| r.cpu_us_per_request),
        requests_per_sec: mid(|r| r.requests_per_sec),
        p50_ms: mid(|r| r.p50_ms),
        p99_ms: mid(|r| r.p99_ms),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

/// Runs wrk against `url` after a one-second warm-up and measures the CPU
/// the proxy (`cpu`) used meanwhile.
pub fn wrk(plan: &Plan, url: &str, cpu: &Cpu) -> anyhow::Result<Figures> {
    // A short first round, not counted, so that connections and caches are
    // warm and the setup measured first is not the one that pays for it.
    run_wrk(plan.connections, Duration::from_secs(1), url)?;
    let cpu_before = cpu.ns();
    let started = Instant::now();
    let mut figures = run_wrk(plan.connections, plan.duration, url)?;
    let cpu_ns = cpu.ns().saturating_sub(cpu_before);
    figures.cpu_us_per_request = cpu_ns as f64 / 1000.0 / figures.requests.max(1) as f64;
    if started.elapsed() > plan.duration * 3 {
        eprintln!(
            "warning: wrk took {:?} for a {:?} run",
            started.elapsed(),
            plan.duration
        );
    }
    Ok(figures)
}

/// One `wrk -t2 --latency` run over keep-alive connections, parsed.
pub fn run_wrk(connections: u32, duration: Duration, url: &str) -> anyhow::Result<Figures> {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}")])
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .args(["--latency", "--timeout", "5s", url])
        .stderr(Stdio::piped())
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("unexpected wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<Figures> {
    let mut figures = Figures {
        requests: 0,
        cpu_us_per_request: 0.0,
        requests_per_sec: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    for line in text.lines().map(str::trim) {
        if let Some((n, _)) = line.split_once(" requests in ") {
            figures.requests = n.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("Requests/sec:") {
            figures.requests_per_sec = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("50%") {
            figures.p50_ms = wrk_ms(v.trim())?;
        } else if let Some(v) = line.strip_prefix("99%") {
            figures.p99_ms = wrk_ms(v.trim())?;
        } else if line.starts_with("Non-2xx") || line.starts_with("Socket errors") {
            figures.errors += line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    (figures.requests_per_sec > 0.0).then_some(figures)
}

/// wrk prints `812.00us`, `1.23ms` or `1.05s`.
fn wrk_ms(value: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// Whose CPU time counts as a proxy's: threads of this process by name
/// (berth's edge in-process), or whole processes with all their threads
/// (nginx's master and workers, HAProxy, `berth serve`).
pub struct Cpu {
    pids: Vec<u32>,
    /// Only threads whose name starts so (`comm`), or all.
    name_prefix: Option<&'static str>,
}

impl Cpu {
    /// The threads of this process whose names start with `prefix`.
    pub fn threads_named(prefix: &'static str) -> Cpu {
        Cpu {
            pids: vec![std::process::id()],
            name_prefix: Some(prefix),
        }
    }

    /// Process `pid` and its child processes (as they are now), every thread.
    pub fn process_tree(pid: u32) -> Cpu {
        Cpu {
            pids: std::iter::once(pid).chain(children(pid)).collect(),
            name_prefix: None,
        }
    }

    /// Nanoseconds on CPU so far, from `/proc/<pid>/task/<tid>/schedstat`
    /// (nanoseconds, where `/proc/<pid>/stat` counts clock ticks of 10 ms).
    pub fn ns(&self) -> u64 {
        let mut total = 0;
        for pid in &self.pids {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let path = task.path();
                let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
                if self.name_prefix.is_some_and(|p| !name.starts_with(p)) {
                    continue;
                }
                let stat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
                total += stat
                    .split_whitespace()
                    .next()
                    .and_then(|ns| ns.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        total
    }
}

/// The pids whose parent is `parent` (nginx's workers).
fn children(parent: u32) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The fields after the `(comm)`: state, then ppid.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}
