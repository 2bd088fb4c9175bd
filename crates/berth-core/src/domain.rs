//! Names the edge routes by: a host (`DomainName`) and a path prefix (`PathPrefix`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a domain name was refused. Shown next to the form field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("is required")]
    Empty,
    #[error(
        "must be plain ASCII (found {0:?}): write an internationalized name in its punycode form (xn--…)"
    )]
    NonAscii(char),
    #[error("must be at most 253 characters (it is {0})")]
    TooLong(usize),
    #[error("has an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("has a label longer than 63 characters")]
    LabelTooLong,
    #[error("may only contain letters, digits, '-' and '.' (found {0:?})")]
    InvalidChar(char),
    #[error("labels must start and end with a letter or digit")]
    EdgeHyphen,
    #[error("a wildcard is only allowed as the whole leftmost label, as in *.example.com")]
    MisplacedWildcard,
    #[error("is a URL: enter only the host name, such as app.example.com")]
    Url,
}

/// A host name the edge answers to: lowercase, without a trailing dot, each
/// label a DNS label; `*` may stand as the whole leftmost label
/// (`*.example.com`, which covers exactly one more label).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(input: &str) -> Result<DomainName, DomainError> {
        let name = input.trim();
        if name.is_empty() {
            return Err(DomainError::Empty);
        }
        if let Some(c) = name.chars().find(|c| !c.is_ascii()) {
            return Err(DomainError::NonAscii(c));
        }
        if name.contains("://") || name.contains('/') {
            return Err(DomainError::Url);
        }
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if name.len() > 253 {
            return Err(DomainError::TooLong(name.len()));
        }
        let labels: Vec<&str> = name.split('.').collect();
        for (i, label) in labels.iter().enumerate() {
            if label.is_empty() {
                return Err(DomainError::EmptyLabel);
            }
            if label.contains('*') {
                if i != 0 || *label != "*" || labels.len() < 2 {
                    return Err(DomainError::MisplacedWildcard);
                }
                continue;
            }
            if label.len() > 63 {
                return Err(DomainError::LabelTooLong);
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
            {
                return Err(DomainError::InvalidChar(c));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(DomainError::EdgeHyphen);
            }
        }
        Ok(DomainName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `*.example.com`
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// `label.self`, e.g. the default host `web.demo.localhost` of app `web`
    /// in project `demo` under the base domain `localhost`. `label` must be a
    /// DNS label (an `AppName` or `ProjectName`).
    pub fn prepend(&self, label: &str) -> Result<DomainName, DomainError> {
        DomainName::parse(&format!("{label}.{}", self.0))
    }
}

impl TryFrom<String> for DomainName {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        DomainName::parse(&value)
    }
}

impl From<DomainName> for String {
    fn from(value: DomainName) -> String {
        value.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a path prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathPrefixError {
    #[error("must start with '/'")]
    NoLeadingSlash,
    #[error("must be at most 200 characters")]
    TooLong,
    #[error("may not contain {0:?}")]
    InvalidChar(char),
    #[error("may not contain empty, '.' or '..' segments")]
    BadSegment,
}

/// The path a route covers: `/` (everything) or `/a/b` without a trailing
/// slash; it covers whole segments (`/blog` covers `/blog/x`, not `/blogger`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathPrefix(String);

impl PathPrefix {
    /// An empty input means the whole site (`/`).
    pub fn parse(input: &str) -> Result<PathPrefix, PathPrefixError> {
        let prefix = input.trim();
        if prefix.is_empty() || prefix == "/" {
            return Ok(PathPrefix::root());
        }
        if !prefix.starts_with('/') {
            return Err(PathPrefixError::NoLeadingSlash);
        }
        if prefix.len() > 200 {
            return Err(PathPrefixError::TooLong);
        }
        if let Some(c) = prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/-._~!$&'()*+,;=:@%".contains(*c)))
        {
            return Err(PathPrefixError::InvalidChar(c));
        }
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        if prefix[1..]
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(PathPrefixError::BadSegment);
        }
        Ok(PathPrefix(prefix.to_owned()))
    }

    pub fn root() -> PathPrefix {
        PathPrefix("/".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }
}

impl TryFrom<String> for PathPrefix {
    type Error = PathPrefixError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        PathPrefix::parse(&value)
    }
}

impl From<PathPrefix> for String {
    fn from(value: PathPrefix) -> String {
        value.0
    }
}

impl fmt::Display for PathPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn domains_are_lowercased_and_lose_a_trailing_dot() {
        assert_eq!(
            DomainName::parse(" App.Example.COM. ").unwrap().as_str(),
            "app.example.com"
        );
        assert_eq!(
            DomainName::parse("localhost").unwrap().as_str(),
            "localhost"
        );
        assert!(DomainName::parse("*.example.com").unwrap().is_wildcard());
    }

    #[test]
    fn a_wildcard_is_only_the_whole_leftmost_label() {
        for bad in [
            "a.*.example.com",
            "*a.example.com",
            "**.example.com",
            "*",
            "example.*",
        ] {
            assert_eq!(
                DomainName::parse(bad),
                Err(DomainError::MisplacedWildcard),
                "{bad}"
            );
        }
    }

    #[test]
    fn what_is_not_a_host_name_is_refused_with_a_reason() {
        assert_eq!(DomainName::parse(""), Err(DomainError::Empty));
        assert_eq!(
            DomainName::parse("bücher.de"),
            Err(DomainError::NonAscii('ü'))
        );
        assert_eq!(DomainName::parse("https://a.com"), Err(DomainError::Url));
        assert_eq!(DomainName::parse("a..com"), Err(DomainError::EmptyLabel));
        assert_eq!(
            DomainName::parse("a_b.com"),
            Err(DomainError::InvalidChar('_'))
        );
        assert_eq!(DomainName::parse("-a.com"), Err(DomainError::EdgeHyphen));
        assert_eq!(
            DomainName::parse(&format!("{}.com", "a".repeat(64))),
            Err(DomainError::LabelTooLong)
        );
        assert!(matches!(
            DomainName::parse(&"a.".repeat(130)),
            Err(DomainError::TooLong(_))
        ));
    }

    #[test]
    fn default_hosts_are_built_by_prepending_labels() {
        let base = DomainName::parse("localhost").unwrap();
        let host = base.prepend("demo").unwrap().prepend("web").unwrap();
        assert_eq!(host.as_str(), "web.demo.localhost");
    }

    #[test]
    fn path_prefixes_are_normalized() {
        assert_eq!(PathPrefix::parse("").unwrap().as_str(), "/");
        assert_eq!(PathPrefix::parse("/blog/").unwrap().as_str(), "/blog");
        assert_eq!(PathPrefix::parse("/a/b").unwrap().as_str(), "/a/b");
        assert_eq!(
            PathPrefix::parse("blog"),
            Err(PathPrefixError::NoLeadingSlash)
        );
        assert_eq!(PathPrefix::parse("/a//b"), Err(PathPrefixError::BadSegment));
        assert_eq!(
            PathPrefix::parse("/a/../b"),
            Err(PathPrefixError::BadSegment)
        );
        assert_eq!(
            PathPrefix::parse("/a?b"),
            Err(PathPrefixError::InvalidChar('?'))
        );
        assert_eq!(
            PathPrefix::parse("/a b"),
            Err(PathPrefixError::InvalidChar(' '))
        );
    }

    #[test]
    fn deserializing_goes_through_parse() {
        assert!(serde_json::from_str::<DomainName>("\"a..b\"").is_err());
        assert!(serde_json::from_str::<PathPrefix>("\"x\"").is_err());
    }

    /// A domain made of valid labels (any case, maybe a leading `*.`, a
    /// trailing dot, spaces around), and what it parses to.
    fn domain_input() -> impl Strategy<Value = (String, String)> {
        (
            any::<bool>(),
            prop::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?", 1..5),
            any::<bool>(),
            " {0,2}",
        )
            .prop_map(|(wildcard, mut labels, dot, pad)| {
                if wildcard {
                    labels.insert(0, "*".to_owned());
                }
                let name = labels.join(".");
                let input = format!("{pad}{name}{}{pad}", if dot { "." } else { "" });
                (input, name.to_ascii_lowercase())
            })
    }

    /// A path prefix made of valid segments (maybe a trailing slash, spaces
    /// around), and what it parses to.
    fn prefix_input() -> impl Strategy<Value = (String, String)> {
        (
            prop::collection::vec(
                "[A-Za-z0-9._~!$&'()*+,;=:@%-]{1,12}"
                    .prop_filter("not . or ..", |s| s != "." && s != ".."),
                1..5,
            ),
            any::<bool>(),
            " {0,2}",
        )
            .prop_map(|(segments, slash, pad)| {
                let prefix = format!("/{}", segments.join("/"));
                let input = format!("{pad}{prefix}{}{pad}", if slash { "/" } else { "" });
                (input, prefix)
            })
    }

    proptest! {
        #[test]
        fn parsed_domains_are_lowercase_ascii_labels(
            (s, expected) in domain_input(),
        ) {
            // Built from valid labels: it must parse, so the checks always run.
            let parsed = DomainName::parse(&s);
            prop_assert!(parsed.is_ok(), "{:?} refused: {:?}", s, parsed);
            let d = parsed.unwrap();
            let d = d.as_str();
            prop_assert!(d.is_ascii() && !d.ends_with('.') && d.len() <= 253);
            prop_assert_eq!(d.to_ascii_lowercase(), d);
            prop_assert_eq!(d, expected.as_str());
            for (i, label) in d.split('.').enumerate() {
                prop_assert!(!label.is_empty());
                prop_assert!(label != "*" || i == 0);
            }
        }

        #[test]
        fn a_domain_of_label_characters_parses_exactly_when_its_labels_are_valid(
            s in "[a-zA-Z0-9.-]{1,40}",
        ) {
            let labels: Vec<&str> = s.strip_suffix('.').unwrap_or(&s).split('.').collect();
            let valid = labels.iter().all(|l| {
                !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-')
            });
            match DomainName::parse(&s) {
                Ok(d) => {
                    prop_assert!(valid, "{:?} accepted", s);
                    prop_assert_eq!(d.as_str(), labels.join(".").to_ascii_lowercase());
                }
                Err(err) => prop_assert!(!valid, "{:?} refused: {}", s, err),
            }
        }

        #[test]
        fn valid_domains_round_trip(s in "([a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\\.){1,3}[a-z]{2,6}") {
            let d = DomainName::parse(&s).unwrap();
            prop_assert_eq!(DomainName::parse(d.as_str()).unwrap(), d);
        }

        #[test]
        fn parsed_prefixes_start_with_a_slash_and_never_end_with_one(
            (s, expected) in prefix_input(),
        ) {
            // Built from valid segments: it must parse, so the checks always run.
            let parsed = PathPrefix::parse(&s);
            prop_assert!(parsed.is_ok(), "{:?} refused: {:?}", s, parsed);
            let p = parsed.unwrap();
            let p = p.as_str();
            prop_assert!(p.starts_with('/'));
            prop_assert!(p == "/" || !p.ends_with('/'));
            prop_assert_eq!(p, expected.as_str());
        }
    }
}
