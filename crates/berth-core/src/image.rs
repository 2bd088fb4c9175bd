use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("is required")]
    Empty,
    #[error("must be at most 255 characters")]
    TooLong,
    #[error("must not contain spaces")]
    Whitespace,
    #[error("has an invalid registry host {0:?}")]
    InvalidRegistry(String),
    #[error("has an invalid path part {0:?}: use lowercase letters, digits and . _ - separators")]
    InvalidPath(String),
    #[error(
        "has an invalid tag {0:?}: up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'"
    )]
    InvalidTag(String),
    #[error("has an invalid digest {0:?}: expected sha256: followed by 64 hex digits")]
    InvalidDigest(String),
}

/// A Docker image reference, `[registry[:port]/]path[:tag][@digest]`, checked
/// against the grammar of the distribution spec so the daemon never sees junk.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    full: String,
    registry: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<Self, ImageRefError> {
        let full = input.trim();
        if full.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if full.len() > 255 {
            return Err(ImageRefError::TooLong);
        }
        if full.chars().any(char::is_whitespace) {
            return Err(ImageRefError::Whitespace);
        }
        let (rest, digest) = match full.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(digest)?)),
            None => (full, None),
        };
        // A tag is whatever follows the last ':' after the last '/', so a
        // registry port (`localhost:5000/app`) is not mistaken for a tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(parse_tag(&rest[at + 1..])?))
            }
            None => (rest, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(parse_registry(first)?), path)
            }
            _ => (None, name),
        };
        for component in path.split('/') {
            if !is_path_component(component) {
                return Err(ImageRefError::InvalidPath(component.to_owned()));
            }
        }
        Ok(ImageRef {
            full: full.to_owned(),
            registry,
            path: path.to_owned(),
            tag,
            digest,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// False for `latest` or no tag at all: such an image can change under a
    /// running app on the next pull, which is how databases upgrade themselves.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some() || self.tag.as_deref().is_some_and(|t| t != "latest")
    }

    /// The reference Docker resolves when no tag is given (`:latest` added).
    pub fn to_pullable(&self) -> String {
        if self.tag.is_none() && self.digest.is_none() {
            format!("{}:latest", self.full)
        } else {
            self.full.clone()
        }
    }
}

fn parse_digest(digest: &str) -> Result<String, ImageRefError> {
    let ok = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    });
    if ok {
        Ok(digest.to_owned())
    } else {
        Err(ImageRefError::InvalidDigest(digest.to_owned()))
    }
}

fn parse_tag(tag: &str) -> Result<String, ImageRefError> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && tag.len() <= 128 {
        Ok(tag.to_owned())
    } else {
        Err(ImageRefError::InvalidTag(tag.to_owned()))
    }
}

fn parse_registry(registry: &str) -> Result<String, ImageRefError> {
    let invalid = || ImageRefError::InvalidRegistry(registry.to_owned());
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(invalid());
    }
    let labels_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if labels_ok {
        Ok(registry.to_owned())
    } else {
        Err(invalid())
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl TryFrom<String> for ImageRef {
    type Error = ImageRefError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ImageRef> for String {
    fn from(value: ImageRef) -> String {
        value.full
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_the_usual_references() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!((r.registry(), r.path(), r.tag()), (None, "nginx", None));
        assert!(!r.is_pinned());
        assert_eq!(r.to_pullable(), "nginx:latest");

        let r = ImageRef::parse("postgres:16.4-alpine").unwrap();
        assert_eq!(r.tag(), Some("16.4-alpine"));
        assert!(r.is_pinned());

        let r = ImageRef::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(r.registry(), Some("localhost:5000"));
        assert_eq!(r.path(), "team/app");
        assert_eq!(r.tag(), Some("v1"));

        let r = ImageRef::parse("ghcr.io/owner/my_app__x:latest").unwrap();
        assert_eq!(r.registry(), Some("ghcr.io"));
        assert!(!r.is_pinned());

        let digest = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("redis@{digest}")).unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));
        assert!(r.is_pinned());

        assert_eq!(
            ImageRef::parse("berth-test/web").unwrap().path(),
            "berth-test/web"
        );
    }

    #[test]
    fn refuses_what_docker_would_refuse() {
        assert_eq!(ImageRef::parse(""), Err(ImageRefError::Empty));
        assert_eq!(ImageRef::parse("ng inx"), Err(ImageRefError::Whitespace));
        assert!(matches!(
            ImageRef::parse("Nginx"),
            Err(ImageRefError::InvalidPath(_))
        ));
        assert!(matches!(
            ImageRef::parse("nginx:"),
            Err(ImageRefError::InvalidTag(_))
        ));
        assert!(matches!(
            ImageRef::parse("nginx:-x"),
            Err(ImageRefError::InvalidTag(_))
        ));
        assert!(matches!(
            ImageRef::parse("a//b"),
            Err(ImageRefError::InvalidPath(_))
        ));
        assert!(matches!(
            ImageRef::parse("nginx@sha256:abc"),
            Err(ImageRefError::InvalidDigest(_))
        ));
        assert!(matches!(
            ImageRef::parse("host:x/app"),
            Err(ImageRefError::InvalidRegistry(_))
        ));
        assert!(matches!(
            ImageRef::parse("app;rm -rf"),
            Err(ImageRefError::Whitespace)
        ));
        assert!(matches!(
            ImageRef::parse("app;rm"),
            Err(ImageRefError::InvalidTag(_) | ImageRefError::InvalidPath(_))
        ));
    }

    proptest! {
        #[test]
        fn generated_references_round_trip(
            registry in proptest::option::of("[a-z][a-z0-9]{0,8}\\.[a-z]{2,4}(:[0-9]{2,5})?"),
            // A first part with a '.' would be a registry host, as Docker reads it.
            path in "[a-z0-9]{1,8}([_-][a-z0-9]{1,8}){0,2}(/[a-z0-9]{1,8}([._-][a-z0-9]{1,4})?){0,2}",
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        ) {
            let mut s = String::new();
            if let Some(r) = &registry { s.push_str(r); s.push('/'); }
            s.push_str(&path);
            if let Some(t) = &tag { s.push(':'); s.push_str(t); }
            let r = ImageRef::parse(&s).unwrap();
            prop_assert_eq!(r.as_str(), s.as_str());
            prop_assert_eq!(r.registry(), registry.as_deref());
            prop_assert_eq!(r.path(), path.as_str());
            prop_assert_eq!(r.tag(), tag.as_deref());
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in "\\PC{0,300}") {
            let _ = ImageRef::parse(&s);
        }
    }
}
