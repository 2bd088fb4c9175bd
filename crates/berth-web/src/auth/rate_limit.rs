//! Login throttling: after `MAX_FAILURES` failed logins from one address
//! within `WINDOW`, further attempts are refused until the window passes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: usize = 10;
pub const WINDOW: Duration = Duration::from_secs(5 * 60);

#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl LoginLimiter {
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let mut failures = self.failures.lock().expect("limiter poisoned");
        let now = Instant::now();
        let entry = failures.entry(ip).or_default();
        entry.retain(|t| now.duration_since(*t) < WINDOW);
        let blocked = entry.len() >= MAX_FAILURES;
        if entry.is_empty() {
            failures.remove(&ip);
        }
        blocked
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().expect("limiter poisoned");
        // Bound memory under a flood of addresses: forget the oldest state wholesale.
        if failures.len() > 10_000 {
            failures.clear();
        }
        failures.entry(ip).or_default().push(Instant::now());
    }

    pub fn record_success(&self, ip: IpAddr) {
        self.failures.lock().expect("limiter poisoned").remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_too_many_failures_and_forgets_on_success() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(!limiter.is_blocked(ip));
            limiter.record_failure(ip);
        }
        assert!(limiter.is_blocked(ip));
        assert!(!limiter.is_blocked("127.0.0.2".parse().unwrap()));
        limiter.record_success(ip);
        assert!(!limiter.is_blocked(ip));
    }
}
