//! The runner against a real SQLite file (a fresh data dir per test).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_jobs::{
    BoxFuture, Enqueue, Handler, Job, JobError, Outcome, Policy, Runner, Status, StoredJob,
};
use berth_store::Store;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Records what it was asked to do; fails the first `fail_first` runs.
#[derive(Default)]
struct Recorder {
    runs: AtomicUsize,
    fail_first: usize,
    cleaned: Mutex<Vec<i64>>,
    payloads: Mutex<Vec<String>>,
    /// Runs until cancelled.
    block: bool,
}

/// The handler: a handle on the shared recorder.
struct H(Arc<Recorder>);

impl Handler for H {
    fn run(&self, job: Job) -> BoxFuture<Outcome> {
        let me = self.0.clone();
        Box::pin(async move {
            let n = me.runs.fetch_add(1, Ordering::SeqCst);
            me.payloads.lock().await.push(job.payload.clone());
            if me.block {
                job.cancel.cancelled().await;
                return Outcome::Cancelled;
            }
            if n < me.fail_first {
                Outcome::Retry(format!("failure {}", n + 1))
            } else {
                Outcome::Done
            }
        })
    }

    fn cleanup(&self, job: StoredJob) -> BoxFuture<()> {
        let me = self.0.clone();
        Box::pin(async move { me.cleaned.lock().await.push(job.id) })
    }
}

fn quick(max_attempts: i64) -> Policy {
    Policy {
        max_attempts,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(2),
        retry_interrupted: true,
    }
}

async fn wait_status(runner: &Runner, id: i64, want: Status, limit: Duration) -> StoredJob {
    let deadline = Instant::now() + limit;
    loop {
        let job = runner.get(id).await.unwrap();
        if job.status == want {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is {:?}, not {want:?}: {job:?}",
            job.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_job_that_fails_twice_is_retried_with_backoff_and_then_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let rec = Arc::new(Recorder {
        fail_first: 2,
        ..Default::default()
    });
    let runner = Runner::builder(store.clone())
        .register("echo", quick(3), Arc::new(H(rec.clone())))
        .build();
    let stop = CancellationToken::new();
    runner.start(stop.clone());
    let started = Instant::now();
    let id = runner
        .enqueue("echo", "{\"n\":1}", Enqueue::default())
        .await
        .unwrap();
    let job = wait_status(&runner, id, Status::Done, Duration::from_secs(20)).await;
    assert_eq!(job.attempts, 3);
    assert_eq!(rec.runs.load(Ordering::SeqCst), 3);
    // Backoff 1 s then 2 s (second resolution): at least 2 s passed.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    stop.cancel();
}

#[tokio::test]
async fn a_job_out_of_attempts_is_failed_with_its_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let rec = Arc::new(Recorder {
        fail_first: 10,
        ..Default::default()
    });
    let runner = Runner::builder(store)
        .register("echo", quick(2), Arc::new(H(rec.clone())))
        .build();
    let stop = CancellationToken::new();
    runner.start(stop.clone());
    let id = runner
        .enqueue("echo", "{}", Enqueue::default())
        .await
        .unwrap();
    let job = wait_status(&runner, id, Status::Failed, Duration::from_secs(20)).await;
    assert_eq!(job.attempts, 2);
    assert_eq!(job.error.as_deref(), Some("failure 2"));
    stop.cancel();
}

#[tokio::test]
async fn a_second_job_with_the_same_dedup_key_is_refused_while_the_first_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let rec = Arc::new(Recorder::default());
    let runner = Runner::builder(store)
        .register("echo", quick(1), Arc::new(H(rec.clone())))
        .build();
    let key = Enqueue {
        dedup_key: Some("backup:stack_service:1:db".into()),
        run_at: None,
    };
    let first = runner.enqueue("echo", "a", key.clone()).await.unwrap();
    match runner.enqueue("echo", "b", key.clone()).await {
        Err(JobError::Duplicate { existing, .. }) => assert_eq!(existing, first),
        other => panic!("{other:?}"),
    }
    // Once the first ran, the key is free again.
    let stop = CancellationToken::new();
    runner.start(stop.clone());
    wait_status(&runner, first, Status::Done, Duration::from_secs(10)).await;
    let second = runner.enqueue("echo", "c", key).await.unwrap();
    wait_status(&runner, second, Status::Done, Duration::from_secs(10)).await;
    assert_eq!(*rec.payloads.lock().await, ["a", "c"]);
    stop.cancel();
}

#[tokio::test]
async fn a_delayed_job_waits_for_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let rec = Arc::new(Recorder::default());
    let runner = Runner::builder(store)
        .register("echo", quick(1), Arc::new(H(rec.clone())))
        .build();
    let stop = CancellationToken::new();
    runner.start(stop.clone());
    let id = runner
        .enqueue(
            "echo",
            "later",
            Enqueue {
                dedup_key: None,
                run_at: Some(berth_store::now() + 2),
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(runner.get(id).await.unwrap().status, Status::Queued);
    wait_status(&runner, id, Status::Done, Duration::from_secs(10)).await;
    stop.cancel();
}

#[tokio::test]
async fn a_running_job_is_cancelled_through_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let rec = Arc::new(Recorder {
        block: true,
        ..Default::default()
    });
    let runner = Runner::builder(store)
        .register("slow", quick(3), Arc::new(H(rec.clone())))
        .build();
    let stop = CancellationToken::new();
    runner.start(stop.clone());
    let id = runner
        .enqueue("slow", "{}", Enqueue::default())
        .await
        .unwrap();
    wait_status(&runner, id, Status::Running, Duration::from_secs(10)).await;
    assert!(runner.cancel(id).await.unwrap());
    let job = wait_status(&runner, id, Status::Cancelled, Duration::from_secs(10)).await;
    assert_eq!(job.attempts, 1, "a cancelled job is not retried");
    stop.cancel();
}

#[tokio::test]
async fn a_job_running_when_berth_died_is_marked_interrupted_cleaned_up_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    // The first "berth": claims the job and dies under it (the runner is
    // dropped with the job still `running` in the file).
    let id = {
        let store = Store::open(dir.path()).await.unwrap();
        let rec = Arc::new(Recorder {
            block: true,
            ..Default::default()
        });
        let runner = Runner::builder(store.clone())
            .register("slow", quick(3), Arc::new(H(rec.clone())))
            .build();
        let id = runner
            .enqueue("slow", "{\"x\":1}", Enqueue::default())
            .await
            .unwrap();
        let claimed = berth_store::jobs::claim_next(&store, &["slow"], berth_store::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, id);
        store.close().await;
        id
    };
    // The next start, on the same file.
    let store = Store::open(dir.path()).await.unwrap();
    let rec = Arc::new(Recorder::default());
    let runner = Runner::builder(store)
        .register("slow", quick(3), Arc::new(H(rec.clone())))
        .build();
    let recovered = runner.recover().await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].status, Status::Interrupted);
    assert_eq!(*rec.cleaned.lock().await, [id]);
    let queued = runner.get(id).await.unwrap();
    assert_eq!(queued.status, Status::Queued);
    assert!(queued.interrupted_at.is_some());
    let stop = CancellationToken::new();
    runner.start(stop.clone());
    let job = wait_status(&runner, id, Status::Done, Duration::from_secs(10)).await;
    assert_eq!(job.attempts, 2);
    assert!(
        job.interrupted_at.is_some(),
        "the interruption stays on record"
    );
    stop.cancel();
}

#[tokio::test]
async fn an_interrupted_job_whose_policy_forbids_retries_stays_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let rec = Arc::new(Recorder::default());
    let policy = Policy {
        retry_interrupted: false,
        ..quick(3)
    };
    let runner = Runner::builder(store.clone())
        .register("once", policy, Arc::new(H(rec.clone())))
        .build();
    let id = runner
        .enqueue("once", "{}", Enqueue::default())
        .await
        .unwrap();
    berth_store::jobs::claim_next(&store, &["once"], berth_store::now())
        .await
        .unwrap()
        .unwrap();
    runner.recover().await.unwrap();
    assert_eq!(*rec.cleaned.lock().await, [id]);
    assert_eq!(runner.get(id).await.unwrap().status, Status::Interrupted);
    assert_eq!(rec.runs.load(Ordering::SeqCst), 0);
}
