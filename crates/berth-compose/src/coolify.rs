//! Coolify's template format, read as it is: the `# key: value` header and
//! the `SERVICE_*` variables that declare generated values and routes.

use serde_norway::{Mapping, Value};

use crate::normalize::fold_name;
use crate::plan::Route;
use crate::template::{Generated, GeneratedKind, Metadata};

/// Reads the comment header that opens the file.
pub fn header(text: &str) -> (Metadata, bool) {
    let mut meta = Metadata::default();
    let mut ignored = false;
    for line in text.lines() {
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = comment.split_once(':') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "documentation" => {
                meta.docs = Some(value.clone());
                meta.website = Some(value);
            }
            "slogan" => meta.description = value,
            "category" => meta.category = value,
            "tags" => {
                meta.tags = value
                    .split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect();
            }
            "logo" => meta.logo = Some(value),
            "port" => meta.port = value.parse().ok(),
            "ignore" => ignored = value == "true",
            _ => {}
        }
    }
    (meta, ignored)
}

/// What a `SERVICE_*` name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Magic {
    /// `SERVICE_URL_<NAME>[_<PORT>]` (`url`) or `SERVICE_FQDN_…` (host only).
    Route {
        url: bool,
        name: String,
        port: Option<u16>,
    },
    Generated(GeneratedKind),
}

/// Families, longest prefix first so `PASSWORD_64_X` is not read as
/// `PASSWORD` of a value named `64_X`.
const FAMILIES: &[(&str, GeneratedKind)] = &[
    (
        "PASSWORDWITHSYMBOLS_",
        GeneratedKind::PasswordWithSymbols { length: 32 },
    ),
    ("PASSWORD_64_", GeneratedKind::Password { length: 64 }),
    ("PASSWORD_", GeneratedKind::Password { length: 32 }),
    ("REALBASE64_128_", GeneratedKind::Base64 { bytes: 128 }),
    ("REALBASE64_64_", GeneratedKind::Base64 { bytes: 64 }),
    ("REALBASE64_32_", GeneratedKind::Base64 { bytes: 32 }),
    ("REALBASE64_", GeneratedKind::Base64 { bytes: 32 }),
    // Coolify's BASE64 family is random letters and digits, not base64.
    ("BASE64_128_", GeneratedKind::Password { length: 128 }),
    ("BASE64_64_", GeneratedKind::Password { length: 64 }),
    ("BASE64_32_", GeneratedKind::Password { length: 32 }),
    ("BASE64_", GeneratedKind::Password { length: 32 }),
    ("HEX_128_", GeneratedKind::Hex { bytes: 64 }),
    ("HEX_64_", GeneratedKind::Hex { bytes: 32 }),
    ("HEX_32_", GeneratedKind::Hex { bytes: 16 }),
    ("LOWERCASEUSER_", GeneratedKind::LowercaseUser),
    ("USER_", GeneratedKind::User),
];

/// Reads a `SERVICE_*` name; other names are ordinary variables.
pub fn magic(name: &str) -> Option<Magic> {
    let rest = name.strip_prefix("SERVICE_")?;
    for (prefix, url) in [("URL_", true), ("FQDN_", false)] {
        if let Some(rest) = rest.strip_prefix(prefix) {
            // A trailing `_<digits>` is the port; the name may hold `_`.
            let (name, port) = match rest.rsplit_once('_') {
                Some((n, p)) if !n.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {
                    (n, p.parse().ok())
                }
                _ => (rest, None),
            };
            return (!name.is_empty()).then(|| Magic::Route {
                url,
                name: name.to_owned(),
                port,
            });
        }
    }
    FAMILIES.iter().find_map(|(prefix, kind)| {
        rest.strip_prefix(prefix)
            .filter(|n| !n.is_empty())
            .map(|_| Magic::Generated(*kind))
    })
}

/// The generated value a name declares, if it is one.
pub fn generated(name: &str) -> Option<Generated> {
    match magic(name)? {
        Magic::Generated(kind) => Some(Generated {
            name: name.to_owned(),
            kind,
        }),
        Magic::Route { .. } => None,
    }
}

/// The variable that holds a route's URL or host, without the port suffix
/// (`SERVICE_URL_APP_3000` and `SERVICE_URL_APP` are one route).
pub fn route_variable(url: bool, name: &str) -> String {
    format!("SERVICE_{}_{name}", if url { "URL" } else { "FQDN" })
}

/// Every `SERVICE_[A-Z0-9_]+` token in a text (keys and `${…}` alike).
pub fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("SERVICE_") {
        let start = from + at;
        let before_ok = start == 0 || {
            let b = text.as_bytes()[start - 1];
            !(b.is_ascii_alphanumeric() || b == b'_')
        };
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if before_ok {
            out.push(&text[start..end]);
        }
        from = end.max(start + 1);
    }
    out
}

/// Where a route name appears: the service, the port suffix, the path.
type Place = (String, Option<u16>, Option<String>);

/// The generated values and routes a Coolify document declares.
pub fn scan(services: &Mapping) -> (Vec<Generated>, Vec<Route>) {
    let mut generated: Vec<Generated> = Vec::new();
    // Per route name, each place it appears.
    let mut seen: Vec<(String, Vec<Place>)> = Vec::new();
    for (service, body) in services {
        let Some(service) = service.as_str() else {
            continue;
        };
        let text = serde_norway::to_string(body).unwrap_or_default();
        for token in tokens(&text) {
            match magic(token) {
                Some(Magic::Generated(kind)) if !generated.iter().any(|g| g.name == token) => {
                    generated.push(Generated {
                        name: token.to_owned(),
                        kind,
                    });
                }
                Some(Magic::Route { name, port, .. }) => {
                    let path = env_value(body, token).filter(|v| v.starts_with('/'));
                    let place = (service.to_owned(), port, path);
                    match seen.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, places)) => places.push(place),
                        None => seen.push((name, vec![place])),
                    }
                }
                Some(Magic::Generated(_)) | None => {}
            }
        }
    }
    let names: Vec<&str> = services.keys().filter_map(Value::as_str).collect();
    let routes = seen
        .into_iter()
        .map(|(name, places)| {
            // The route's service is the one its name names (`SERVICE_URL_MY_APP`
            // → `my-app`, as Coolify writes service names in variables), else where it is declared with a port, else where
            // it first appears.
            let by_name = names
                .iter()
                .find(|s| fold_name(s, '_', true) == name)
                .map(|s| (*s).to_owned());
            let with_port = places.iter().find(|p| p.1.is_some()).map(|p| p.0.clone());
            let service = by_name.or(with_port).unwrap_or_else(|| places[0].0.clone());
            let port = places
                .iter()
                .filter(|p| p.1.is_some())
                .find(|p| p.0 == service)
                .or_else(|| places.iter().find(|p| p.1.is_some()))
                .and_then(|p| p.1);
            let path = places
                .iter()
                .find_map(|p| p.2.clone())
                .unwrap_or_else(|| "/".to_owned());
            Route {
                service,
                port,
                path,
                url_variable: Some(route_variable(true, &name)),
                host_variable: Some(route_variable(false, &name)),
            }
        })
        .collect();
    (generated, routes)
}

fn env_value(service: &Value, key: &str) -> Option<String> {
    match service.get("environment")? {
        Value::Mapping(m) => m.get(key).and_then(Value::as_str).map(str::to_owned),
        Value::Sequence(items) => items.iter().filter_map(Value::as_str).find_map(|i| {
            i.split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.to_owned())
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_gives_the_metadata() {
        let (meta, ignored) = header(
            "# documentation: https://example.org\n# slogan: A thing.\n# tags: a, b,c\n# port: 8080\n# ignore: true\nservices: {}\n# category: late\n",
        );
        assert_eq!(meta.docs.as_deref(), Some("https://example.org"));
        assert_eq!(meta.description, "A thing.");
        assert_eq!(meta.tags, ["a", "b", "c"]);
        assert_eq!(meta.port, Some(8080));
        assert_eq!(meta.category, "");
        assert!(ignored);
    }

    #[test]
    fn routes_take_a_port_suffix_and_names_may_hold_underscores() {
        assert_eq!(
            magic("SERVICE_URL_MY_APP_3000"),
            Some(Magic::Route {
                url: true,
                name: "MY_APP".into(),
                port: Some(3000)
            })
        );
        assert_eq!(
            magic("SERVICE_FQDN_API"),
            Some(Magic::Route {
                url: false,
                name: "API".into(),
                port: None
            })
        );
    }

    #[test]
    fn every_generated_family_is_known() {
        let cases = [
            ("SERVICE_USER_DB", GeneratedKind::User),
            ("SERVICE_LOWERCASEUSER_DB", GeneratedKind::LowercaseUser),
            (
                "SERVICE_PASSWORD_DB",
                GeneratedKind::Password { length: 32 },
            ),
            (
                "SERVICE_PASSWORD_64_DB",
                GeneratedKind::Password { length: 64 },
            ),
            (
                "SERVICE_PASSWORDWITHSYMBOLS_DB",
                GeneratedKind::PasswordWithSymbols { length: 32 },
            ),
            ("SERVICE_BASE64_DB", GeneratedKind::Password { length: 32 }),
            (
                "SERVICE_BASE64_32_DB",
                GeneratedKind::Password { length: 32 },
            ),
            (
                "SERVICE_BASE64_64_DB",
                GeneratedKind::Password { length: 64 },
            ),
            (
                "SERVICE_BASE64_128_DB",
                GeneratedKind::Password { length: 128 },
            ),
            ("SERVICE_REALBASE64_DB", GeneratedKind::Base64 { bytes: 32 }),
            (
                "SERVICE_REALBASE64_32_DB",
                GeneratedKind::Base64 { bytes: 32 },
            ),
            (
                "SERVICE_REALBASE64_64_DB",
                GeneratedKind::Base64 { bytes: 64 },
            ),
            (
                "SERVICE_REALBASE64_128_DB",
                GeneratedKind::Base64 { bytes: 128 },
            ),
            ("SERVICE_HEX_32_DB", GeneratedKind::Hex { bytes: 16 }),
            ("SERVICE_HEX_64_DB", GeneratedKind::Hex { bytes: 32 }),
            ("SERVICE_HEX_128_DB", GeneratedKind::Hex { bytes: 64 }),
            (
                "SERVICE_PASSWORD_INFLUXDB_TOKEN",
                GeneratedKind::Password { length: 32 },
            ),
        ];
        for (name, kind) in cases {
            assert_eq!(magic(name), Some(Magic::Generated(kind)), "{name}");
        }
        assert_eq!(magic("SERVICE_OPENAI_KEY"), None);
        assert_eq!(magic("SERVICE_PASSWORD_"), None);
        assert_eq!(magic("MY_SERVICE_PASSWORD_X"), None);
    }

    #[test]
    fn tokens_are_found_in_keys_and_references() {
        assert_eq!(
            tokens("- A=${SERVICE_USER_X}:$SERVICE_PASSWORD_X MY_SERVICE_URL_Y SERVICE_URL_Z_80"),
            ["SERVICE_USER_X", "SERVICE_PASSWORD_X", "SERVICE_URL_Z_80"]
        );
    }
}
