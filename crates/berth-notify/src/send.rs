//! Formatting a [`Message`] for each service, and delivering it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::channel::{Channel, Gotify, Kind, Ntfy, Webhook};
use crate::error::SendError;
use crate::message::{Message, Severity, truncate};
use crate::net::{self, HttpPost};

/// The signature header of the generic webhook: `sha256=<hex>` of
/// HMAC-SHA256(secret, "<timestamp>.<body>").
pub const SIGNATURE_HEADER: &str = "X-Berth-Signature";
/// Unix seconds when the request was signed; part of the signed text, so a
/// receiver can refuse old (replayed) requests.
pub const TIMESTAMP_HEADER: &str = "X-Berth-Timestamp";
/// The event name (`backup.failed`), also in the body.
pub const EVENT_HEADER: &str = "X-Berth-Event";

/// The most of a message body any channel sends; services get less where
/// their own limit is lower.
const BODY_CAP: usize = 16 * 1024;
const FIELD_CAP: usize = 1024;
const MAX_FIELDS: usize = 25;

/// Admin settings for delivery.
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    /// Let channels reach loopback, private, link-local and unique-local
    /// addresses (a relay on the same host, a LAN webhook). Off by default.
    pub allow_private: bool,
    /// For resolving, connecting and the whole exchange, each.
    pub timeout: Duration,
    /// PEM certificates of CAs to trust besides the system's, for a mail
    /// relay or webhook receiver with a private CA.
    pub extra_ca_pem: Option<String>,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::from_secs(15),
            extra_ca_pem: None,
        }
    }
}

/// Sends messages to channels. Cheap to clone; holds no connection.
/// Whether and when to send is the caller's decision (berth-jobs retries).
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    options: NotifyOptions,
    vendor_base: Option<String>,
}

impl Notifier {
    pub fn new(options: NotifyOptions) -> Self {
        Self {
            options,
            vendor_base: None,
        }
    }

    /// Tests only: send what would go to discord.com, hooks.slack.com,
    /// api.telegram.org or api.pushover.net to `base` (a local server)
    /// instead, with the same paths. The private-address rule still applies.
    #[doc(hidden)]
    pub fn with_vendor_base_for_tests(mut self, base: impl Into<String>) -> Self {
        self.vendor_base = Some(base.into().trim_end_matches('/').to_owned());
        self
    }

    /// Delivers `message` once. The error carries the server's answer.
    pub async fn send(&self, channel: &Channel, message: &Message) -> Result<(), SendError> {
        tracing::debug!(
            channel.service = channel.service(),
            channel.url = %channel,
            event = message.event.as_str(),
            "sending notification"
        );
        match &channel.kind {
            Kind::Email(email) => crate::email::send(email, message, &self.options).await,
            _ => {
                let post = self.prepare_http(channel, message, unix_now())?;
                net::post(post, &self.options).await
            }
        }
    }

    /// What the "Test" button does: sends [`Message::test`].
    pub async fn send_test(&self, channel: &Channel) -> Result<(), SendError> {
        self.send(channel, &Message::test()).await
    }

    fn vendor(&self, public: &str) -> String {
        self.vendor_base
            .clone()
            .unwrap_or_else(|| public.to_owned())
    }

    pub(crate) fn prepare_http(
        &self,
        channel: &Channel,
        message: &Message,
        now: u64,
    ) -> Result<HttpPost, SendError> {
        let post = match &channel.kind {
            Kind::Webhook(w) => webhook(w, message, now),
            Kind::Discord { id, token } => json_post(
                format!(
                    "{}/api/webhooks/{id}/{token}?wait=true",
                    self.vendor("https://discord.com")
                ),
                discord_body(message),
            ),
            Kind::Slack { a, b, c, channel } => json_post(
                format!(
                    "{}/services/{a}/{b}/{c}",
                    self.vendor("https://hooks.slack.com")
                ),
                slack_body(message, channel.as_deref()),
            ),
            Kind::Telegram { token, chat_id } => json_post(
                format!(
                    "{}/bot{token}/sendMessage",
                    self.vendor("https://api.telegram.org")
                ),
                telegram_body(message, chat_id),
            ),
            Kind::Ntfy(n) => ntfy(n, message),
            Kind::Gotify(g) => gotify(g, message),
            Kind::Pushover {
                user,
                token,
                device,
            } => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                form.append_pair("token", token)
                    .append_pair("user", user)
                    .append_pair("title", &truncate(&message.title, 250))
                    .append_pair("message", &truncate(&message.plain_text(), 1024))
                    .append_pair(
                        "priority",
                        if message.severity == Severity::Critical {
                            "1"
                        } else {
                            "0"
                        },
                    );
                if let Some(d) = device {
                    form.append_pair("device", d);
                }
                Ok(HttpPost {
                    url: url(format!(
                        "{}/1/messages.json",
                        self.vendor("https://api.pushover.net")
                    ))?,
                    headers: Vec::new(),
                    content_type: "application/x-www-form-urlencoded",
                    body: form.finish().into_bytes(),
                })
            }
            Kind::Email(_) => unreachable!("e-mail goes through SMTP"),
        }?;
        Ok(post)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn url(s: String) -> Result<reqwest::Url, SendError> {
    // Built from parsed parts, so a failure is a bug here, not bad input;
    // still no panic on a notification path. The URL may hold a token: not shown.
    reqwest::Url::parse(&s).map_err(|e| SendError::Transport {
        host: String::new(),
        reason: format!("could not build the request URL: {e}"),
    })
}

fn json_post(target: String, body: Value) -> Result<HttpPost, SendError> {
    Ok(HttpPost {
        url: url(target)?,
        headers: Vec::new(),
        content_type: "application/json",
        body: body.to_string().into_bytes(),
    })
}

fn base_url(tls: bool, host: &crate::channel::HostPort) -> String {
    format!("{}://{host}", if tls { "https" } else { "http" })
}

fn basic(auth: &Option<(String, String)>) -> Option<String> {
    use base64_lite::encode;
    auth.as_ref()
        .map(|(u, p)| format!("Basic {}", encode(format!("{u}:{p}").as_bytes())))
}

/// The signature a receiver recomputes: hex HMAC-SHA256 over
/// `"<timestamp>.<body>"` with the shared secret.
pub fn webhook_signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn capped_fields(message: &Message) -> impl Iterator<Item = (String, String)> + '_ {
    message
        .fields
        .iter()
        .take(MAX_FIELDS)
        .map(|(n, v)| (truncate(n, 256), truncate(v, FIELD_CAP)))
}

fn webhook(w: &Webhook, message: &Message, now: u64) -> Result<HttpPost, SendError> {
    let fields: Vec<Value> = capped_fields(message)
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    let body = json!({
        "version": 1,
        "event": message.event.as_str(),
        "severity": message.severity.as_str(),
        "title": truncate(&message.title, 1024),
        "body": truncate(&message.body, BODY_CAP),
        "fields": fields,
        "dedup_key": message.dedup_key,
        "timestamp": now,
    })
    .to_string()
    .into_bytes();
    let mut headers = vec![
        (EVENT_HEADER.to_owned(), message.event.as_str().to_owned()),
        (TIMESTAMP_HEADER.to_owned(), now.to_string()),
    ];
    if let Some(secret) = &w.secret {
        headers.push((
            SIGNATURE_HEADER.to_owned(),
            webhook_signature(secret, now, &body),
        ));
    }
    if let Some(auth) = basic(&w.basic_auth) {
        headers.push(("Authorization".into(), auth));
    }
    headers.extend(w.headers.iter().cloned());
    let mut target = url(format!("{}{}", base_url(w.tls, &w.host), w.path))?;
    if !w.params.is_empty() {
        target.query_pairs_mut().extend_pairs(w.params.iter());
    }
    Ok(HttpPost {
        url: target,
        headers,
        content_type: "application/json",
        body,
    })
}

fn discord_color(severity: Severity) -> u32 {
    match severity {
        Severity::Critical => 0xE7_4C_3C,
        Severity::Warning => 0xF1_C4_0F,
        Severity::Success => 0x2E_CC_71,
        Severity::Info => 0x34_98_DB,
    }
}

/// Discord's execute-webhook body: one embed, limits from Discord's docs
/// (title 256, description 4096, 25 fields of 256/1024). No mentions parsed,
/// so an error text with "@everyone" pings nobody.
fn discord_body(message: &Message) -> Value {
    let fields: Vec<Value> = capped_fields(message)
        .map(|(name, value)| json!({ "name": name, "value": value, "inline": true }))
        .collect();
    json!({
        "username": "berth",
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            "title": truncate(&message.title, 256),
            "description": truncate(&message.body, 4096),
            "color": discord_color(message.severity),
            "fields": fields,
            "footer": { "text": message.event.as_str() },
        }],
    })
}

/// Slack mrkdwn treats these three as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack's incoming-webhook body: `text` as the notification fallback and
/// Block Kit blocks (header 150, section 3000, at most 10 fields).
fn slack_body(message: &Message, channel: Option<&str>) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&message.title, 150) },
    })];
    if !message.body.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": truncate(&slack_escape(&message.body), 3000) },
        }));
    }
    let fields: Vec<Value> = capped_fields(message)
        .take(10)
        .map(|(n, v)| {
            json!({
                "type": "mrkdwn",
                "text": truncate(&format!("*{}*\n{}", slack_escape(&n), slack_escape(&v)), 2000),
            })
        })
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "plain_text", "text": message.event.as_str() }],
    }));
    let mut body = json!({
        "text": truncate(&message.title, 3000),
        "blocks": blocks,
    });
    if let Some(ch) = channel {
        body["channel"] = json!(ch);
    }
    body
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Telegram's sendMessage: HTML parse mode (escaped), 4096 characters at most.
fn telegram_body(message: &Message, chat_id: &str) -> Value {
    let text = format!(
        "<b>{}</b>\n\n{}",
        html_escape(&truncate(&message.title, 256)),
        html_escape(&truncate(&message.plain_text(), 3500))
    );
    json!({
        "chat_id": chat_id,
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": { "is_disabled": true },
    })
}

/// ntfy's JSON publishing: POST to the server's root with the topic inside.
fn ntfy(n: &Ntfy, message: &Message) -> Result<HttpPost, SendError> {
    let (priority, tag) = match message.severity {
        Severity::Critical => (5, "rotating_light"),
        Severity::Warning => (4, "warning"),
        Severity::Success => (3, "white_check_mark"),
        Severity::Info => (3, "information_source"),
    };
    let body = json!({
        "topic": n.topic,
        "title": truncate(&message.title, 256),
        "message": truncate(&message.plain_text(), 4000),
        "priority": priority,
        "tags": [tag, message.event.as_str()],
    });
    let mut headers = Vec::new();
    if let Some(token) = &n.token {
        headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
    } else if let Some(auth) = basic(&n.basic_auth) {
        headers.push(("Authorization".to_owned(), auth));
    }
    Ok(HttpPost {
        url: url(format!("{}/", base_url(n.tls, &n.host)))?,
        headers,
        content_type: "application/json",
        body: body.to_string().into_bytes(),
    })
}

/// Gotify's POST /message with the app token in a header (not the query,
/// where proxies log it).
fn gotify(g: &Gotify, message: &Message) -> Result<HttpPost, SendError> {
    let priority = match message.severity {
        Severity::Critical => 8,
        Severity::Warning => 5,
        Severity::Success | Severity::Info => 2,
    };
    let body = json!({
        "title": truncate(&message.title, 256),
        "message": truncate(&message.plain_text(), BODY_CAP),
        "priority": priority,
        "extras": { "client::display": { "contentType": "text/plain" } },
    });
    Ok(HttpPost {
        url: url(format!("{}{}/message", base_url(g.tls, &g.host), g.prefix))?,
        headers: vec![("X-Gotify-Key".to_owned(), g.token.clone())],
        content_type: "application/json",
        body: body.to_string().into_bytes(),
    })
}

/// Standard base64 for one Basic header; not worth a dependency.
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::EventKind;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_lite::encode(input.as_bytes()), expected);
        }
    }

    #[test]
    fn the_signature_matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        // Here the signed text is "<timestamp>.<body>", so split it that way.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sig = webhook_signature("Jefe", 1, b"x");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1.x");
        assert_eq!(
            sig,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
    }

    #[test]
    fn a_long_body_is_cut_to_the_services_limit() {
        let long = "x".repeat(100_000);
        let m = Message::new(EventKind::BackupFailed, Severity::Critical, &long, &long)
            .field("error", &long);
        let n = Notifier::default();
        for url in [
            "json://example.com/h",
            "discord://1/t",
            "slack://a/b/c",
            "tgram://1:a/2",
            "ntfy://example.com/t",
            "gotify://example.com/t",
            "pover://u@t",
        ] {
            let post = n
                .prepare_http(&Channel::parse(url).unwrap(), &m, 0)
                .unwrap();
            assert!(
                post.body.len() < 64 * 1024,
                "{url}: {} bytes",
                post.body.len()
            );
        }
    }
}
