//! Discord, Slack, Telegram and Pushover are public services, and ntfy and
//! Gotify servers are not installed here: none can be reached from the test
//! machines. A real HTTP server on 127.0.0.1 stands in for each (the vendor
//! base URL is pointed at it with `with_vendor_base_for_tests`; ntfy and
//! Gotify URLs name it directly), and each test checks the request's method,
//! path, headers and body against the service's documented API.

mod common;

use berth_notify::{Channel, EventKind, Message, SendError, Severity};
use common::{Receiver, local_notifier};

fn alert() -> Message {
    Message::new(
        EventKind::AlertFiring,
        Severity::Critical,
        "Disk over 90 % on server",
        "/ is 93 % full <since 10:02> & rising",
    )
    .field("mount", "/")
    .field("used", "93 %")
    .dedup_key("alert:disk:/")
}

#[tokio::test]
async fn discord_gets_one_embed_at_its_execute_webhook_path() {
    // Stand-in for https://discord.com (POST /api/webhooks/{id}/{token}).
    let receiver = Receiver::start().await;
    let channel = Channel::parse("discord://123456789/tok-EN_x").unwrap();
    local_notifier()
        .with_vendor_base_for_tests(receiver.base())
        .send(&channel, &alert())
        .await
        .unwrap();
    let request = receiver.only_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/api/webhooks/123456789/tok-EN_x?wait=true");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    let embed = &body["embeds"][0];
    assert_eq!(embed["title"], "Disk over 90 % on server");
    assert_eq!(
        embed["description"],
        "/ is 93 % full <since 10:02> & rising"
    );
    assert_eq!(embed["color"], 0xE74C3C);
    assert_eq!(embed["fields"][0]["name"], "mount");
    assert_eq!(embed["fields"][1]["value"], "93 %");
    assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
}

#[tokio::test]
async fn discords_error_answer_comes_back_without_the_token() {
    let receiver = Receiver::start().await;
    receiver.answer_with(
        401,
        r#"{"message": "Invalid Webhook Token", "code": 50027}"#,
    );
    let channel = Channel::parse("discord://123456789/SECRETTOKEN").unwrap();
    let err = local_notifier()
        .with_vendor_base_for_tests(receiver.base())
        .send(&channel, &alert())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("Invalid Webhook Token"), "{text}");
    assert!(!text.contains("SECRETTOKEN"), "{text}");
    assert!(!format!("{err:?}").contains("SECRETTOKEN"));
}

#[tokio::test]
async fn a_rate_limited_send_is_retryable_after_the_servers_delay() {
    let receiver = Receiver::start().await;
    receiver.answer_with_headers(
        429,
        r#"{"message": "You are being rate limited.", "retry_after": 7}"#,
        &[("retry-after", "7")],
    );
    let channel = Channel::parse("discord://123/token").unwrap();
    let err = local_notifier()
        .with_vendor_base_for_tests(receiver.base())
        .send_test(&channel)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
}

#[tokio::test]
async fn slack_gets_blocks_with_a_text_fallback_at_its_services_path() {
    // Stand-in for https://hooks.slack.com (POST /services/A/B/C).
    let receiver = Receiver::start().await;
    let channel = Channel::parse("slack://T0001/B0002/XXXX3/#ops").unwrap();
    local_notifier()
        .with_vendor_base_for_tests(receiver.base())
        .send(&channel, &alert())
        .await
        .unwrap();
    let request = receiver.only_request();
    assert_eq!(request.uri, "/services/T0001/B0002/XXXX3");
    let body = request.json();
    assert_eq!(body["text"], "Disk over 90 % on server");
    assert_eq!(body["channel"], "#ops");
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(body["blocks"][0]["text"]["type"], "plain_text");
    // mrkdwn escapes &, < and > so "<since…>" is not read as a link.
    assert_eq!(
        body["blocks"][1]["text"]["text"],
        "/ is 93 % full &lt;since 10:02&gt; &amp; rising"
    );
    assert_eq!(body["blocks"][2]["fields"][0]["text"], "*mount*\n/");
}

#[tokio::test]
async fn telegram_gets_send_message_with_escaped_html() {
    // Stand-in for https://api.telegram.org (POST /bot{token}/sendMessage).
    let receiver = Receiver::start().await;
    let channel = Channel::parse("tgram://123456:ABC-def_ghi/-1001234567").unwrap();
    local_notifier()
        .with_vendor_base_for_tests(receiver.base())
        .send(&channel, &alert())
        .await
        .unwrap();
    let request = receiver.only_request();
    assert_eq!(request.uri, "/bot123456:ABC-def_ghi/sendMessage");
    let body = request.json();
    assert_eq!(body["chat_id"], "-1001234567");
    assert_eq!(body["parse_mode"], "HTML");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("<b>Disk over 90 % on server</b>\n\n"),
        "{text}"
    );
    assert!(text.contains("&lt;since 10:02&gt; &amp; rising"), "{text}");
    assert!(text.contains("mount: /"), "{text}");
}

#[tokio::test]
async fn pushover_gets_the_documented_form_fields() {
    // Stand-in for https://api.pushover.net (POST /1/messages.json).
    let receiver = Receiver::start().await;
    let channel = Channel::parse("pover://uUSERKEY1@aAPPTOKEN2/phone").unwrap();
    local_notifier()
        .with_vendor_base_for_tests(receiver.base())
        .send(&channel, &alert())
        .await
        .unwrap();
    let request = receiver.only_request();
    assert_eq!(request.uri, "/1/messages.json");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = form_pairs(&request.body);
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("token"), Some("aAPPTOKEN2"));
    assert_eq!(get("user"), Some("uUSERKEY1"));
    assert_eq!(get("title"), Some("Disk over 90 % on server"));
    assert_eq!(get("priority"), Some("1"));
    assert_eq!(get("device"), Some("phone"));
    assert!(get("message").unwrap().contains("used: 93 %"));
}

#[tokio::test]
async fn ntfy_gets_a_json_publish_with_topic_priority_and_basic_auth() {
    // The local server stands in for an ntfy server (JSON publishing: POST /).
    let receiver = Receiver::start().await;
    let channel = Channel::parse(&format!(
        "ntfy://user:pw@127.0.0.1:{}/berth-alerts",
        receiver.port()
    ))
    .unwrap();
    local_notifier().send(&channel, &alert()).await.unwrap();
    let request = receiver.only_request();
    assert_eq!(request.uri, "/");
    // base64("user:pw")
    assert_eq!(request.header("authorization"), Some("Basic dXNlcjpwdw=="));
    let body = request.json();
    assert_eq!(body["topic"], "berth-alerts");
    assert_eq!(body["title"], "Disk over 90 % on server");
    assert_eq!(body["priority"], 5);
    assert_eq!(body["tags"][1], "alert.firing");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("/ is 93 % full")
    );
}

#[tokio::test]
async fn ntfy_with_an_access_token_sends_it_as_bearer() {
    let receiver = Receiver::start().await;
    let channel = Channel::parse(&format!(
        "ntfy://127.0.0.1:{}/t1?token=tk_abc",
        receiver.port()
    ))
    .unwrap();
    local_notifier().send_test(&channel).await.unwrap();
    assert_eq!(
        receiver.only_request().header("authorization"),
        Some("Bearer tk_abc")
    );
}

#[tokio::test]
async fn gotify_gets_a_message_with_the_app_token_in_its_header() {
    // The local server stands in for a Gotify server (POST /message).
    let receiver = Receiver::start().await;
    let channel = Channel::parse(&format!(
        "gotify://127.0.0.1:{}/gotify/AppTok.1",
        receiver.port()
    ))
    .unwrap();
    local_notifier().send(&channel, &alert()).await.unwrap();
    let request = receiver.only_request();
    assert_eq!(request.uri, "/gotify/message");
    assert_eq!(request.header("x-gotify-key"), Some("AppTok.1"));
    let body = request.json();
    assert_eq!(body["title"], "Disk over 90 % on server");
    assert_eq!(body["priority"], 8);
    assert!(body["message"].as_str().unwrap().contains("mount: /"));
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(body).unwrap();
    text.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

/// application/x-www-form-urlencoded: '+' is a space, then %XX.
fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
