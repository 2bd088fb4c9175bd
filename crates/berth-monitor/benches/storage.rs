//! `cargo bench -p berth-monitor --bench storage`: what the history costs in
//! the SQLite file, measured. Simulates one day of ticks every 10 s for 10
//! containers (6 series each) and the server (7 series) through the same
//! store calls the collector makes (record every tick, the hour rollup and
//! the prune once a minute), then reports rows and bytes per container per
//! day, and, by deleting one tier at a time from copies of the file, the
//! bytes each tier takes.

use berth_store::Store;
use berth_store::metrics::{self, Scope};

const CONTAINERS: usize = 10;
const TICK: i64 = 10;
const DAY: i64 = 86_400;
const T0: i64 = 1_796_688_000;

fn main() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn bytes(store: &Store) -> i64 {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.pool())
        .await
        .unwrap();
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(store.pool())
        .await
        .unwrap();
    pages * size
}

/// Size of a vacuumed copy of the database with `tables` emptied.
async fn size_without(store: &Store, dir: &std::path::Path, tables: &[&str]) -> u64 {
    let copy = dir.join(format!("copy-{}.db", tables.join("-")));
    sqlx::query("VACUUM INTO ?")
        .bind(copy.to_str().unwrap())
        .execute(store.pool())
        .await
        .unwrap();
    let url = format!("sqlite:{}", copy.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    for t in tables {
        sqlx::query(&format!("DELETE FROM {t}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("VACUUM").execute(&pool).await.unwrap();
    pool.close().await;
    std::fs::metadata(&copy).unwrap().len()
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).await.unwrap();
    let empty = bytes(&store).await;
    let mut series = Vec::new();
    for m in [
        "cpu",
        "load1",
        "memory",
        "swap",
        "net_rx",
        "net_tx",
        "disk_used",
    ] {
        series.push(
            metrics::series_id(&store, Scope::Server, "", m)
                .await
                .unwrap(),
        );
    }
    for c in 0..CONTAINERS {
        for m in ["cpu", "memory", "net_rx", "net_tx", "blk_read", "blk_write"] {
            let name = format!("shop-api-{c}");
            series.push(
                metrics::series_id(&store, Scope::Container, &name, m)
                    .await
                    .unwrap(),
            );
        }
    }
    let started = std::time::Instant::now();
    let mut last_minute = None;
    let mut x: u64 = 12345;
    for tick in 0..DAY / TICK {
        let at = T0 + tick * TICK;
        // Values vary like real ones (a cheap LCG): SQLite stores a REAL
        // that happens to be integral more compactly.
        let points: Vec<(i64, f64)> = series
            .iter()
            .map(|s| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (*s, (x >> 33) as f64 / 7.3)
            })
            .collect();
        metrics::record(&store, at, &points).await.unwrap();
        let minute = at - at % 60;
        if let Some(last) = last_minute
            && last != minute
        {
            metrics::roll_up_hour(&store, last).await.unwrap();
            metrics::prune(&store, at).await.unwrap();
        }
        last_minute = Some(minute);
    }
    let elapsed = started.elapsed();
    let counts = metrics::row_counts(&store).await.unwrap();
    let total = bytes(&store).await - empty;
    let n_series = series.len() as f64;
    let per_series = |rows: i64| rows as f64 / n_series;
    println!(
        "simulated 1 day at {TICK} s for {CONTAINERS} containers + the server ({} series) in {:.1} s",
        series.len(),
        elapsed.as_secs_f64()
    );
    for (table, rows) in &counts {
        println!(
            "  {table}: {rows} rows ({:.0} per series)",
            per_series(*rows)
        );
    }
    let full = size_without(&store, dir.path(), &[]).await;
    let no_points = size_without(&store, dir.path(), &["metric_points"]).await;
    let no_minutes = size_without(&store, dir.path(), &["metric_rollups_1m"]).await;
    let no_hours = size_without(&store, dir.path(), &["metric_rollups_1h"]).await;
    let per_row = |bytes: u64, rows: i64| bytes as f64 / rows.max(1) as f64;
    let point_row = per_row(full - no_points, counts[1].1);
    let minute_row = per_row(full - no_minutes, counts[2].1);
    let hour_row = per_row(full - no_hours, counts[3].1);
    println!(
        "file grew by {} bytes in the day (WAL checkpointed); vacuumed bytes per row: raw {point_row:.1}, 1-minute {minute_row:.1}, 1-hour {hour_row:.1}",
        total
    );
    // A container has 6 series. Steady state: 24 h of raw points, 7 days
    // of minutes, 90 days of hours.
    let raw_rows = 6.0 * (DAY / TICK) as f64;
    let minute_rows = 6.0 * 1440.0 * 7.0;
    let hour_rows = 6.0 * 24.0 * 90.0;
    println!(
        "per container per day: {raw_rows:.0} raw rows ({:.2} MB), {:.0} minute rows, {:.0} hour rows",
        raw_rows * point_row / 1e6,
        6.0 * 1440.0,
        6.0 * 24.0
    );
    println!(
        "per container at steady state (24 h raw + 7 d minutes + 90 d hours): {:.0} rows, {:.2} MB",
        raw_rows + minute_rows + hour_rows,
        (raw_rows * point_row + minute_rows * minute_row + hour_rows * hour_row) / 1e6
    );
}
