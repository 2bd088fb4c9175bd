//! berth's template format: one YAML file with `metadata`, typed `inputs`,
//! `generated` values, `routes` and the `compose` document itself.
//!
//! ```yaml
//! metadata: {name: Gitea, description: …, category: development, tags: [git],
//!            website: …, docs: …, logo: gitea.svg, service: gitea, port: 3000,
//!            version: "1.24.6"}
//! inputs:
//!   - {name: ADMIN_EMAIL, type: email, required: true}
//! generated:
//!   - {name: DB_PASSWORD, kind: password, length: 32}
//! routes:
//!   - {service: gitea, port: 3000, url: ROOT_URL}
//! compose:
//!   services: …
//! ```

use rand::RngCore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub website: Option<String>,
    pub docs: Option<String>,
    pub logo: Option<String>,
    /// The service users open (its route is the stack's main URL).
    pub service: Option<String>,
    pub port: Option<u16>,
    /// The version of the application the template installs.
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    String,
    /// Shown masked and stored encrypted.
    Secret,
    /// A host name for a route.
    Domain,
    Email,
    Number,
    Boolean,
}

/// A value the user gives at install: a field of the install form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub name: String,
    #[serde(rename = "type", default = "string_kind")]
    pub kind: InputKind,
    #[serde(default)]
    pub required: bool,
    pub default: Option<String>,
    pub description: Option<String>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

fn string_kind() -> InputKind {
    InputKind::String
}

impl Input {
    /// A string input found in a file's `${VAR}` references.
    pub fn variable(name: &str, default: Option<String>, required: bool) -> Input {
        Input {
            name: name.to_owned(),
            kind: InputKind::String,
            required,
            default,
            description: None,
            min_length: None,
            max_length: None,
            min: None,
            max: None,
        }
    }

    /// Checks a value typed by the user; the message goes next to the field.
    pub fn check(&self, value: &str) -> Result<(), String> {
        if value.is_empty() {
            return if self.required {
                Err("is required".to_owned())
            } else {
                Ok(())
            };
        }
        let chars = value.chars().count();
        if self.min_length.is_some_and(|m| chars < m) {
            return Err(format!(
                "must be at least {} characters",
                self.min_length.unwrap_or(0)
            ));
        }
        if self.max_length.is_some_and(|m| chars > m) {
            return Err(format!(
                "must be at most {} characters",
                self.max_length.unwrap_or(0)
            ));
        }
        match self.kind {
            InputKind::String | InputKind::Secret => Ok(()),
            InputKind::Domain => berth_core::DomainName::parse(value)
                .map(|_| ())
                .map_err(|e| format!("the domain {e}")),
            InputKind::Email => {
                let ok = value.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty() && host.contains('.') && !value.contains(char::is_whitespace)
                });
                if ok {
                    Ok(())
                } else {
                    Err("must be an email address".to_owned())
                }
            }
            InputKind::Number => {
                let n: f64 = value.parse().map_err(|_| "must be a number".to_owned())?;
                if self.min.is_some_and(|m| n < m) || self.max.is_some_and(|m| n > m) {
                    return Err(format!(
                        "must be between {} and {}",
                        self.min.unwrap_or(f64::MIN),
                        self.max.unwrap_or(f64::MAX)
                    ));
                }
                Ok(())
            }
            InputKind::Boolean => match value {
                "true" | "false" => Ok(()),
                _ => Err("must be true or false".to_owned()),
            },
        }
    }
}

/// A value berth makes once at install, stores encrypted and never makes
/// again: the plan names it, only the runtime ever holds its value.
// No `deny_unknown_fields` here: serde cannot combine it with `flatten`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    pub name: String,
    #[serde(flatten)]
    pub kind: GeneratedKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GeneratedKind {
    /// Letters and digits.
    Password { length: usize },
    /// Letters, digits and shell-safe symbols.
    PasswordWithSymbols { length: usize },
    /// `bytes` random bytes in hex.
    Hex { bytes: usize },
    /// `bytes` random bytes in standard base64.
    Base64 { bytes: usize },
    /// A user name: 16 letters.
    User,
    /// A user name in lowercase letters (for databases that fold case).
    LowercaseUser,
}

/// Longest value made, so a template cannot ask for gigabytes.
const MAX_GENERATED: usize = 1024;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const SYMBOLS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+,-.:=@^_~";
const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

fn pick(rng: &mut impl RngCore, alphabet: &[u8], n: usize) -> String {
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let b = (rng.next_u32() & 0xff) as usize;
        if b < limit {
            out.push(alphabet[b % alphabet.len()] as char);
        }
    }
    out
}

impl Generated {
    /// Makes the value with the caller's RNG (a CSPRNG at install, a
    /// seeded one in tests).
    pub fn generate(&self, rng: &mut impl RngCore) -> String {
        let mut random_bytes = |n: usize| {
            let mut buf = vec![0u8; n.min(MAX_GENERATED)];
            rng.fill_bytes(&mut buf);
            buf
        };
        match self.kind {
            GeneratedKind::Password { length } => pick(rng, ALNUM, length.min(MAX_GENERATED)),
            GeneratedKind::PasswordWithSymbols { length } => {
                pick(rng, SYMBOLS, length.min(MAX_GENERATED))
            }
            GeneratedKind::Hex { bytes } => random_bytes(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            GeneratedKind::Base64 { bytes } => base64(&random_bytes(bytes)),
            GeneratedKind::User => pick(rng, LETTERS, 16),
            GeneratedKind::LowercaseUser => pick(rng, LOWER, 16),
        }
    }
}

fn base64(data: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A route a template declares: the edge sends a host (and path) to this
/// service's port. `url` and `host` name variables the runtime fills with
/// the route's URL (with scheme) and host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub service: String,
    pub port: u16,
    #[serde(default = "root_path")]
    pub path: String,
    pub url: Option<String>,
    pub host: Option<String>,
}

fn root_path() -> String {
    "/".to_owned()
}

/// The parts of a berth template around its compose document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    pub metadata: Metadata,
    #[serde(default)]
    pub inputs: Vec<Input>,
    #[serde(default)]
    pub generated: Vec<Generated>,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    pub compose: serde_norway::Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn generated(kind: GeneratedKind) -> String {
        Generated {
            name: "X".into(),
            kind,
        }
        .generate(&mut StdRng::seed_from_u64(7))
    }

    #[test]
    fn generated_values_have_their_shape() {
        let p = generated(GeneratedKind::Password { length: 32 });
        assert_eq!(p.len(), 32);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        let h = generated(GeneratedKind::Hex { bytes: 32 });
        assert_eq!(h.len(), 64);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(generated(GeneratedKind::Base64 { bytes: 32 }).len(), 44);
        let u = generated(GeneratedKind::LowercaseUser);
        assert!(u.len() == 16 && u.chars().all(|c| c.is_ascii_lowercase()));
        assert_eq!(
            generated(GeneratedKind::Password { length: 1 << 30 }).len(),
            MAX_GENERATED
        );
    }

    #[test]
    fn the_same_seed_makes_the_same_value() {
        let kind = GeneratedKind::PasswordWithSymbols { length: 20 };
        assert_eq!(generated(kind), generated(kind));
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn inputs_check_their_type() {
        let mut input = Input::variable("X", None, true);
        assert!(input.check("").is_err());
        input.kind = InputKind::Email;
        assert!(input.check("a@b.example").is_ok());
        assert!(input.check("nope").is_err());
        input.kind = InputKind::Number;
        input.min = Some(1.0);
        assert!(input.check("0").is_err());
        assert!(input.check("5").is_ok());
        input.kind = InputKind::Domain;
        assert!(input.check("app.example.com").is_ok());
        assert!(input.check("not a domain").is_err());
        input.kind = InputKind::Boolean;
        assert!(input.check("maybe").is_err());
    }
}
