//! Parsing of Apprise-style channel URLs and their redacted form.

use std::fmt;

use lettre::message::Mailbox;
use percent_encoding::percent_decode_str;

use crate::error::ParseError;

/// A notification channel, built only by [`Channel::parse`] from one URL
/// string. `Display` and `Debug` show the redacted form: no token, password,
/// signing secret or webhook path ever appears there.
#[derive(Clone, PartialEq, Eq)]
pub struct Channel {
    pub(crate) kind: Kind,
    /// The URL as the admin gave it, so the store can seal it at rest.
    source: String,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Webhook(Webhook),
    Email(Email),
    Discord {
        id: String,
        token: String,
    },
    Slack {
        a: String,
        b: String,
        c: String,
        channel: Option<String>,
    },
    Telegram {
        token: String,
        chat_id: String,
    },
    Ntfy(Ntfy),
    Gotify(Gotify),
    Pushover {
        user: String,
        token: String,
        device: Option<String>,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Webhook {
    pub tls: bool,
    pub host: HostPort,
    /// The path as given (still percent-encoded), starting with `/`.
    pub path: String,
    pub basic_auth: Option<(String, String)>,
    pub secret: Option<String>,
    /// `+Name=value` options: extra request headers (Apprise's convention).
    pub headers: Vec<(String, String)>,
    /// `-name=value` options: query parameters of the target URL.
    pub params: Vec<(String, String)>,
}

#[derive(Clone, PartialEq, Eq, Debug, Copy)]
pub enum SmtpSecurity {
    /// `mailtos://`: TLS from the first byte (port 465).
    ImplicitTls,
    /// `mailto://` (default): STARTTLS is required; the mail is not sent in clear.
    StartTls,
    /// `mailto://…?starttls=no`: plain SMTP, for a relay on the same host.
    Plain,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Email {
    pub host: HostPort,
    pub security: SmtpSecurity,
    pub credentials: Option<(String, String)>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Ntfy {
    pub tls: bool,
    pub host: HostPort,
    pub topic: String,
    pub basic_auth: Option<(String, String)>,
    pub token: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Gotify {
    pub tls: bool,
    pub host: HostPort,
    /// A path prefix when Gotify is served under one (`/gotify`), else empty.
    pub prefix: String,
    pub token: String,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct HostPort {
    pub host: String,
    pub port: Option<u16>,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// A URL cut into the pieces every scheme uses. Path segments and userinfo
/// are percent-decoded; the raw path is kept for webhooks.
struct Parts<'a> {
    scheme: &'static str,
    user: Option<String>,
    password: Option<String>,
    authority: &'a str,
    raw_path: &'a str,
    segments: Vec<String>,
    query: Vec<(String, String)>,
}

const SCHEMES: &[&str] = &[
    "json", "jsons", "mailto", "mailtos", "discord", "slack", "tgram", "ntfy", "ntfys", "gotify",
    "gotifys", "pover",
];

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

impl<'a> Parts<'a> {
    fn split(url: &'a str) -> Result<Self, ParseError> {
        let (scheme, rest) = url.trim().split_once("://").ok_or(ParseError::NoScheme)?;
        let lower = scheme.to_ascii_lowercase();
        let scheme = SCHEMES
            .iter()
            .find(|s| **s == lower)
            .copied()
            .ok_or_else(|| ParseError::UnknownScheme(lower.clone()))?;
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, q),
            None => (rest, ""),
        };
        let (authority_all, raw_path) = match before_query.find('/') {
            Some(i) => before_query.split_at(i),
            None => (before_query, ""),
        };
        // The last '@' splits userinfo from the host: a password may contain '@'
        // only percent-encoded, but tolerate it unencoded too.
        let (userinfo, authority) = match authority_all.rsplit_once('@') {
            Some((u, a)) => (Some(u), a),
            None => (None, authority_all),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(decode(user)), Some(decode(pass))),
                None => (Some(decode(u)), None),
            },
        };
        let segments = raw_path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode)
            .collect();
        // Percent-decoding only, no '+' for space: '+' starts a header
        // option and appears in addresses (ops+berth@example.com).
        let query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(pair), String::new()),
            })
            .collect();
        Ok(Parts {
            scheme,
            user: user.filter(|u| !u.is_empty()),
            password: password.filter(|p| !p.is_empty()),
            authority,
            raw_path,
            segments,
            query,
        })
    }

    fn invalid(&self, problem: impl Into<String>) -> ParseError {
        ParseError::Invalid {
            scheme: self.scheme,
            problem: problem.into(),
        }
    }

    fn missing(&self, what: &'static str, form: &'static str) -> ParseError {
        ParseError::Missing {
            scheme: self.scheme,
            what,
            form,
        }
    }

    /// Takes a query parameter out, so leftovers can be reported as unknown.
    fn take(&mut self, key: &str) -> Option<String> {
        let i = self
            .query
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(key))?;
        Some(self.query.remove(i).1)
    }

    /// Unknown options are refused rather than ignored, so a typo
    /// (`?starttsl=no`) does not silently change how mail is sent.
    fn no_more_query(&self, known: &str) -> Result<(), ParseError> {
        match self.query.first() {
            None => Ok(()),
            Some((k, _)) => {
                Err(self.invalid(format!("unknown option {k:?}; this scheme knows {known}")))
            }
        }
    }

    fn no_userinfo(&self) -> Result<(), ParseError> {
        if self.user.is_some() || self.password.is_some() {
            return Err(self.invalid("a user or password is not used by this scheme"));
        }
        Ok(())
    }

    fn host_port(&self, form: &'static str) -> Result<HostPort, ParseError> {
        parse_host_port(self.authority).map_err(|problem| match problem {
            None => self.missing("a host", form),
            Some(p) => self.invalid(p),
        })
    }

    fn basic_auth(&self) -> Option<(String, String)> {
        self.user
            .clone()
            .map(|u| (u, self.password.clone().unwrap_or_default()))
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`. `Err(None)` means empty.
fn parse_host_port(authority: &str) -> Result<HostPort, Option<String>> {
    if authority.is_empty() {
        return Err(None);
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| Some(format!("{authority:?} has an unclosed '['")))?;
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| Some(format!("{v6:?} is not an IPv6 address")))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| Some(format!("unexpected {p:?} after the IPv6 address")))?,
            ),
        };
        (v6.to_owned(), port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if !host.contains(':')
        && (host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'))
    {
        return Err(Some(format!("{host:?} is not a host name or address")));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(Some(format!("{p:?} is not a port (1-65535)"))),
        },
    };
    Ok(HostPort {
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn yes_no(p: &Parts<'_>, key: &str, value: &str) -> Result<bool, ParseError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Ok(true),
        "no" | "false" | "0" | "off" => Ok(false),
        _ => Err(p.invalid(format!("{key} must be yes or no, not {value:?}"))),
    }
}

fn mailbox(p: &Parts<'_>, what: &str, s: &str) -> Result<Mailbox, ParseError> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| p.invalid(format!("{what} {s:?} is not an e-mail address: {e}")))
}

impl Channel {
    /// Parses one channel URL. The forms are listed in the crate README.
    pub fn parse(url: &str) -> Result<Self, ParseError> {
        let mut p = Parts::split(url)?;
        let kind = match p.scheme {
            "json" | "jsons" => {
                const FORM: &str = "json://[user:password@]host[:port]/path[?secret=…]";
                let host = p.host_port(FORM)?;
                let secret = p.take("secret").filter(|s| !s.is_empty());
                let mut headers = Vec::new();
                let mut params = Vec::new();
                for (key, value) in std::mem::take(&mut p.query) {
                    if let Some(name) = key.strip_prefix('+') {
                        let reserved = name.eq_ignore_ascii_case("host")
                            || name.eq_ignore_ascii_case("content-length")
                            || name.eq_ignore_ascii_case("content-type")
                            || name.to_ascii_lowercase().starts_with("x-berth-");
                        if !is_token(name) || reserved {
                            return Err(p.invalid(format!(
                                "{name:?} cannot be set as a header (+Name=value; not Host, Content-* or X-Berth-*)"
                            )));
                        }
                        if value.chars().any(|c| c.is_control()) {
                            return Err(p.invalid(format!(
                                "the value of header {name:?} has a control character"
                            )));
                        }
                        headers.push((name.to_owned(), value));
                    } else if let Some(name) = key.strip_prefix('-').filter(|n| !n.is_empty()) {
                        params.push((name.to_owned(), value));
                    } else {
                        p.query.push((key, value));
                    }
                }
                p.no_more_query("secret, +Header=value and -param=value")?;
                Kind::Webhook(Webhook {
                    tls: p.scheme == "jsons",
                    host,
                    path: if p.raw_path.is_empty() {
                        "/".into()
                    } else {
                        p.raw_path.to_owned()
                    },
                    basic_auth: p.basic_auth(),
                    secret,
                    headers,
                    params,
                })
            }
            "mailto" | "mailtos" => {
                const FORM: &str = "mailto://[user:password@]host[:port]?to=a@example.com[,b@…][&from=…][&starttls=yes|no]";
                let host = p.host_port(FORM)?;
                if !p.segments.is_empty() {
                    return Err(p.invalid("put recipients in ?to=, not in the path"));
                }
                let to_list = p
                    .take("to")
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| p.missing("recipients (?to=…)", FORM))?;
                let to = to_list
                    .split(',')
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| mailbox(&p, "recipient", t))
                    .collect::<Result<Vec<_>, _>>()?;
                let from = match p.take("from") {
                    Some(f) => mailbox(&p, "sender", &f)?,
                    None => match &p.user {
                        Some(u) if u.contains('@') => mailbox(&p, "sender", u)?,
                        _ => {
                            return Err(p.missing(
                                "a sender (?from=…) when the user is not an address",
                                FORM,
                            ));
                        }
                    },
                };
                let starttls = match p.take("starttls") {
                    Some(v) => Some(yes_no(&p, "starttls", &v)?),
                    None => None,
                };
                let security = match (p.scheme, starttls) {
                    ("mailtos", Some(_)) => {
                        return Err(p.invalid(
                            "mailtos:// is TLS from the start; starttls applies to mailto:// only",
                        ));
                    }
                    ("mailtos", None) => SmtpSecurity::ImplicitTls,
                    (_, Some(false)) => SmtpSecurity::Plain,
                    _ => SmtpSecurity::StartTls,
                };
                p.no_more_query("to, from, starttls")?;
                let credentials = match (p.user.clone(), p.password.clone()) {
                    (Some(u), Some(pw)) => Some((u, pw)),
                    (Some(_), None) => {
                        return Err(p.invalid("a user needs a password (user:password@host)"));
                    }
                    _ => None,
                };
                Kind::Email(Email {
                    host,
                    security,
                    credentials,
                    from,
                    to,
                })
            }
            "discord" => {
                const FORM: &str = "discord://webhook_id/webhook_token";
                p.no_userinfo()?;
                let id = decode(p.authority);
                let [token] = p.segments.as_slice() else {
                    return Err(p.missing("a webhook id and token", FORM));
                };
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(p.invalid("the webhook id is the number in the webhook URL"));
                }
                if !is_token(token) {
                    return Err(p.invalid("the webhook token has unexpected characters"));
                }
                p.no_more_query("no options")?;
                Kind::Discord {
                    id,
                    token: token.clone(),
                }
            }
            "slack" => {
                const FORM: &str = "slack://TokenA/TokenB/TokenC[/#channel]";
                p.no_userinfo()?;
                let a = decode(p.authority);
                let (b, c, channel) = match p.segments.as_slice() {
                    [b, c] => (b.clone(), c.clone(), None),
                    [b, c, ch] => (b.clone(), c.clone(), Some(ch.clone())),
                    _ => return Err(p.missing("three tokens", FORM)),
                };
                if ![&a, &b, &c].iter().all(|t| is_token(t)) {
                    return Err(p.invalid(
                        "the tokens are the three parts after /services/ in the webhook URL",
                    ));
                }
                if let Some(ch) = &channel
                    && !(ch.starts_with('#') || ch.starts_with('@'))
                {
                    return Err(p.invalid("a channel starts with # (or @ for a user)"));
                }
                p.no_more_query("no options")?;
                Kind::Slack { a, b, c, channel }
            }
            "tgram" => {
                const FORM: &str = "tgram://bot_token/chat_id";
                p.no_userinfo()?;
                let token = decode(p.authority);
                let [chat_id] = p.segments.as_slice() else {
                    return Err(p.missing("a bot token and one chat id", FORM));
                };
                let valid_token = token.split_once(':').is_some_and(|(id, secret)| {
                    !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) && is_token(secret)
                });
                if !valid_token {
                    return Err(
                        p.invalid("the bot token looks like 123456:ABC-DEF… (from @BotFather)")
                    );
                }
                let valid_chat = chat_id
                    .strip_prefix('-')
                    .unwrap_or(chat_id)
                    .chars()
                    .all(|c| c.is_ascii_digit())
                    || (chat_id.starts_with('@') && is_token(&chat_id[1..]));
                if chat_id.is_empty() || !valid_chat {
                    return Err(p.invalid("the chat id is a number (or @channelname)"));
                }
                p.no_more_query("no options")?;
                Kind::Telegram {
                    token,
                    chat_id: chat_id.clone(),
                }
            }
            "ntfy" | "ntfys" => {
                const FORM: &str = "ntfy://[user:password@]host[:port]/topic[?token=…]";
                let host = p.host_port(FORM)?;
                let [topic] = p.segments.as_slice() else {
                    return Err(p.missing("a host and one topic", FORM));
                };
                if !is_token(topic) || topic.len() > 64 {
                    return Err(p.invalid("a topic is up to 64 letters, digits, - or _"));
                }
                let topic = topic.clone();
                let token = p.take("token").filter(|t| !t.is_empty());
                p.no_more_query("token")?;
                Kind::Ntfy(Ntfy {
                    tls: p.scheme == "ntfys",
                    host,
                    topic,
                    basic_auth: p.basic_auth(),
                    token,
                })
            }
            "gotify" | "gotifys" => {
                const FORM: &str = "gotify://host[:port][/path]/app_token";
                p.no_userinfo()?;
                let host = p.host_port(FORM)?;
                let Some((token, prefix)) = p.segments.split_last() else {
                    return Err(p.missing("an application token", FORM));
                };
                if !is_token(token) {
                    return Err(p.invalid("the application token has unexpected characters"));
                }
                let prefix = prefix.iter().map(|s| format!("/{s}")).collect::<String>();
                let token = token.clone();
                p.no_more_query("no options")?;
                Kind::Gotify(Gotify {
                    tls: p.scheme == "gotifys",
                    host,
                    prefix,
                    token,
                })
            }
            "pover" => {
                const FORM: &str = "pover://user_key@app_token[/device]";
                let user = p
                    .user
                    .clone()
                    .ok_or_else(|| p.missing("a user key", FORM))?;
                if p.password.is_some() {
                    return Err(p.invalid("no password here: pover://user_key@app_token"));
                }
                let token = decode(p.authority);
                if token.is_empty() {
                    return Err(p.missing("an application token", FORM));
                }
                if !user.chars().all(|c| c.is_ascii_alphanumeric())
                    || !token.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(
                        p.invalid("the user key and application token are letters and digits")
                    );
                }
                let device = match p.segments.as_slice() {
                    [] => None,
                    [d] if is_token(d) => Some(d.clone()),
                    _ => return Err(p.invalid("after the token only one device name may follow")),
                };
                p.no_more_query("no options")?;
                Kind::Pushover {
                    user,
                    token,
                    device,
                }
            }
            _ => unreachable!("SCHEMES and this match list the same schemes"),
        };
        Ok(Channel {
            kind,
            source: url.trim().to_owned(),
        })
    }

    /// The full URL with its secrets, for sealing at rest. Never log it.
    pub fn expose_url(&self) -> &str {
        &self.source
    }

    /// The service's name, for a UI list ("Discord", "E-mail"…).
    pub fn service(&self) -> &'static str {
        match &self.kind {
            Kind::Webhook(_) => "Webhook",
            Kind::Email(_) => "E-mail",
            Kind::Discord { .. } => "Discord",
            Kind::Slack { .. } => "Slack",
            Kind::Telegram { .. } => "Telegram",
            Kind::Ntfy(_) => "ntfy",
            Kind::Gotify(_) => "Gotify",
            Kind::Pushover { .. } => "Pushover",
        }
    }

    /// The URL without secrets, safe for logs and HTML. Same as `Display`.
    pub fn redacted(&self) -> String {
        self.to_string()
    }
}

impl std::str::FromStr for Channel {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A few leading characters so two channels can be told apart, and no more.
fn hint(s: &str) -> String {
    if s.chars().count() > 8 {
        format!("{}***", s.chars().take(4).collect::<String>())
    } else {
        "***".into()
    }
}

fn user_part(user: Option<&str>, has_password: bool) -> String {
    match (user, has_password) {
        (Some(u), true) => format!("{u}:***@"),
        (Some(u), false) => format!("{u}@"),
        _ => String::new(),
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Webhook(w) => {
                let scheme = if w.tls { "jsons" } else { "json" };
                let auth = w.basic_auth.as_ref();
                // A webhook path often is the credential (…/hooks/<token>).
                let path = if w.path == "/" { "/" } else { "/***" };
                write!(
                    f,
                    "{scheme}://{}{}{path}",
                    user_part(
                        auth.map(|(u, _)| u.as_str()),
                        auth.is_some_and(|(_, p)| !p.is_empty())
                    ),
                    w.host
                )?;
                // Names only: header and parameter values are often tokens.
                let options = w
                    .secret
                    .iter()
                    .map(|_| "secret=***".to_owned())
                    .chain(w.headers.iter().map(|(n, _)| format!("+{n}=***")))
                    .chain(w.params.iter().map(|(n, _)| format!("-{n}=***")))
                    .collect::<Vec<_>>();
                if !options.is_empty() {
                    write!(f, "?{}", options.join("&"))?;
                }
                Ok(())
            }
            Kind::Email(e) => {
                let scheme = if e.security == SmtpSecurity::ImplicitTls {
                    "mailtos"
                } else {
                    "mailto"
                };
                let to = e.to.iter().map(|m| m.email.to_string()).collect::<Vec<_>>();
                write!(
                    f,
                    "{scheme}://{}{}?to={}&from={}",
                    user_part(e.credentials.as_ref().map(|(u, _)| u.as_str()), true),
                    e.host,
                    to.join(","),
                    e.from.email
                )?;
                if e.security == SmtpSecurity::Plain {
                    f.write_str("&starttls=no")?;
                }
                Ok(())
            }
            Kind::Discord { id, .. } => write!(f, "discord://{id}/***"),
            Kind::Slack { a, b, channel, .. } => {
                write!(f, "slack://{a}/{b}/***")?;
                if let Some(ch) = channel {
                    write!(f, "/{ch}")?;
                }
                Ok(())
            }
            Kind::Telegram { token, chat_id } => {
                let bot = token.split_once(':').map(|(id, _)| id).unwrap_or("");
                write!(f, "tgram://{bot}:***/{chat_id}")
            }
            Kind::Ntfy(n) => {
                let scheme = if n.tls { "ntfys" } else { "ntfy" };
                let auth = n.basic_auth.as_ref();
                // On a public server the topic name is the only password.
                write!(
                    f,
                    "{scheme}://{}{}/{}",
                    user_part(
                        auth.map(|(u, _)| u.as_str()),
                        auth.is_some_and(|(_, p)| !p.is_empty())
                    ),
                    n.host,
                    hint(&n.topic)
                )?;
                if n.token.is_some() {
                    f.write_str("?token=***")?;
                }
                Ok(())
            }
            Kind::Gotify(g) => {
                let scheme = if g.tls { "gotifys" } else { "gotify" };
                write!(f, "{scheme}://{}{}/***", g.host, g.prefix)
            }
            Kind::Pushover { user, device, .. } => {
                write!(f, "pover://{}@***", hint(user))?;
                if let Some(d) = device {
                    write!(f, "/{d}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_its_redacted_form_hides_the_secrets() {
        let cases = [
            (
                "jsons://hooks.example.com/in/SECRETPATH?secret=SIGNKEY",
                "jsons://hooks.example.com/***?secret=***",
                &["SECRETPATH", "SIGNKEY"][..],
            ),
            (
                "json://n8n.example.com/webhook/x?+Authorization=Bearer%20TOK&-key=APIKEY",
                "json://n8n.example.com/***?+Authorization=***&-key=***",
                &["TOK", "APIKEY"][..],
            ),
            (
                "json://bob:PASSWORD@10.0.0.5:8080/",
                "json://bob:***@10.0.0.5:8080/",
                &["PASSWORD"][..],
            ),
            (
                "mailto://alerts%40example.com:PASS%2Fword@smtp.example.com:587?to=ops@example.com,cto@example.com",
                "mailto://alerts@example.com:***@smtp.example.com:587?to=ops@example.com,cto@example.com&from=alerts@example.com",
                &["PASS", "word"][..],
            ),
            (
                "mailtos://u:PASSWORD@smtp.example.com?to=ops+berth@example.com&from=berth@example.com",
                "mailtos://u:***@smtp.example.com?to=ops+berth@example.com&from=berth@example.com",
                &["PASSWORD"][..],
            ),
            (
                "discord://123456789/TOKEN-abc_DEF",
                "discord://123456789/***",
                &["TOKEN"][..],
            ),
            (
                "slack://T000/B000/XXXXSECRET/#ops",
                "slack://T000/B000/***/#ops",
                &["XXXXSECRET"][..],
            ),
            (
                "tgram://123456:ABC-SECRET/-1001234",
                "tgram://123456:***/-1001234",
                &["ABC-SECRET"][..],
            ),
            (
                "ntfys://ntfy.sh/mysecrettopic42?token=tk_SECRET",
                "ntfys://ntfy.sh/myse***?token=***",
                &["mysecrettopic42", "tk_SECRET"][..],
            ),
            (
                "gotify://push.example.com:8080/gotify/APPTOKEN",
                "gotify://push.example.com:8080/gotify/***",
                &["APPTOKEN"][..],
            ),
            (
                "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi/phone",
                "pover://uQiR***@***/phone",
                &[
                    "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
                    "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
                ][..],
            ),
        ];
        for (url, shown, secrets) in cases {
            let channel = Channel::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(channel.redacted(), shown, "{url}");
            let debug = format!("{channel:?}");
            for secret in secrets {
                assert!(!debug.contains(secret), "{debug} shows {secret}");
                assert!(!channel.to_string().contains(secret));
            }
            assert_eq!(channel.expose_url(), url);
        }
    }

    #[test]
    fn bad_urls_get_a_message_that_names_the_problem() {
        let cases = [
            ("hooks.example.com/x", "no \"://\""),
            ("ftp://example.com", "unknown channel scheme \"ftp\""),
            ("json:///path", "needs a host"),
            ("json://example.com:99999/", "not a port"),
            ("json://example.com/?secrt=x", "unknown option \"secrt\""),
            (
                "json://example.com/?+X-Berth-Signature=x",
                "cannot be set as a header",
            ),
            (
                "json://example.com/?+Bad%20Name=x",
                "cannot be set as a header",
            ),
            ("mailto://smtp.example.com", "needs recipients"),
            (
                "mailto://smtp.example.com?to=nobody",
                "not an e-mail address",
            ),
            (
                "mailto://user:pw@smtp.example.com?to=a@b.c",
                "needs a sender",
            ),
            (
                "mailtos://smtp.example.com?to=a@b.c&from=x@b.c&starttls=no",
                "mailto:// only",
            ),
            (
                "mailto://smtp.example.com?to=a@b.c&from=x@b.c&starttls=maybe",
                "yes or no",
            ),
            ("discord://abc/token", "webhook id"),
            ("discord://123", "needs a webhook id and token"),
            ("slack://A/B", "needs three tokens"),
            ("tgram://nocolon/123", "bot token"),
            ("tgram://123:abc/notachat", "chat id"),
            ("ntfy://ntfy.sh", "one topic"),
            ("gotify://host", "application token"),
            ("pover://onlytoken", "user key"),
        ];
        for (url, expected) in cases {
            let err = Channel::parse(url).expect_err(url).to_string();
            assert!(err.contains(expected), "{url}: {err}");
        }
    }

    #[test]
    fn mailto_defaults_to_starttls_and_can_be_made_plain() {
        let Kind::Email(e) = Channel::parse("mailto://smtp.example.com?to=a@b.c&from=x@b.c")
            .unwrap()
            .kind
        else {
            panic!()
        };
        assert_eq!(e.security, SmtpSecurity::StartTls);
        let Kind::Email(e) =
            Channel::parse("mailto://127.0.0.1:2525?to=a@b.c&from=x@b.c&starttls=no")
                .unwrap()
                .kind
        else {
            panic!()
        };
        assert_eq!(e.security, SmtpSecurity::Plain);
        assert_eq!(e.host.port, Some(2525));
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        let c = Channel::parse("json://[::1]:8080/hook").unwrap();
        assert_eq!(c.to_string(), "json://[::1]:8080/***");
    }
}
