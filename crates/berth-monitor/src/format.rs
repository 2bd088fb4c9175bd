//! Figures as people read them.

/// What a metric's numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes (memory, disk).
    Bytes,
    /// Bytes per second (network, block I/O).
    BytesPerSecond,
    /// Cores busy (a container's CPU).
    Cores,
    /// A share 0–1 shown as percent (the server's CPU).
    Ratio,
    /// A plain number (load).
    Plain,
}

impl Unit {
    /// `value` in this unit, short.
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Bytes => bytes(value.max(0.0) as u64),
            Unit::BytesPerSecond => format!("{}/s", bytes(value.max(0.0) as u64)),
            Unit::Cores => cores(value),
            Unit::Ratio => percent(value),
            Unit::Plain => format!("{value:.2}"),
        }
    }
}

/// `1.5 GiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `0.25 cores`, `1.0 core`.
pub fn cores(value: f64) -> String {
    if value < 0.995 {
        format!("{value:.2} cores")
    } else if (value - 1.0).abs() < 0.005 {
        "1.00 core".to_owned()
    } else {
        format!("{value:.2} cores")
    }
}

/// A share 0–1 as `42.0 %`.
pub fn percent(ratio: f64) -> String {
    format!("{:.1} %", ratio * 100.0)
}

/// `3d 4h`, `5h 2m`, `12m`, `40s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{secs}s")
    }
}

/// Seconds since the epoch of an RFC 3339 time (Docker's `StartedAt`).
pub fn unix_time(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_like_a_person_would_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(300 * 1024 * 1024), "300 MiB");
        assert_eq!(cores(0.25), "0.25 cores");
        assert_eq!(percent(0.421), "42.1 %");
        assert_eq!(duration(40), "40s");
        assert_eq!(duration(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(Unit::BytesPerSecond.show(2048.0), "2.0 KiB/s");
        assert_eq!(
            unix_time("2026-12-08T00:38:38.123456789Z"),
            Some(1_796_690_318)
        );
    }
}
