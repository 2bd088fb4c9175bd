//! The durable job queue's rows (berth-jobs runs them): enqueue, claim the
//! next one that is due, record how it ended, and at start find those that
//! were running when berth died.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{Store, StoreError, now};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
    /// berth stopped while it ran; it was cleaned up (and maybe queued again).
    Interrupted,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "interrupted" => Self::Interrupted,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// One job row.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub dedup_key: Option<String>,
    pub status: JobStatus,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    pub interrupted_at: Option<i64>,
    pub created_at: i64,
}

fn from_row(r: &SqliteRow) -> Result<JobRow, StoreError> {
    let status: String = r.get("status");
    Ok(JobRow {
        id: r.get("id"),
        kind: r.get("kind"),
        payload: r.get("payload"),
        dedup_key: r.get("dedup_key"),
        status: JobStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("job status", &status))?,
        attempts: r.get("attempts"),
        max_attempts: r.get("max_attempts"),
        run_at: r.get("run_at"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
        error: r.get("error"),
        interrupted_at: r.get("interrupted_at"),
        created_at: r.get("created_at"),
    })
}

/// What [`enqueue`] is given.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: &'a str,
    pub dedup_key: Option<&'a str>,
    pub max_attempts: i64,
    pub run_at: i64,
}

/// Queues a job. A job with the same dedup key that is queued or running
/// makes this `AlreadyExists` (nothing is queued).
pub async fn enqueue(store: &Store, job: &NewJob<'_>) -> Result<JobRow, StoreError> {
    let row = sqlx::query(
        "INSERT INTO jobs (kind, payload, dedup_key, status, max_attempts, run_at, created_at)
         VALUES (?, ?, ?, 'queued', ?, ?, ?) RETURNING *",
    )
    .bind(job.kind)
    .bind(job.payload)
    .bind(job.dedup_key)
    .bind(job.max_attempts.max(1))
    .bind(job.run_at)
    .bind(now())
    .fetch_one(store.pool())
    .await
    .map_err(StoreError::on_unique("a job with that key"))?;
    from_row(&row)
}

/// The queued or running job with this dedup key, if any.
pub async fn find_active(store: &Store, dedup_key: &str) -> Result<Option<JobRow>, StoreError> {
    let row =
        sqlx::query("SELECT * FROM jobs WHERE dedup_key = ? AND status IN ('queued', 'running')")
            .bind(dedup_key)
            .fetch_optional(store.pool())
            .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn get(store: &Store, id: i64) -> Result<JobRow, StoreError> {
    let row = sqlx::query("SELECT * FROM jobs WHERE id = ?")
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "job" })?;
    from_row(&row)
}

/// Marks the oldest due job of one of `kinds` running (one more attempt) and
/// returns it. One statement: two claimers never get the same job.
pub async fn claim_next(
    store: &Store,
    kinds: &[&str],
    at: i64,
) -> Result<Option<JobRow>, StoreError> {
    if kinds.is_empty() {
        return Ok(None);
    }
    let marks = vec!["?"; kinds.len()].join(", ");
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, error = NULL
         WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= ? AND kind IN ({marks})
                     ORDER BY run_at, id LIMIT 1)
         RETURNING *"
    );
    let mut q = sqlx::query(&sql).bind(at).bind(at);
    for k in kinds {
        q = q.bind(*k);
    }
    let row = q.fetch_optional(store.pool()).await?;
    row.as_ref().map(from_row).transpose()
}

/// Ends a running job: done, failed or cancelled, with the error text.
pub async fn finish(
    store: &Store,
    id: i64,
    status: JobStatus,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE jobs SET status = ?, error = ?, finished_at = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(error)
        .bind(now())
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Puts a failed attempt back in the queue to run at `run_at`.
pub async fn requeue(store: &Store, id: i64, run_at: i64, error: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE jobs SET status = 'queued', run_at = ?, error = ? WHERE id = ?")
        .bind(run_at)
        .bind(error)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// The jobs that were running when berth stopped, now marked `interrupted`
/// (done once at start, before any job is claimed).
pub async fn mark_interrupted(store: &Store) -> Result<Vec<JobRow>, StoreError> {
    let t = now();
    let rows = sqlx::query(
        "UPDATE jobs SET status = 'interrupted', interrupted_at = ?, finished_at = ?,
             error = 'interrupted: berth stopped while it ran'
         WHERE status = 'running' RETURNING *",
    )
    .bind(t)
    .bind(t)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Queues an interrupted job again (its retry policy allows one more try).
pub async fn retry_interrupted(store: &Store, id: i64, run_at: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET status = 'queued', run_at = ? WHERE id = ? AND status = 'interrupted'",
    )
    .bind(run_at)
    .bind(id)
    .execute(store.pool())
    .await
    .map_err(StoreError::on_unique("a job with that key"))?;
    Ok(())
}

/// Cancels a job that has not started yet; true when it was queued.
pub async fn cancel_queued(store: &Store, id: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'cancelled', finished_at = ?, error = 'cancelled' WHERE id = ? AND status = 'queued'",
    )
    .bind(now())
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The earliest `run_at` of a queued job of one of `kinds` (the runner sleeps until then).
pub async fn next_due(store: &Store, kinds: &[&str]) -> Result<Option<i64>, StoreError> {
    if kinds.is_empty() {
        return Ok(None);
    }
    let marks = vec!["?"; kinds.len()].join(", ");
    let sql = format!("SELECT MIN(run_at) FROM jobs WHERE status = 'queued' AND kind IN ({marks})");
    let mut q = sqlx::query_scalar::<_, Option<i64>>(&sql);
    for k in kinds {
        q = q.bind(*k);
    }
    Ok(q.fetch_one(store.pool()).await?)
}
