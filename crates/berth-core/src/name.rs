use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a project or app name was refused. The messages are shown next to the form field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is required")]
    Empty,
    #[error("must be at most 63 characters (it is {0})")]
    TooLong(usize),
    #[error("may only contain lowercase letters, digits and '-' (found {0:?})")]
    InvalidChar(char),
    #[error("must start and end with a letter or digit")]
    EdgeHyphen,
}

/// The rules of a DNS label: names become Docker network and container names
/// and host names (`<app>.<project>.<base domain>`), so they must be valid in all three.
pub(crate) fn parse_dns_label(input: &str) -> Result<String, NameError> {
    let name = input.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let len = name.chars().count();
    if len > 63 {
        return Err(NameError::TooLong(len));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameError::InvalidChar(bad));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(NameError::EdgeHyphen);
    }
    Ok(name.to_owned())
}

macro_rules! dns_label_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> Result<Self, NameError> {
                parse_dns_label(input).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

dns_label_type!(
    /// A project: a group of apps sharing one private Docker network.
    ProjectName
);
dns_label_type!(
    /// An app inside a project.
    AppName
);
dns_label_type!(
    /// A stack inside a project: a set of services from one compose file.
    /// Apps and stacks of a project share one namespace, so the container
    /// `berth_<project>_<stack>_<service>` can never be an app's.
    StackName
);
dns_label_type!(
    /// A managed database inside a project. Apps, stacks and databases of a
    /// project share one namespace (container names, the project network's
    /// aliases), so a database's name is never an app's or a stack's.
    DatabaseName
);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "web", "my-app-2", "0day", &"x".repeat(63)] {
            assert_eq!(AppName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_what_is_not_a_dns_label() {
        assert_eq!(AppName::parse(""), Err(NameError::Empty));
        assert_eq!(AppName::parse("  "), Err(NameError::Empty));
        assert_eq!(AppName::parse("Web"), Err(NameError::InvalidChar('W')));
        assert_eq!(AppName::parse("my_app"), Err(NameError::InvalidChar('_')));
        assert_eq!(AppName::parse("a.b"), Err(NameError::InvalidChar('.')));
        assert_eq!(AppName::parse("-web"), Err(NameError::EdgeHyphen));
        assert_eq!(AppName::parse("web-"), Err(NameError::EdgeHyphen));
        assert_eq!(AppName::parse(&"x".repeat(64)), Err(NameError::TooLong(64)));
    }

    #[test]
    fn deserializing_goes_through_parse() {
        assert!(serde_json::from_str::<ProjectName>("\"Bad Name\"").is_err());
        let name: ProjectName = serde_json::from_str("\"demo\"").unwrap();
        assert_eq!(name.as_str(), "demo");
    }

    proptest! {
        #[test]
        fn every_valid_label_round_trips(s in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
            let name = AppName::parse(&s).unwrap();
            prop_assert_eq!(name.as_str(), s.as_str());
        }

        #[test]
        fn parsed_names_only_hold_label_characters(s in " ?[a-z0-9-]{0,66} ?") {
            // Label characters only: valid unless empty, too long or with an
            // edge hyphen, so most inputs parse and the checks run.
            let t = s.trim();
            let valid = !t.is_empty() && t.len() <= 63 && !t.starts_with('-') && !t.ends_with('-');
            match ProjectName::parse(&s) {
                Ok(name) => {
                    let n = name.as_str();
                    prop_assert!(valid, "{:?} accepted", s);
                    prop_assert_eq!(n, t);
                    prop_assert!(!n.is_empty() && n.len() <= 63);
                    prop_assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
                    prop_assert!(!n.starts_with('-') && !n.ends_with('-'));
                }
                Err(err) => prop_assert!(!valid, "{:?} refused: {}", s, err),
            }
        }
    }
}
