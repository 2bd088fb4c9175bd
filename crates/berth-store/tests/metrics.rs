//! Monitoring history against a real SQLite file: rollups keep average,
//! minimum and maximum; each tier is pruned after its retention.

use berth_store::Store;
use berth_store::metrics::{self, Bucket, Scope};

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).await.unwrap();
    (dir, store)
}

/// A fixed hour boundary, far from now, so nothing depends on the clock.
const T0: i64 = 1_796_688_000;

#[tokio::test]
async fn minute_and_hour_rollups_keep_average_minimum_and_maximum() {
    let (_dir, store) = open().await;
    let cpu = metrics::series_id(&store, Scope::Container, "web-1", "cpu")
        .await
        .unwrap();
    let other = metrics::series_id(&store, Scope::Container, "db-1", "cpu")
        .await
        .unwrap();
    assert_ne!(cpu, other);
    // The same key names the same series.
    assert_eq!(
        metrics::series_id(&store, Scope::Container, "web-1", "cpu")
            .await
            .unwrap(),
        cpu
    );
    // Minute 0: 1, 2, 3, 4, 5, 9 (a spike); minute 1: a dip to 0 among 2s.
    let minute0 = [1.0, 2.0, 3.0, 4.0, 5.0, 9.0];
    for (i, v) in minute0.iter().enumerate() {
        let at = T0 + i as i64 * 10;
        metrics::record(&store, at, &[(cpu, *v), (other, 100.0)])
            .await
            .unwrap();
    }
    let minute1 = [2.0, 2.0, 0.0, 2.0];
    for (i, v) in minute1.iter().enumerate() {
        metrics::record(&store, T0 + 60 + i as i64 * 10, &[(cpu, *v)])
            .await
            .unwrap();
    }
    let minutes: Vec<(i64, f64, f64, f64, i64)> = sqlx::query_as(
        "SELECT at, avg, min, max, samples FROM metric_rollups_1m WHERE series_id = ? ORDER BY at",
    )
    .bind(cpu)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        minutes,
        vec![(T0, 4.0, 1.0, 9.0, 6), (T0 + 60, 1.5, 0.0, 2.0, 4)]
    );

    metrics::roll_up_hour(&store, T0 + 90).await.unwrap();
    let hour: (i64, f64, f64, f64, i64) = sqlx::query_as(
        "SELECT at, avg, min, max, samples FROM metric_rollups_1h WHERE series_id = ?",
    )
    .bind(cpu)
    .fetch_one(store.pool())
    .await
    .unwrap();
    // Weighted by samples: (24 + 6) / 10 = 3, not the mean of the minute averages (2.75).
    assert_eq!(hour, (T0, 3.0, 0.0, 9.0, 10));

    // A 30-day query reads hours, a 7-day one minutes, a day raw points;
    // the spike and the dip survive each.
    let month = metrics::history(&store, cpu, T0 - 29 * 86_400, T0 + 86_400, 7200)
        .await
        .unwrap();
    assert_eq!(
        month,
        vec![Bucket {
            at: T0,
            avg: 3.0,
            min: 0.0,
            max: 9.0
        }]
    );
    let week = metrics::history(&store, cpu, T0 - 6 * 86_400, T0 + 86_400, 1020)
        .await
        .unwrap();
    assert_eq!(week.len(), 1);
    assert_eq!((week[0].min, week[0].max, week[0].avg), (0.0, 9.0, 3.0));
    let raw = metrics::history(&store, cpu, T0, T0 + 3600, 30)
        .await
        .unwrap();
    // 30 s buckets over 100 s of points: 0-29, 30-59, 60-89, 90-119.
    assert_eq!(raw.len(), 4);
    assert_eq!((raw[1].min, raw[1].max), (4.0, 9.0));
    assert_eq!((raw[2].min, raw[2].avg), (0.0, 4.0 / 3.0));
}

#[tokio::test]
async fn each_tier_is_pruned_after_its_retention_and_empty_series_go() {
    let (_dir, store) = open().await;
    let s = metrics::series_id(&store, Scope::Server, "", "load1")
        .await
        .unwrap();
    metrics::record(&store, T0, &[(s, 1.0)]).await.unwrap();
    metrics::roll_up_hour(&store, T0).await.unwrap();
    let counts = |store: Store| async move {
        let mut out = Vec::new();
        for table in [
            "metric_points",
            "metric_rollups_1m",
            "metric_rollups_1h",
            "metric_series",
        ] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(store.pool())
                .await
                .unwrap();
            out.push(n);
        }
        out
    };
    assert_eq!(counts(store.clone()).await, [1, 1, 1, 1]);
    // Just inside 24 h: everything stays.
    metrics::prune(&store, T0 + metrics::RAW_KEEP_SECS)
        .await
        .unwrap();
    assert_eq!(counts(store.clone()).await, [1, 1, 1, 1]);
    let pruned = metrics::prune(&store, T0 + metrics::RAW_KEEP_SECS + 1)
        .await
        .unwrap();
    assert_eq!(pruned.points, 1);
    assert_eq!(counts(store.clone()).await, [0, 1, 1, 1]);
    metrics::prune(&store, T0 + metrics::MINUTE_KEEP_SECS + 1)
        .await
        .unwrap();
    assert_eq!(counts(store.clone()).await, [0, 0, 1, 1]);
    let pruned = metrics::prune(&store, T0 + metrics::HOUR_KEEP_SECS + 1)
        .await
        .unwrap();
    assert_eq!((pruned.hours, pruned.series), (1, 1));
    assert_eq!(counts(store.clone()).await, [0, 0, 0, 0]);
}

#[tokio::test]
async fn a_value_that_is_not_a_number_is_not_stored() {
    let (_dir, store) = open().await;
    let s = metrics::series_id(&store, Scope::Server, "", "cpu")
        .await
        .unwrap();
    metrics::record(&store, T0, &[(s, f64::NAN), (s, f64::INFINITY)])
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metric_points")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
}
