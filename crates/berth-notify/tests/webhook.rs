//! The generic webhook against a real HTTP server on 127.0.0.1.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_notify::{Channel, EventKind, Message, Notifier, NotifyOptions, SendError, Severity};
use common::{Receiver, local_notifier};
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn failed_backup() -> Message {
    Message::new(
        EventKind::BackupFailed,
        Severity::Critical,
        "Backup of shop failed",
        "pg_dump exited with code 1",
    )
    .field("database", "shop")
    .field("destination", "s3")
    .dedup_key("backup:shop")
}

/// The receiver's side, written from the README's description and not with
/// the crate's own function, so a drift between the two fails here.
fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_signed_webhook_arrives_and_its_hmac_verifies_with_the_secret() {
    let receiver = Receiver::start().await;
    let channel = Channel::parse(&format!(
        "json://127.0.0.1:{}/hooks/berth?secret=s3cr%3Dt",
        receiver.port()
    ))
    .unwrap();

    local_notifier()
        .send(&channel, &failed_backup())
        .await
        .unwrap();

    let request = receiver.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/hooks/berth");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-berth-event"), Some("backup.failed"));
    let timestamp = request
        .header("x-berth-timestamp")
        .expect("timestamp header");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(timestamp.parse().unwrap()) < 60);

    let signature = request
        .header("x-berth-signature")
        .expect("signature header");
    assert_eq!(
        signature,
        expected_signature("s3cr=t", timestamp, &request.body)
    );
    assert_ne!(
        signature,
        expected_signature("wrong", timestamp, &request.body)
    );
    let mut tampered = request.body.to_vec();
    tampered[10] ^= 1;
    assert_ne!(
        signature,
        expected_signature("s3cr=t", timestamp, &tampered)
    );

    let body = request.json();
    assert_eq!(body["event"], "backup.failed");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["title"], "Backup of shop failed");
    assert_eq!(body["body"], "pg_dump exited with code 1");
    assert_eq!(body["fields"][0]["name"], "database");
    assert_eq!(body["fields"][1]["value"], "s3");
    assert_eq!(body["dedup_key"], "backup:shop");
    assert_eq!(body["timestamp"].as_u64().unwrap().to_string(), timestamp);
}

#[tokio::test]
async fn a_webhook_without_a_secret_is_sent_unsigned_with_its_basic_auth() {
    let receiver = Receiver::start().await;
    let channel =
        Channel::parse(&format!("json://hook:pw@127.0.0.1:{}/", receiver.port())).unwrap();
    local_notifier().send_test(&channel).await.unwrap();
    let request = receiver.only_request();
    assert_eq!(request.header("x-berth-signature"), None);
    // base64("hook:pw")
    assert_eq!(request.header("authorization"), Some("Basic aG9vazpwdw=="));
    assert_eq!(request.json()["event"], "test");
}

#[tokio::test]
async fn extra_headers_and_query_parameters_reach_the_receiver() {
    let receiver = Receiver::start().await;
    let channel = Channel::parse(&format!(
        "json://127.0.0.1:{}/webhook/berth?+Authorization=Bearer%20tok&-key=a%26b",
        receiver.port()
    ))
    .unwrap();
    local_notifier().send_test(&channel).await.unwrap();
    let request = receiver.only_request();
    assert_eq!(request.uri, "/webhook/berth?key=a%26b");
    assert_eq!(request.header("authorization"), Some("Bearer tok"));
}

#[tokio::test]
async fn a_refused_webhook_reports_the_servers_status_and_answer() {
    let receiver = Receiver::start().await;
    receiver.answer_with(422, "{\"error\":\"unknown event\"}");
    let channel = Channel::parse(&format!(
        "json://127.0.0.1:{}/in/TOPSECRETPATH",
        receiver.port()
    ))
    .unwrap();
    let err = local_notifier()
        .send(&channel, &failed_backup())
        .await
        .unwrap_err();
    match &err {
        SendError::Rejected { status, body, .. } => {
            assert_eq!(*status, 422);
            assert_eq!(body, "{\"error\":\"unknown event\"}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.to_string().contains("TOPSECRETPATH"), "{err}");
    assert!(!err.is_retryable(), "a 422 will be refused again");
}

#[tokio::test]
async fn a_huge_error_answer_is_cut_to_two_kilobytes() {
    let receiver = Receiver::start().await;
    receiver.answer_with(500, &"e".repeat(1_000_000));
    let channel = Channel::parse(&format!("json://127.0.0.1:{}/", receiver.port())).unwrap();
    let err = local_notifier().send_test(&channel).await.unwrap_err();
    assert!(err.is_retryable(), "a 500 may pass later");
    let SendError::Rejected {
        status: 500, body, ..
    } = err
    else {
        panic!("expected a 500: {err:?}")
    };
    assert_eq!(body.len(), 2048);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts the connection and then says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            open.push(socket);
        }
    });
    let notifier = Notifier::new(NotifyOptions {
        allow_private: true,
        timeout: Duration::from_millis(800),
        extra_ca_pem: None,
    });
    let channel = Channel::parse(&format!("json://127.0.0.1:{port}/")).unwrap();
    let started = std::time::Instant::now();
    let err = notifier.send_test(&channel).await.unwrap_err();
    assert!(matches!(err, SendError::TimedOut { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(5));
    held.abort();
}
