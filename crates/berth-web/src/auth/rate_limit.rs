//! Login throttling. Every attempt is reserved *before* its password is
//! checked, against both the client's address (IPv6 counted per /64, which
//! one host can fill) and the user name: after `MAX_FAILURES` failed or
//! still-running attempts on either within `WINDOW`, further attempts are
//! refused without hashing anything. So 50 parallel guesses cost at most
//! `MAX_FAILURES` hashes, not 50. A success clears both.
//!
//! Memory is bounded: past `MAX_ENTRIES` keys, the key whose last attempt
//! is oldest is evicted (an attacker spraying addresses forgets only the
//! stalest entries, never everyone at once).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: usize = 10;
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Keys (addresses and user names) remembered at most.
pub const MAX_ENTRIES: usize = 10_000;

/// What attempts are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// An IPv4 address, or the /64 an IPv6 address belongs to.
    Addr(IpAddr),
    /// A user name as typed, trimmed and lowercased.
    User(String),
}

impl Key {
    fn addr(ip: IpAddr) -> Key {
        match ip {
            IpAddr::V4(_) => Key::Addr(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::Addr(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Key::Addr(IpAddr::V6(prefix.into()))
                }
            },
        }
    }

    fn user(name: &str) -> Key {
        Key::User(name.trim().to_lowercase())
    }
}

#[derive(Default)]
pub struct LoginLimiter {
    /// Per key: the times of failed or reserved attempts within the window.
    attempts: Mutex<HashMap<Key, Vec<Instant>>>,
}

/// A reserved attempt: counts as a failure unless [`Attempt::succeeded`] is called.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: [Key; 2],
}

impl Attempt<'_> {
    /// The password was right: the address and the user name start afresh.
    pub fn succeeded(self) {
        let mut attempts = self.limiter.attempts.lock().expect("limiter poisoned");
        for key in &self.keys {
            attempts.remove(key);
        }
    }
}

impl LoginLimiter {
    /// Reserves an attempt for `ip` and `username`, or `None` when either has
    /// used up its attempts in the window (nothing is recorded then).
    pub fn reserve(&self, ip: IpAddr, username: &str) -> Option<Attempt<'_>> {
        let keys = [Key::addr(ip), Key::user(username)];
        let now = Instant::now();
        let mut attempts = self.attempts.lock().expect("limiter poisoned");
        let mut blocked = false;
        for key in &keys {
            if let Some(times) = attempts.get_mut(key) {
                times.retain(|t| now.duration_since(*t) < WINDOW);
                blocked |= times.len() >= MAX_FAILURES;
                if times.is_empty() {
                    attempts.remove(key);
                }
            }
        }
        if blocked {
            return None;
        }
        for key in &keys {
            if !attempts.contains_key(key) && attempts.len() >= MAX_ENTRIES {
                evict_stalest(&mut attempts);
            }
            attempts.entry(key.clone()).or_default().push(now);
        }
        Some(Attempt {
            limiter: self,
            keys,
        })
    }
}

/// Drops the key whose latest attempt is the oldest.
fn evict_stalest(attempts: &mut HashMap<Key, Vec<Instant>>) {
    let stalest = attempts
        .iter()
        .min_by_key(|(_, times)| times.last().copied())
        .map(|(key, _)| key.clone());
    if let Some(key) = stalest {
        attempts.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_blocked_after_too_many_failures_and_a_success_clears_it() {
        let limiter = LoginLimiter::default();
        for n in 0..MAX_FAILURES {
            assert!(
                limiter.reserve(ip("127.0.0.1"), &format!("u{n}")).is_some(),
                "attempt {n}"
            );
        }
        assert!(limiter.reserve(ip("127.0.0.1"), "other").is_none());
        assert!(limiter.reserve(ip("127.0.0.2"), "other").is_some());
        // A reservation that succeeds forgets the address.
        let limiter = LoginLimiter::default();
        for _ in 0..MAX_FAILURES - 1 {
            drop(limiter.reserve(ip("10.0.0.1"), "admin"));
        }
        limiter
            .reserve(ip("10.0.0.1"), "admin")
            .unwrap()
            .succeeded();
        assert!(limiter.reserve(ip("10.0.0.1"), "admin").is_some());
    }

    #[test]
    fn attempts_in_flight_count_before_their_hash_is_checked() {
        let limiter = LoginLimiter::default();
        let held: Vec<_> = (0..MAX_FAILURES)
            .map(|_| limiter.reserve(ip("127.0.0.1"), "admin").unwrap())
            .collect();
        assert!(limiter.reserve(ip("127.0.0.1"), "admin").is_none());
        drop(held);
        assert!(limiter.reserve(ip("127.0.0.1"), "admin").is_none());
    }

    #[test]
    fn one_user_name_is_limited_across_addresses() {
        let limiter = LoginLimiter::default();
        for n in 0..MAX_FAILURES {
            drop(limiter.reserve(ip(&format!("10.0.0.{n}")), " Admin "));
        }
        assert!(limiter.reserve(ip("10.9.9.9"), "admin").is_none());
        assert!(limiter.reserve(ip("10.9.9.9"), "someone").is_some());
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let limiter = LoginLimiter::default();
        for n in 0..MAX_FAILURES {
            drop(limiter.reserve(ip(&format!("2001:db8:1:2::{n:x}")), &format!("u{n}")));
        }
        assert!(limiter.reserve(ip("2001:db8:1:2:ffff::1"), "x").is_none());
        assert!(limiter.reserve(ip("2001:db8:1:3::1"), "x").is_some());
    }

    #[test]
    fn a_flood_of_keys_evicts_the_stalest_not_everyone() {
        let limiter = LoginLimiter::default();
        // Fill the table to its bound, one user name per address...
        for n in 0..(MAX_ENTRIES as u32 / 2 - 1) {
            let addr = IpAddr::V4((0x0a00_0000 + n).into());
            drop(limiter.reserve(addr, &format!("u{n}")));
        }
        // ...with an attack on "admin" among the newest entries.
        for _ in 0..MAX_FAILURES {
            drop(limiter.reserve(ip("192.0.2.1"), "admin"));
        }
        let len = || limiter.attempts.lock().unwrap().len();
        assert_eq!(len(), MAX_ENTRIES);
        // A newcomer past the bound pushes out the stalest pair only.
        assert!(limiter.reserve(ip("192.0.2.9"), "newcomer").is_some());
        assert_eq!(len(), MAX_ENTRIES);
        let attempts = limiter.attempts.lock().unwrap();
        assert!(!attempts.contains_key(&Key::user("u0")));
        assert!(!attempts.contains_key(&Key::addr(ip("10.0.0.0"))));
        assert!(attempts.contains_key(&Key::user("u1")));
        drop(attempts);
        assert!(limiter.reserve(ip("192.0.2.2"), "admin").is_none());
    }
}
