//! E-mail through a real SMTP server: Python's aiosmtpd on 127.0.0.1
//! (Debian's python3-aiosmtpd, which tests/run installs).

mod common;

use std::process::Stdio;
use std::time::Duration;

use berth_notify::{Channel, EventKind, Message, Notifier, NotifyOptions, SendError, Severity};
use common::local_notifier;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

struct SmtpServer {
    port: u16,
    lines: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

/// The first python3 that has aiosmtpd: Debian's, unless the test machine
/// puts another one first on PATH.
fn python() -> String {
    if let Ok(p) = std::env::var("BERTH_TEST_PYTHON") {
        return p;
    }
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = std::process::Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate.into();
        }
    }
    panic!("no python3 with aiosmtpd: apt-get install python3-aiosmtpd (tests/run does)");
}

impl SmtpServer {
    async fn start() -> Self {
        Self::start_with(&["plain"]).await
    }

    async fn start_with(mode: &[&str]) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(mode)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SMTP server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = next_line(&mut lines).await;
        let port = first["port"].as_u64().expect("the server prints its port") as u16;
        SmtpServer {
            port,
            lines,
            _child: child,
        }
    }

    async fn next_mail(&mut self) -> serde_json::Value {
        next_line(&mut self.lines).await
    }

    /// Nothing arrives within a moment (for the cases that must send nothing).
    async fn assert_no_mail(&mut self) {
        let waited = tokio::time::timeout(Duration::from_millis(500), self.lines.next_line()).await;
        assert!(waited.is_err(), "a mail arrived: {waited:?}");
    }
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> serde_json::Value {
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the SMTP server answered in time")
        .expect("read the SMTP server's output")
        .expect("the SMTP server is still running");
    serde_json::from_str(&line).unwrap()
}

fn failed_drill() -> Message {
    Message::new(
        EventKind::DrillFailed,
        Severity::Critical,
        "Restore drill of shop failed",
        "the checksum no longer matches",
    )
    .field("database", "shop")
}

#[tokio::test]
async fn an_email_arrives_at_a_real_smtp_server_with_its_subject_and_login() {
    let mut server = SmtpServer::start().await;
    let channel = Channel::parse(&format!(
        "mailto://berth:pa%3Ass%40word@127.0.0.1:{}?to=ops@example.com,cto@example.com&from=berth@example.com&starttls=no",
        server.port
    ))
    .unwrap();
    local_notifier()
        .send(&channel, &failed_drill())
        .await
        .unwrap();

    let mail = server.next_mail().await;
    assert_eq!(mail["from"], "berth@example.com");
    assert_eq!(
        mail["to"],
        serde_json::json!(["ops@example.com", "cto@example.com"])
    );
    assert_eq!(
        mail["logins"],
        serde_json::json!([{ "login": "berth", "password": "pa:ss@word" }])
    );
    let data = mail["data"].as_str().unwrap();
    assert!(
        data.contains("Subject: Restore drill of shop failed\r\n"),
        "{data}"
    );
    assert!(data.contains("the checksum no longer matches"), "{data}");
    assert!(data.contains("database: shop"), "{data}");
    assert!(data.contains("drill.failed"), "{data}");
}

#[tokio::test]
async fn a_refused_recipient_is_an_error_with_the_servers_answer() {
    let mut server = SmtpServer::start().await;
    let channel = Channel::parse(&format!(
        "mailto://127.0.0.1:{}?to=refused@example.com&from=berth@example.com&starttls=no",
        server.port
    ))
    .unwrap();
    let err = local_notifier().send_test(&channel).await.unwrap_err();
    let SendError::Smtp { answer, permanent } = &err else {
        panic!("expected an SMTP error, got {err:?}")
    };
    assert!(answer.contains("no such user here"), "{answer}");
    assert!(*permanent, "a 550 is permanent");
    assert!(!err.is_retryable());
    server.assert_no_mail().await;
}

#[tokio::test]
async fn starttls_is_required_by_default_so_nothing_goes_out_in_clear() {
    // aiosmtpd here offers no STARTTLS: a mailto:// without starttls=no must
    // refuse to send rather than fall back to plain text with the password.
    let mut server = SmtpServer::start().await;
    let channel = Channel::parse(&format!(
        "mailto://berth:pa%3Ass%40word@127.0.0.1:{}?to=ops@example.com&from=berth@example.com",
        server.port
    ))
    .unwrap();
    let err = local_notifier().send_test(&channel).await.unwrap_err();
    assert!(
        err.to_string().contains("STARTTLS is not supported"),
        "{err}"
    );
    assert!(!err.to_string().contains("pa:ss@word"), "{err}");
    server.assert_no_mail().await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_by_the_server() {
    let mut server = SmtpServer::start().await;
    let channel = Channel::parse(&format!(
        "mailto://berth:wrong@127.0.0.1:{}?to=ops@example.com&from=berth@example.com&starttls=no",
        server.port
    ))
    .unwrap();
    let err = local_notifier().send_test(&channel).await.unwrap_err();
    assert!(matches!(err, SendError::Smtp { .. }), "{err:?}");
    assert!(err.to_string().contains("535"), "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");
    server.assert_no_mail().await;
}

/// A self-signed certificate for `localhost`, written where the Python
/// server can read it; the PEM is also the CA the notifier is told to trust.
struct TestCert {
    dir: tempfile::TempDir,
    pem: String,
}

impl TestCert {
    fn new() -> Self {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem = key.cert.pem();
        std::fs::write(dir.path().join("cert.pem"), &pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.signing_key.serialize_pem()).unwrap();
        TestCert { dir, pem }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    async fn server(&self, mode: &str) -> SmtpServer {
        SmtpServer::start_with(&[mode, &self.path("cert.pem"), &self.path("key.pem")]).await
    }
}

fn notifier_trusting(ca: Option<&str>) -> Notifier {
    Notifier::new(NotifyOptions {
        allow_private: true,
        timeout: Duration::from_secs(10),
        extra_ca_pem: ca.map(str::to_owned),
    })
}

async fn assert_tls_delivery(cert: &TestCert, server: &mut SmtpServer, url: String) {
    let channel = Channel::parse(&url).unwrap();
    notifier_trusting(Some(&cert.pem))
        .send(&channel, &failed_drill())
        .await
        .unwrap();
    let mail = server.next_mail().await;
    assert_eq!(
        mail["logins"],
        serde_json::json!([{ "login": "berth", "password": "pa:ss@word" }])
    );
    assert!(
        mail["data"]
            .as_str()
            .unwrap()
            .contains("Subject: Restore drill of shop failed\r\n")
    );
}

#[tokio::test]
async fn mailtos_delivers_over_implicit_tls_to_a_server_whose_ca_is_trusted() {
    let cert = TestCert::new();
    let mut server = cert.server("implicit-tls").await;
    let url = format!(
        "mailtos://berth:pa%3Ass%40word@localhost:{}?to=ops@example.com&from=berth@example.com",
        server.port
    );
    assert_tls_delivery(&cert, &mut server, url).await;
}

#[tokio::test]
async fn mailto_delivers_after_starttls_to_a_server_whose_ca_is_trusted() {
    // This server refuses AUTH and MAIL before STARTTLS.
    let cert = TestCert::new();
    let mut server = cert.server("starttls").await;
    let url = format!(
        "mailto://berth:pa%3Ass%40word@localhost:{}?to=ops@example.com&from=berth@example.com",
        server.port
    );
    assert_tls_delivery(&cert, &mut server, url).await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_before_anything_is_sent() {
    let cert = TestCert::new();
    let mut server = cert.server("implicit-tls").await;
    let channel = Channel::parse(&format!(
        "mailtos://berth:pa%3Ass%40word@localhost:{}?to=ops@example.com&from=berth@example.com",
        server.port
    ))
    .unwrap();
    let err = notifier_trusting(None)
        .send_test(&channel)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    server.assert_no_mail().await;
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    // The certificate is for "localhost"; the channel names 127.0.0.1. The
    // connection goes to the same address either way: only the name differs.
    let cert = TestCert::new();
    let mut server = cert.server("implicit-tls").await;
    let channel = Channel::parse(&format!(
        "mailtos://berth:pa%3Ass%40word@127.0.0.1:{}?to=ops@example.com&from=berth@example.com",
        server.port
    ))
    .unwrap();
    let err = notifier_trusting(Some(&cert.pem))
        .send_test(&channel)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    server.assert_no_mail().await;
}
