//! Monitoring history: raw points for 24 h, 1-minute rollups for 7 days and
//! 1-hour rollups for 90 days, each rollup with average, minimum, maximum and
//! its sample count. Callers pass the time (`at`, `now`) so the arithmetic is
//! testable without waiting.
//!
//! Every query reaches points through their series (the tables' primary key
//! is `(series_id, at)`), so a tick, a rollup or a prune touches the rows it
//! needs and never scans history.

use sqlx::Row;

use crate::{Store, StoreError};

/// How long raw points are kept.
pub const RAW_KEEP_SECS: i64 = 24 * 3600;
/// How long 1-minute rollups are kept.
pub const MINUTE_KEEP_SECS: i64 = 7 * 24 * 3600;
/// How long 1-hour rollups are kept.
pub const HOUR_KEEP_SECS: i64 = 90 * 24 * 3600;

/// What a series describes: the server, or one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The server as a whole (`target` is empty or names a disk or core).
    Server,
    /// One container, by name.
    Container,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Server => "server",
            Scope::Container => "container",
        }
    }
}

/// One bucket of a history query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Start of the bucket (seconds since the epoch).
    pub at: i64,
    /// Average over the bucket, weighted by samples.
    pub avg: f64,
    /// Smallest sample in the bucket.
    pub min: f64,
    /// Largest sample in the bucket.
    pub max: f64,
}

/// The id of the series, created when it does not exist yet.
pub async fn series_id(
    store: &Store,
    scope: Scope,
    target: &str,
    metric: &str,
) -> Result<i64, StoreError> {
    sqlx::query("INSERT OR IGNORE INTO metric_series (scope, target, metric) VALUES (?, ?, ?)")
        .bind(scope.as_str())
        .bind(target)
        .bind(metric)
        .execute(store.pool())
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT id FROM metric_series WHERE scope = ? AND target = ? AND metric = ?",
    )
    .bind(scope.as_str())
    .bind(target)
    .bind(metric)
    .fetch_one(store.pool())
    .await?)
}

/// The id of an existing series, `None` when nothing was ever recorded for it.
pub async fn find_series(
    store: &Store,
    scope: Scope,
    target: &str,
    metric: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM metric_series WHERE scope = ? AND target = ? AND metric = ?",
    )
    .bind(scope.as_str())
    .bind(target)
    .bind(metric)
    .fetch_optional(store.pool())
    .await?)
}

/// Stores one tick's samples (`(series id, value)`) taken at `at`, and
/// brings the 1-minute bucket holding `at` up to date, in one transaction.
pub async fn record(store: &Store, at: i64, points: &[(i64, f64)]) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    let finite: Vec<&(i64, f64)> = points.iter().filter(|(_, v)| v.is_finite()).collect();
    // A few statements of many rows each: one per row costs a tick more
    // than all of the reading.
    for chunk in finite.chunks(200) {
        let mut sql =
            String::from("INSERT OR REPLACE INTO metric_points (series_id, at, value) VALUES ");
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
        }
        let mut query = sqlx::query(&sql);
        for (series, value) in chunk {
            query = query.bind(series).bind(at).bind(value);
        }
        query.execute(&mut *tx).await?;
    }
    let minute = at - at.rem_euclid(60);
    // CROSS JOIN keeps the series as the outer loop, so each series' points
    // are found by their key instead of a scan of every point.
    sqlx::query(
        "INSERT OR REPLACE INTO metric_rollups_1m (series_id, at, avg, min, max, samples)
         SELECT p.series_id, ?1, avg(p.value), min(p.value), max(p.value), count(*)
         FROM metric_series s CROSS JOIN metric_points p ON p.series_id = s.id
         WHERE p.at >= ?1 AND p.at < ?1 + 60
         GROUP BY p.series_id",
    )
    .bind(minute)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Recomputes the 1-hour bucket that holds `at` from its 1-minute buckets
/// (average weighted by samples, min of mins, max of maxes).
pub async fn roll_up_hour(store: &Store, at: i64) -> Result<(), StoreError> {
    let hour = at - at.rem_euclid(3600);
    sqlx::query(
        "INSERT OR REPLACE INTO metric_rollups_1h (series_id, at, avg, min, max, samples)
         SELECT r.series_id, ?1, sum(r.avg * r.samples) / sum(r.samples), min(r.min),
                max(r.max), sum(r.samples)
         FROM metric_series s CROSS JOIN metric_rollups_1m r ON r.series_id = s.id
         WHERE r.at >= ?1 AND r.at < ?1 + 3600
         GROUP BY r.series_id",
    )
    .bind(hour)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Rows removed by one [`prune`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Raw points older than 24 h.
    pub points: u64,
    /// 1-minute rollups older than 7 days.
    pub minutes: u64,
    /// 1-hour rollups older than 90 days.
    pub hours: u64,
    /// Series with nothing left in any tier.
    pub series: u64,
}

/// Deletes what is past its tier's retention at `now`, and series with
/// nothing left in any tier.
pub async fn prune(store: &Store, now: i64) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    for (table, keep, count) in [
        ("metric_points", RAW_KEEP_SECS, &mut pruned.points),
        ("metric_rollups_1m", MINUTE_KEEP_SECS, &mut pruned.minutes),
        ("metric_rollups_1h", HOUR_KEEP_SECS, &mut pruned.hours),
    ] {
        *count = sqlx::query(&format!(
            "DELETE FROM {table} WHERE series_id IN (SELECT id FROM metric_series) AND at < ?"
        ))
        .bind(now - keep)
        .execute(store.pool())
        .await?
        .rows_affected();
    }
    pruned.series = sqlx::query(
        "DELETE FROM metric_series WHERE
             NOT EXISTS (SELECT 1 FROM metric_points WHERE series_id = metric_series.id)
         AND NOT EXISTS (SELECT 1 FROM metric_rollups_1m WHERE series_id = metric_series.id)
         AND NOT EXISTS (SELECT 1 FROM metric_rollups_1h WHERE series_id = metric_series.id)",
    )
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(pruned)
}

/// Which tier answers a query over `range_secs` ending now: raw points while
/// they last, then minutes, then hours.
fn tier(range_secs: i64) -> (&'static str, i64) {
    if range_secs <= RAW_KEEP_SECS {
        ("metric_points", 1)
    } else if range_secs <= MINUTE_KEEP_SECS {
        ("metric_rollups_1m", 60)
    } else {
        ("metric_rollups_1h", 3600)
    }
}

/// The history of one series over `[from, to)` in buckets of at least
/// `bucket_secs` (rounded up to the tier's resolution), oldest first. Empty
/// buckets are left out.
pub async fn history(
    store: &Store,
    series: i64,
    from: i64,
    to: i64,
    bucket_secs: i64,
) -> Result<Vec<Bucket>, StoreError> {
    let (table, resolution) = tier(to - from);
    let width = bucket_secs.max(resolution).max(1);
    let width = (width + resolution - 1) / resolution * resolution;
    let sql = if table == "metric_points" {
        "SELECT (at / ?1) * ?1 AS b, avg(value) AS avg, min(value) AS min, max(value) AS max
         FROM metric_points WHERE series_id = ?2 AND at >= ?3 AND at < ?4
         GROUP BY b ORDER BY b"
            .to_owned()
    } else {
        format!(
            "SELECT (at / ?1) * ?1 AS b, sum(avg * samples) / sum(samples) AS avg,
                    min(min) AS min, max(max) AS max
             FROM {table} WHERE series_id = ?2 AND at >= ?3 AND at < ?4
             GROUP BY b ORDER BY b"
        )
    };
    let rows = sqlx::query(&sql)
        .bind(width)
        .bind(series)
        .bind(from)
        .bind(to)
        .fetch_all(store.pool())
        .await?;
    Ok(rows
        .iter()
        .map(|r| Bucket {
            at: r.get("b"),
            avg: r.get("avg"),
            min: r.get("min"),
            max: r.get("max"),
        })
        .collect())
}

/// Row counts per table, for the storage figures in docs/monitoring.md.
pub async fn row_counts(store: &Store) -> Result<[(String, i64); 4], StoreError> {
    let mut out: [(String, i64); 4] = Default::default();
    for (slot, table) in out.iter_mut().zip([
        "metric_series",
        "metric_points",
        "metric_rollups_1m",
        "metric_rollups_1h",
    ]) {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(store.pool())
            .await?;
        *slot = (table.to_owned(), n);
    }
    Ok(out)
}
