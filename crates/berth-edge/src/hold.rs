//! Holding an app's requests while a "recreate" deploy swaps its container
//! (stop the old one, start the new one on the same volumes, health-check
//! it): requests wait at the edge instead of failing, and go on to whatever
//! the route table says once the deploy releases the hold.
//!
//! While nothing is held, a request reads one atomic counter and nothing
//! else: no lock, no map.
//!
//! The released requests then reach a container that has just started, all
//! at once: [`Ramp`] paces the connections they open to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

/// The holds in force and the requests waiting on them.
#[derive(Default)]
pub(crate) struct Holds {
    /// Live [`HoldGuard`]s. Zero (the usual case) means nothing else is read.
    active: AtomicUsize,
    /// Requests waiting now.
    waiting: AtomicUsize,
    state: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    holds: Vec<Hold>,
}

struct Hold {
    id: u64,
    app: String,
    upstream: Option<SocketAddr>,
    limit: Duration,
    /// Becomes true (or closes) when the guard goes.
    released: watch::Receiver<bool>,
    /// Shared by the requests this hold releases.
    ramp: Arc<Ramp>,
}

impl Hold {
    /// Whether a route to `app` at `upstream` is held by this hold: by address
    /// when the route has one, by the app's name when it has none (the old
    /// container is stopped and the new one not published yet).
    fn covers(&self, app: &str, upstream: Option<SocketAddr>) -> bool {
        match upstream {
            Some(addr) => self.upstream == Some(addr),
            None => self.app == app,
        }
    }
}

impl Holds {
    /// Whether any hold is in force: the only check on a request's path while none is.
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.active.load(Ordering::Relaxed) != 0
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn hold(
        self: &Arc<Self>,
        app: &str,
        upstream: Option<SocketAddr>,
        limit: Duration,
    ) -> HoldGuard {
        let (released, receiver) = watch::channel(false);
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.holds.push(Hold {
            id,
            app: app.to_owned(),
            upstream,
            limit,
            released: receiver,
            ramp: Arc::default(),
        });
        // Counted once the hold is in the list, so a request that sees the
        // count finds the hold.
        self.active.fetch_add(1, Ordering::Relaxed);
        drop(state);
        HoldGuard {
            holds: self.clone(),
            id,
            released,
        }
    }

    /// What a request to `app` at `upstream` must wait for, if anything: the
    /// release of every hold that covers it, at most the longest of their limits.
    pub(crate) fn covering(&self, app: &str, upstream: Option<SocketAddr>) -> Option<Wait> {
        let state = self.lock();
        let mut covering = state.holds.iter().filter(|h| h.covers(app, upstream));
        let first = covering.next()?;
        let mut wait = Wait {
            released: vec![first.released.clone()],
            limit: first.limit,
            // Overlapping holds are one switch of one app: one ramp paces it.
            ramp: first.ramp.clone(),
        };
        for hold in covering {
            wait.released.push(hold.released.clone());
            wait.limit = wait.limit.max(hold.limit);
        }
        Some(wait)
    }

    /// Counts a request as waiting until the returned guard is dropped (also
    /// when the client goes away and its request is cancelled).
    pub(crate) fn start_waiting(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting {
            holds: self.clone(),
            since: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The holds one request waits for.
pub(crate) struct Wait {
    released: Vec<watch::Receiver<bool>>,
    /// The longest limit among them.
    pub(crate) limit: Duration,
    /// Paces the request once released.
    pub(crate) ramp: Arc<Ramp>,
}

impl Wait {
    /// Waits until every hold is released; false when `deadline` came first.
    pub(crate) async fn released_by(mut self, deadline: Instant) -> bool {
        let all = futures_util::future::join_all(self.released.iter_mut().map(|rx| async move {
            // An error means the guard is gone: released just the same.
            let _ = rx.wait_for(|released| *released).await;
        }));
        tokio::time::timeout_at(deadline, all).await.is_ok()
    }
}

/// How many requests released from one hold may be opening a connection to
/// the app at once, to begin with. A freshly started app may listen with a
/// short backlog and accept slowly (busybox httpd: 9, Python's socketserver:
/// 5); when a release sends every held request at once, the connections
/// beyond the backlog have their SYN dropped and the kernel sends it again
/// only after its initial 1 s timeout.
const RAMP_START: usize = 4;

/// How long a released request keeps its [`Ramp`] slot while its answer
/// does not come: a long poll must not stop the others. Well under the 1 s
/// a dropped SYN costs.
const RAMP_PATIENCE: Duration = Duration::from_millis(200);

/// Paces the requests released from one hold that have no connection to the
/// new upstream yet, like TCP's slow start: [`RAMP_START`] at a time, and one
/// more for each that gets its answer, so the pace doubles with every round
/// trip and a quick app takes the whole herd within milliseconds. A slot is
/// held until the answer's head arrives, not just the TCP connect: through
/// docker-proxy the connect succeeds at once, whatever the app's backlog.
pub(crate) struct Ramp {
    slots: Semaphore,
}

impl Default for Ramp {
    fn default() -> Self {
        Ramp {
            slots: Semaphore::new(RAMP_START),
        }
    }
}

impl Ramp {
    /// Runs `send` (a request that may open a connection) in a slot.
    pub(crate) async fn paced<T, E>(
        &self,
        send: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        // Never closed, so acquiring only waits.
        let slot = self.slots.acquire().await.ok();
        let mut send = std::pin::pin!(send);
        match tokio::time::timeout(RAMP_PATIENCE, &mut send).await {
            Ok(result) => {
                if result.is_ok() {
                    self.slots.add_permits(1);
                }
                result
            }
            Err(_) => {
                drop(slot);
                send.await
            }
        }
    }
}

/// One request counted in [`crate::Edge::held`].
pub(crate) struct Waiting {
    holds: Arc<Holds>,
    since: Instant,
}

impl Waiting {
    /// When the request started waiting: its limits count from here.
    pub(crate) fn since(&self) -> Instant {
        self.since
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.holds.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps an app's requests waiting at the edge (see [`crate::Edge::hold`])
/// until it is dropped or [`released`](HoldGuard::release).
#[must_use = "the hold ends when the guard is dropped"]
pub struct HoldGuard {
    holds: Arc<Holds>,
    id: u64,
    released: watch::Sender<bool>,
}

impl HoldGuard {
    /// Ends the hold: the requests waiting on it (and on no other hold)
    /// read the route table again and go on. The same as dropping the guard.
    pub fn release(self) {}
}

impl std::fmt::Debug for HoldGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HoldGuard").field("id", &self.id).finish()
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        let mut state = self.holds.lock();
        state.holds.retain(|h| h.id != self.id);
        self.holds.active.fetch_sub(1, Ordering::Relaxed);
        drop(state);
        self.released.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's default hold (deploy settings' `hold_secs`).
    const DEFAULT_HOLD_LIMIT: Duration = Duration::from_secs(10);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_hold_covers_its_upstream_and_its_app_without_one() {
        let holds = Arc::new(Holds::default());
        assert!(!holds.any());
        let _hold = holds.hold("web", Some(addr(1)), DEFAULT_HOLD_LIMIT);
        assert!(holds.any());
        // The old container, whichever name routes to it.
        assert!(holds.covering("web", Some(addr(1))).is_some());
        assert!(holds.covering("other", Some(addr(1))).is_some());
        // The app while it has no upstream; not another app without one.
        assert!(holds.covering("web", None).is_some());
        assert!(holds.covering("other", None).is_none());
        // The app at its new upstream is not held.
        assert!(holds.covering("web", Some(addr(2))).is_none());
    }

    #[tokio::test]
    async fn overlapping_holds_are_counted_and_the_longest_limit_counts() {
        let holds = Arc::new(Holds::default());
        let first = holds.hold("web", Some(addr(1)), Duration::from_secs(1));
        let second = holds.hold("web", Some(addr(1)), Duration::from_secs(5));
        let wait = holds.covering("web", Some(addr(1))).unwrap();
        assert_eq!(wait.limit, Duration::from_secs(5));

        first.release();
        assert!(holds.any());
        let still = holds.covering("web", Some(addr(1))).unwrap();
        assert_eq!(still.limit, Duration::from_secs(5));
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(
            !still.released_by(soon).await,
            "one hold is left, so the request still waits"
        );

        second.release();
        assert!(!holds.any());
        assert!(holds.covering("web", Some(addr(1))).is_none());
        // A request that took its receivers before the release goes on.
        assert!(wait.released_by(Instant::now() + DEFAULT_HOLD_LIMIT).await);
    }

    #[test]
    fn a_waiting_request_is_counted_until_it_stops_waiting() {
        let holds = Arc::new(Holds::default());
        let waiting = holds.start_waiting();
        assert_eq!(holds.waiting(), 1);
        drop(waiting);
        assert_eq!(holds.waiting(), 0);
    }
}
