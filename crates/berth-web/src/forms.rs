//! Turning submitted text into core types, one field at a time, so that every
//! error can be shown next to its field with what the user typed kept.

use std::collections::BTreeMap;

use berth_core::{AppName, Command, ImageRef, Port, ProjectName};
use berth_store::apps::NewApp;

#[derive(Debug, Clone, Default)]
pub struct FieldErrors(BTreeMap<&'static str, String>);

impl FieldErrors {
    pub fn add(&mut self, field: &'static str, message: impl std::fmt::Display) {
        self.0.insert(field, message.to_string());
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    /// Parses one field, recording its error under `field`.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &'static str,
        result: Result<T, E>,
    ) -> Option<T> {
        result.map_err(|e| self.add(field, e)).ok()
    }
}

/// The app form as typed: every field a string, so it can be shown again.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct AppInput {
    /// DNS label: lowercase letters, digits and '-'.
    #[serde(default)]
    pub name: String,
    /// Image reference, e.g. `nginx:1.27` or `ghcr.io/owner/app:v2`.
    #[serde(default)]
    pub image: String,
    /// The port the container listens on (number or string).
    #[serde(default, deserialize_with = "string_or_number")]
    #[schema(value_type = String)]
    pub port: String,
    /// Optional command, split like a shell would split words (never run through a shell).
    #[serde(default)]
    pub command: String,
}

impl AppInput {
    pub fn parse(&self) -> Result<NewApp, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = errors.check("name", AppName::parse(&self.name));
        let image = errors.check("image", ImageRef::parse(&self.image));
        let port = errors.check("port", Port::parse(&self.port));
        let command = if self.command.trim().is_empty() {
            Some(None)
        } else {
            errors
                .check("command", Command::parse(&self.command))
                .map(Some)
        };
        match (name, image, port, command) {
            (Some(name), Some(image), Some(container_port), Some(command)) if errors.is_empty() => {
                Ok(NewApp {
                    name,
                    image,
                    container_port,
                    command,
                })
            }
            _ => Err(errors),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct ProjectInput {
    /// DNS label: lowercase letters, digits and '-'.
    #[serde(default)]
    pub name: String,
}

impl ProjectInput {
    pub fn parse(&self) -> Result<ProjectName, FieldErrors> {
        let mut errors = FieldErrors::default();
        errors
            .check("name", ProjectName::parse(&self.name))
            .ok_or(errors)
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(i64),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        Either::S(s) => s,
        Either::N(n) => n.to_string(),
    })
}

/// An uploaded certificate as typed: the domain it is for, the chain (leaf
/// first) and the private key, both PEM. The key never goes back into HTML.
#[derive(Clone, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct CertificateUpload {
    /// The domain the certificate is for; its names must cover it.
    #[serde(default)]
    pub domain: String,
    /// PEM certificate chain, leaf first, then intermediates.
    #[serde(default)]
    pub certificate: String,
    /// PEM private key of the leaf (PKCS#8, RSA or EC).
    #[serde(default)]
    pub key: String,
}

impl std::fmt::Debug for CertificateUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateUpload")
            .field("domain", &self.domain)
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// The ACME settings form (and API body).
#[derive(Clone, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct AcmeSettingsForm {
    /// Contact e-mail for the CA (expiry notices); may be empty.
    #[serde(default)]
    pub email: String,
    /// `production` (Let's Encrypt, the default), `staging`, `custom`, or a directory URL.
    #[serde(default)]
    pub directory: String,
    /// The directory URL when `directory` is `custom`.
    #[serde(default)]
    pub custom_url: String,
    /// External account binding key id, for CAs that require one.
    #[serde(default)]
    pub eab_key_id: String,
    /// External account binding HMAC key (base64url). Write-only: empty keeps the stored one.
    #[serde(default)]
    pub eab_hmac: String,
    /// Any value removes the stored EAB HMAC key.
    #[serde(default)]
    pub clear_eab: Option<String>,
    /// `http-01` (port 80, the default) or `tls-alpn-01` (port 443).
    #[serde(default)]
    pub challenge: String,
}

impl std::fmt::Debug for AcmeSettingsForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeSettingsForm")
            .field("email", &self.email)
            .field("directory", &self.directory)
            .field("eab_key_id", &self.eab_key_id)
            .field("eab_hmac", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl AcmeSettingsForm {
    pub fn to_input(&self) -> berth_edge::acme::AcmeSettingsInput {
        let directory = if self.directory.trim() == "custom" {
            self.custom_url.clone()
        } else {
            self.directory.clone()
        };
        berth_edge::acme::AcmeSettingsInput {
            email: self.email.clone(),
            directory,
            eab_key_id: self.eab_key_id.clone(),
            eab_hmac: self.eab_hmac.clone(),
            clear_eab: self.clear_eab.as_deref().is_some_and(|v| !v.is_empty()),
            challenge: if self.challenge.trim().is_empty() {
                "http-01".to_owned()
            } else {
                self.challenge.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let input = AppInput {
            name: "Bad_Name".into(),
            image: "".into(),
            port: "0".into(),
            command: "echo 'x".into(),
        };
        let errors = input.parse().unwrap_err();
        for field in ["name", "image", "port", "command"] {
            assert!(errors.get(field).is_some(), "{field} should have an error");
        }
    }

    #[test]
    fn a_good_form_parses() {
        let input = AppInput {
            name: "web".into(),
            image: "berth-test/web".into(),
            port: "8080".into(),
            command: "".into(),
        };
        let app = input.parse().unwrap();
        assert_eq!(app.name.as_str(), "web");
        assert!(app.command.is_none());
    }
}
