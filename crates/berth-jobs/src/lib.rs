#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_store::jobs::{JobRow, JobStatus, NewJob};
use berth_store::{Store, StoreError};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

pub use berth_store::jobs::{JobRow as StoredJob, JobStatus as Status};

/// A boxed future, as handlers return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no handler is registered for jobs of kind {0:?}")]
    UnknownKind(String),
    /// A job with the same dedup key is queued or running.
    #[error("a job with key {key:?} is already queued or running (job {existing})")]
    Duplicate { key: String, existing: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One run of a job, as its handler gets it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    /// 1 for the first try.
    pub attempt: i64,
    /// Cancelled by [`Runner::cancel`] or when the runner shuts down.
    pub cancel: CancellationToken,
}

/// How a run ended, as its handler says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Failed; tried again after a backoff while attempts remain.
    Retry(String),
    /// Failed for good (bad input, a refused request): never retried.
    Failed(String),
    Cancelled,
}

/// What a kind of job does. The runner knows nothing else about it.
pub trait Handler: Send + Sync + 'static {
    fn run(&self, job: Job) -> BoxFuture<Outcome>;

    /// Removes what a run cut off by berth's death left behind (partial
    /// files, containers…). Called once at start for each such job, before
    /// the job is retried or given up.
    fn cleanup(&self, job: StoredJob) -> BoxFuture<()> {
        let _ = job;
        Box::pin(async {})
    }
}

/// Retries of one kind.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Tries in all (1: never retried).
    pub max_attempts: i64,
    /// The wait after the first failure; doubled after each next one.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Whether a job interrupted by berth's death is tried again.
    pub retry_interrupted: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            retry_interrupted: true,
        }
    }
}

impl Policy {
    /// The wait before try `attempt + 1`, after try `attempt` failed.
    pub fn backoff_after(&self, attempt: i64) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        self.backoff
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max_backoff)
    }
}

/// When and how a job is queued.
#[derive(Debug, Clone, Default)]
pub struct Enqueue {
    /// No second job with this key while one is queued or running.
    pub dedup_key: Option<String>,
    /// Unix seconds; `None`: now.
    pub run_at: Option<i64>,
}

struct Kind {
    handler: Arc<dyn Handler>,
    policy: Policy,
}

/// The runner: one per process.
pub struct Runner {
    store: Store,
    kinds: HashMap<String, Kind>,
    running: Mutex<HashMap<i64, CancellationToken>>,
    wake: Notify,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Runner`] with a handler per kind.
pub struct RunnerBuilder {
    store: Store,
    kinds: HashMap<String, Kind>,
    concurrency: usize,
}

impl RunnerBuilder {
    pub fn register(mut self, kind: &str, policy: Policy, handler: Arc<dyn Handler>) -> Self {
        self.kinds.insert(kind.to_owned(), Kind { handler, policy });
        self
    }

    /// How many jobs run at once (default 2).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    pub fn build(self) -> Arc<Runner> {
        Arc::new(Runner {
            store: self.store,
            kinds: self.kinds,
            running: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            slots: Arc::new(Semaphore::new(self.concurrency)),
        })
    }
}

impl Runner {
    pub fn builder(store: Store) -> RunnerBuilder {
        RunnerBuilder {
            store,
            kinds: HashMap::new(),
            concurrency: 2,
        }
    }

    fn kind_names(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    /// Queues a job and wakes the runner; returns its id.
    pub async fn enqueue(
        &self,
        kind: &str,
        payload: &str,
        options: Enqueue,
    ) -> Result<i64, JobError> {
        let k = self
            .kinds
            .get(kind)
            .ok_or_else(|| JobError::UnknownKind(kind.to_owned()))?;
        let new = NewJob {
            kind,
            payload,
            dedup_key: options.dedup_key.as_deref(),
            max_attempts: k.policy.max_attempts,
            run_at: options.run_at.unwrap_or_else(berth_store::now),
        };
        match berth_store::jobs::enqueue(&self.store, &new).await {
            Ok(row) => {
                tracing::debug!(job.id = row.id, job.kind = kind, "job queued");
                self.wake.notify_one();
                Ok(row.id)
            }
            Err(StoreError::AlreadyExists { .. }) => {
                let key = options.dedup_key.unwrap_or_default();
                let existing = berth_store::jobs::find_active(&self.store, &key)
                    .await?
                    .map_or(0, |j| j.id);
                Err(JobError::Duplicate { key, existing })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(&self, id: i64) -> Result<StoredJob, JobError> {
        Ok(berth_store::jobs::get(&self.store, id).await?)
    }

    /// The queued or running job with this dedup key.
    pub async fn find_active(&self, dedup_key: &str) -> Result<Option<StoredJob>, JobError> {
        Ok(berth_store::jobs::find_active(&self.store, dedup_key).await?)
    }

    /// Cancels a job: a queued one never runs; a running one's token is
    /// cancelled (its handler stops it). False when it had ended already.
    pub async fn cancel(&self, id: i64) -> Result<bool, JobError> {
        if berth_store::jobs::cancel_queued(&self.store, id).await? {
            return Ok(true);
        }
        let token = self
            .running
            .lock()
            .expect("running poisoned")
            .get(&id)
            .cloned();
        Ok(match token {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        })
    }

    /// At start, before [`Runner::start`]: the jobs that were running when
    /// berth died are marked interrupted, handed to their kind's cleanup,
    /// then queued again when their policy says so. Returns them.
    pub async fn recover(&self) -> Result<Vec<StoredJob>, JobError> {
        let interrupted = berth_store::jobs::mark_interrupted(&self.store).await?;
        for job in &interrupted {
            tracing::warn!(job.id = job.id, job.kind = %job.kind, "job interrupted: berth stopped while it ran");
            let Some(kind) = self.kinds.get(&job.kind) else {
                continue;
            };
            kind.handler.cleanup(job.clone()).await;
            if kind.policy.retry_interrupted && job.attempts < job.max_attempts {
                match berth_store::jobs::retry_interrupted(&self.store, job.id, berth_store::now())
                    .await
                {
                    Ok(()) => {}
                    // A newer job with its key is queued already: it does the work.
                    Err(StoreError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(interrupted)
    }

    /// Runs jobs until `shutdown`: claims due jobs while a slot is free,
    /// sleeps until the next is due or one is queued.
    pub fn start(self: &Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let runner = self.clone();
        tokio::spawn(async move {
            loop {
                if shutdown.is_cancelled() {
                    break;
                }
                if let Err(e) = runner.claim_and_spawn(&shutdown).await {
                    tracing::warn!(error = %e, "the job runner could not read the queue");
                }
                let wait =
                    match berth_store::jobs::next_due(&runner.store, &runner.kind_names()).await {
                        Ok(Some(at)) => {
                            let secs = (at - berth_store::now()).clamp(0, 30);
                            Duration::from_millis(u64::try_from(secs).unwrap_or(0) * 1000 + 200)
                        }
                        _ => Duration::from_secs(30),
                    };
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = runner.wake.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
            for token in runner.running.lock().expect("running poisoned").values() {
                token.cancel();
            }
        })
    }

    /// Claims every due job there is a free slot for and runs each in a task.
    async fn claim_and_spawn(
        self: &Arc<Self>,
        shutdown: &CancellationToken,
    ) -> Result<(), JobError> {
        loop {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                return Ok(());
            };
            let Some(row) =
                berth_store::jobs::claim_next(&self.store, &self.kind_names(), berth_store::now())
                    .await?
            else {
                return Ok(());
            };
            let cancel = shutdown.child_token();
            self.running
                .lock()
                .expect("running poisoned")
                .insert(row.id, cancel.clone());
            let runner = self.clone();
            tokio::spawn(async move {
                runner.run_one(row, cancel).await;
                drop(permit);
                runner.wake.notify_one();
            });
        }
    }

    async fn run_one(&self, row: JobRow, cancel: CancellationToken) {
        let kind = &self.kinds[&row.kind];
        let job = Job {
            id: row.id,
            kind: row.kind.clone(),
            payload: row.payload.clone(),
            attempt: row.attempts,
            cancel: cancel.clone(),
        };
        tracing::info!(job.id = row.id, job.kind = %row.kind, job.attempt = row.attempts, "job started");
        let handler = kind.handler.clone();
        let outcome = match tokio::spawn(async move { handler.run(job).await }).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Retry(format!("the job's task failed: {e}")),
        };
        self.running
            .lock()
            .expect("running poisoned")
            .remove(&row.id);
        let recorded = match &outcome {
            Outcome::Done => {
                berth_store::jobs::finish(&self.store, row.id, JobStatus::Done, None).await
            }
            Outcome::Cancelled => {
                berth_store::jobs::finish(
                    &self.store,
                    row.id,
                    JobStatus::Cancelled,
                    Some("cancelled"),
                )
                .await
            }
            Outcome::Failed(e) => {
                berth_store::jobs::finish(&self.store, row.id, JobStatus::Failed, Some(e)).await
            }
            Outcome::Retry(e) if row.attempts < row.max_attempts => {
                let wait = kind.policy.backoff_after(row.attempts);
                let at = berth_store::now() + i64::try_from(wait.as_secs()).unwrap_or(i64::MAX / 2);
                tracing::warn!(job.id = row.id, job.kind = %row.kind, error = %e, retry_in_secs = wait.as_secs(), "job failed; retrying");
                berth_store::jobs::requeue(&self.store, row.id, at, e).await
            }
            Outcome::Retry(e) => {
                berth_store::jobs::finish(&self.store, row.id, JobStatus::Failed, Some(e)).await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(job.id = row.id, error = %e, "could not record how a job ended");
        }
        tracing::info!(job.id = row.id, job.kind = %row.kind, outcome = ?outcome, "job ended");
    }
}
