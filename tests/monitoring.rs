//! `berth serve` collects metrics on its own, at the interval it is given,
//! and serves them on `/metrics` to a token from `berth token create`.

mod common;

use std::time::{Duration, Instant};

use common::{BERTH, Options, TestApp};

/// The time of the snapshot `/metrics` shows.
async fn collected_at(app: &TestApp, token: &str) -> f64 {
    let response = app.api_get(token, "/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("\nnode_load1 "), "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix("berth_metrics_collected_timestamp_seconds "))
        .expect("the snapshot's time")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn serve_collects_every_interval_and_metrics_needs_a_token() {
    let app = TestApp::spawn_with(Options {
        extra_args: vec!["--metrics-interval".into(), "5".into()],
        ..Options::default()
    })
    .await;
    let out = app.cli(&["token", "create", "--name", "prometheus"], None);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let anonymous = app.get("/metrics").await;
    assert_eq!(anonymous.status(), 401);

    // The collector ticks by itself: the snapshot's time moves on by about
    // the interval. (The first change may be a collection made for the very
    // first request; the one after is two ticks apart.)
    let mut times = vec![collected_at(&app, &token).await];
    let deadline = Instant::now() + Duration::from_secs(40);
    while times.len() < 3 {
        let at = collected_at(&app, &token).await;
        if at > *times.last().unwrap() {
            times.push(at);
        }
        assert!(Instant::now() < deadline, "collections seen: {times:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let apart = times[2] - times[1];
    assert!(
        (4.0..=12.0).contains(&apart),
        "collections {apart} s apart with --metrics-interval 5"
    );
}

#[test]
fn an_interval_outside_5_to_60_seconds_is_refused() {
    for bad in ["4", "61", "ten"] {
        let out = std::process::Command::new(BERTH)
            .args(["serve", "--metrics-interval", bad])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--metrics-interval"), "{err}");
    }
}
