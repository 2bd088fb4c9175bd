//! Turning submitted text into core types, one field at a time, so that every
//! error can be shown next to its field with what the user typed kept.

use std::borrow::Cow;
use std::collections::BTreeMap;

use std::path::PathBuf;

use berth_core::{
    AppName, Command, DeployStrategy, DomainName, DomainTarget, GitSource, HostPath, ImageRef,
    MountPath, NewApp, NewDomain, PathPrefix, Port, ProjectName, TlsMode, VolumeName,
    deployment::Source,
};
use berth_deploy::VolumeRequest;

#[derive(Debug, Clone, Default)]
pub struct FieldErrors(BTreeMap<Cow<'static, str>, String>);

impl FieldErrors {
    pub fn add(&mut self, field: impl Into<Cow<'static, str>>, message: impl std::fmt::Display) {
        self.0.insert(field.into(), message.to_string());
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
            .map(|(k, v)| (k.to_string(), v.clone()))
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
/// `Debug` masks credentials in the git URL.
#[derive(Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct AppInput {
    /// DNS label: lowercase letters, digits and '-'.
    #[serde(default)]
    pub name: String,
    /// Image reference, e.g. `nginx:1.27` or `ghcr.io/owner/app:v2`.
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub port: String,
    /// Optional command, split like a shell would split words (never run through a shell).
    #[serde(default)]
    pub command: String,
    /// `image` (the default) or `git`: where deployments come from, as in the deploy settings.
    #[serde(default)]
    pub source: String,
    /// With `source` `git`: `https://…`, `ssh://…`, `file:///path` or a path on the server.
    #[serde(default)]
    pub git_url: String,
    /// With `source` `git`: the branch; empty for the repository's default branch.
    #[serde(default)]
    pub git_branch: String,
    /// With `source` `git`: the build context inside the repository; empty for its root.
    #[serde(default)]
    pub git_subdir: String,
    /// With `source` `git`: the Dockerfile inside the context; empty for `Dockerfile`.
    #[serde(default)]
    pub dockerfile: String,
    /// `rolling`, `recreate`, or empty: berth chooses (`recreate` when the app has volumes).
    #[serde(default)]
    pub strategy: String,
    /// Volumes given as a list (the API's); the create form has one row, `volume`.
    #[serde(skip)]
    pub volumes: Vec<VolumeInput>,
    /// The create form's one volume row (the app page adds more).
    #[serde(default, flatten)]
    pub volume: FormVolume,
    /// Allow bind mounts outside the volumes root (system paths, the data dir, the Docker socket). The app page shows it.
    #[serde(default, deserialize_with = "checkbox")]
    pub dangerous_mounts: bool,
}

impl std::fmt::Debug for AppInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppInput")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("port", &self.port)
            .field("command", &self.command)
            .field("source", &self.source)
            .field(
                "git_url",
                &berth_core::redact_url_credentials(&self.git_url),
            )
            .field("git_branch", &self.git_branch)
            .field("git_subdir", &self.git_subdir)
            .field("dockerfile", &self.dockerfile)
            .field("strategy", &self.strategy)
            .field("volumes", &self.volumes)
            .field("volume", &self.volume)
            .field("dangerous_mounts", &self.dangerous_mounts)
            .finish()
    }
}

/// One volume of an app as typed.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct VolumeInput {
    /// The volume's name in the app (a DNS label), e.g. `data`.
    #[serde(default)]
    pub name: String,
    /// Empty for a named Docker volume; a host path for a bind mount (under the volumes root unless dangerous mounts are allowed).
    #[serde(default)]
    pub host_path: String,
    /// Where it is mounted in the container, e.g. `/data`.
    #[serde(default)]
    pub target: String,
    #[serde(default, deserialize_with = "checkbox")]
    pub read_only: bool,
}

/// The create form's volume row, as flat form fields.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct FormVolume {
    #[serde(default)]
    pub volume_name: String,
    #[serde(default)]
    pub volume_host_path: String,
    #[serde(default)]
    pub volume_target: String,
    #[serde(default, deserialize_with = "checkbox")]
    pub volume_read_only: bool,
}

impl FormVolume {
    pub fn to_input(&self) -> Option<VolumeInput> {
        let blank = self.volume_name.trim().is_empty()
            && self.volume_host_path.trim().is_empty()
            && self.volume_target.trim().is_empty();
        (!blank).then(|| VolumeInput {
            name: self.volume_name.clone(),
            host_path: self.volume_host_path.clone(),
            target: self.volume_target.clone(),
            read_only: self.volume_read_only,
        })
    }
}

impl VolumeInput {
    /// The volume, with errors under `volume_name`, `volume_host_path` and `volume_target`.
    pub fn parse(&self, errors: &mut FieldErrors) -> Option<VolumeRequest> {
        let target = errors.check("volume_target", MountPath::parse(&self.target));
        let name = if self.name.trim().is_empty() {
            target.as_ref().map(VolumeName::for_path)
        } else {
            errors.check("volume_name", VolumeName::parse(&self.name))
        };
        let host_path = if self.host_path.trim().is_empty() {
            Some(None)
        } else {
            errors
                .check("volume_host_path", HostPath::parse(&self.host_path))
                .map(Some)
        };
        Some(VolumeRequest {
            name: name?,
            host_path: host_path?,
            target: target?,
            read_only: self.read_only,
        })
    }
}

/// Parses `rolling`, `recreate`, or empty (berth chooses).
pub fn parse_strategy(errors: &mut FieldErrors, input: &str) -> Option<Option<DeployStrategy>> {
    match input.trim() {
        "" | "auto" => Some(None),
        s => errors
            .check(
                "strategy",
                DeployStrategy::parse(s)
                    .ok_or("must be rolling, recreate, or empty for berth's choice"),
            )
            .map(Some),
    }
}

/// A new app as parsed from [`AppInput`].
#[derive(Debug)]
pub struct ParsedApp {
    pub new: NewApp,
    pub source: Source,
    pub volumes: Vec<VolumeRequest>,
    pub strategy: Option<DeployStrategy>,
}

/// A git repository as typed on the app and stack forms (`git_url`,
/// `git_branch`, trimmed): a URL or path that git cannot take for an
/// option, with real credentials, and a branch that is not an option
/// either. False when something was refused (the reasons are in `errors`).
pub fn check_git_repository(errors: &mut FieldErrors, url: &str, branch: &str) -> bool {
    let mut ok = true;
    let mut refuse = |field: &'static str, message: &'static str| {
        errors.add(field, message);
        ok = false;
    };
    if url.is_empty() {
        refuse(
            "git_url",
            "a repository URL or path is needed for a git source",
        );
    } else if url.starts_with('-') {
        refuse("git_url", "may not start with '-'");
    } else if berth_core::url_has_masked_credentials(url) {
        // Nothing new has saved credentials for *** to stand for.
        refuse("git_url", "type the credentials in place of ***");
    }
    if branch.starts_with('-') {
        refuse("git_branch", "a branch may not start with '-'");
    }
    ok
}

/// Whether a checkbox's value means ticked: `on` (or `true`, `1`, `yes`).
pub fn is_ticked(value: &str) -> bool {
    matches!(value.trim(), "on" | "true" | "1" | "yes")
}

/// A checkbox, by `is_ticked`.
fn checkbox<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s: String = serde::Deserialize::deserialize(d)?;
    Ok(is_ticked(&s))
}

/// `true`/`false` from JSON, or a checkbox from a form.
fn bool_or_checkbox<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Sent {
        Bool(bool),
        Text(String),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        Sent::Bool(b) => b,
        Sent::Text(s) => is_ticked(&s),
    })
}

impl AppInput {
    /// The app and where it deploys from. With a git source the image may be
    /// left empty: it then names the images berth builds for the app
    /// (`berth-build/<project>-<app>`).
    pub fn parse(&self, project: &ProjectName) -> Result<ParsedApp, FieldErrors> {
        let mut errors = FieldErrors::default();
        let volumes: Vec<Option<VolumeRequest>> = self
            .volumes
            .iter()
            .cloned()
            .chain(self.volume.to_input())
            .map(|v| v.parse(&mut errors))
            .collect();
        let strategy = parse_strategy(&mut errors, &self.strategy);
        let name = errors.check("name", AppName::parse(&self.name));
        let source = match self.source.trim() {
            "" | "image" => Source::Image,
            "git" => {
                let git = GitSource {
                    url: self.git_url.trim().to_owned(),
                    branch: self.git_branch.trim().to_owned(),
                    subdir: self.git_subdir.trim().to_owned(),
                    dockerfile: self.dockerfile.trim().to_owned(),
                };
                check_git_repository(&mut errors, &git.url, &git.branch);
                if git.subdir.split('/').any(|part| part == "..") {
                    errors.add("git_subdir", "may not contain '..'");
                }
                Source::Git(git)
            }
            _ => {
                errors.add("source", "must be image or git");
                Source::Image
            }
        };
        let image = match (&source, &name) {
            (Source::Git(_), Some(name)) if self.image.trim().is_empty() => errors.check(
                "image",
                ImageRef::parse(&format!("berth-build/{project}-{name}")),
            ),
            (Source::Git(_), None) if self.image.trim().is_empty() => None,
            _ => errors.check("image", ImageRef::parse(&self.image)),
        };
        let port = errors.check("port", Port::parse(&self.port));
        let command = if self.command.trim().is_empty() {
            Some(None)
        } else {
            errors
                .check("command", Command::parse(&self.command))
                .map(Some)
        };
        match (name, image, port, command, strategy) {
            (Some(name), Some(image), Some(container_port), Some(command), Some(strategy))
                if errors.is_empty() =>
            {
                Ok(ParsedApp {
                    new: NewApp {
                        name,
                        image,
                        container_port,
                        command,
                        dangerous_mounts: self.dangerous_mounts,
                    },
                    source,
                    volumes: volumes.into_iter().flatten().collect(),
                    strategy,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A domain (or, with `static_dir`, a static site) as typed, so a form can
/// show it again with its errors.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct DomainInput {
    /// `app.example.com` or `*.example.com`.
    #[serde(default)]
    pub host: String,
    /// Optional path prefix such as `/blog`; empty or `/` for the whole host.
    #[serde(default)]
    pub path_prefix: String,
    /// Remove the prefix before passing the path on (default false; static sites always strip).
    #[serde(default, deserialize_with = "flag")]
    pub strip_prefix: Option<bool>,
    /// `acme` (default), `uploaded` or `none`.
    #[serde(default)]
    pub tls_mode: String,
    /// Redirect plain HTTP to HTTPS once a certificate exists (default true).
    #[serde(default, deserialize_with = "flag")]
    pub redirect_https: Option<bool>,
    /// Send Strict-Transport-Security over HTTPS (default false).
    #[serde(default, deserialize_with = "flag")]
    pub hsts: Option<bool>,
    /// Serve this absolute directory instead of the app (a static site).
    #[serde(default)]
    pub static_dir: Option<String>,
    /// For a static site: answer `index.html` for paths that do not exist.
    #[serde(default, deserialize_with = "flag")]
    pub spa_fallback: Option<bool>,
}

impl DomainInput {
    pub fn is_static(&self) -> bool {
        self.static_dir.is_some()
    }

    /// An HTML form leaves an unticked box out; there, absent means no.
    pub fn unticked_boxes_are_false(mut self) -> DomainInput {
        for flag in [
            &mut self.strip_prefix,
            &mut self.redirect_https,
            &mut self.hsts,
            &mut self.spa_fallback,
        ] {
            flag.get_or_insert(false);
        }
        self
    }

    pub fn parse(&self) -> Result<NewDomain, FieldErrors> {
        let mut errors = FieldErrors::default();
        let host = errors.check("host", DomainName::parse(&self.host));
        let path_prefix = errors.check("path_prefix", PathPrefix::parse(&self.path_prefix));
        let tls_mode = match self.tls_mode.trim() {
            "" => Some(TlsMode::Acme),
            mode => errors.check(
                "tls_mode",
                TlsMode::parse(mode).ok_or("must be acme, uploaded or none"),
            ),
        };
        let target = match &self.static_dir {
            None => Some(DomainTarget::App),
            Some(dir) if dir.trim().is_empty() => {
                errors.add("static_dir", "is required");
                None
            }
            Some(dir) if !dir.trim().starts_with('/') => {
                errors.add(
                    "static_dir",
                    "must be an absolute path, such as /srv/blog/public",
                );
                None
            }
            Some(dir) => Some(DomainTarget::Static {
                dir: PathBuf::from(dir.trim()),
                spa_fallback: self.spa_fallback.unwrap_or(false),
            }),
        };
        match (host, path_prefix, tls_mode, target) {
            (Some(host), Some(path_prefix), Some(tls_mode), Some(target)) if errors.is_empty() => {
                Ok(NewDomain {
                    host,
                    path_prefix,
                    // A static site's files sit at the root of its directory.
                    strip_prefix: matches!(target, DomainTarget::Static { .. })
                        || self.strip_prefix.unwrap_or(false),
                    target,
                    tls_mode,
                    redirect_https: self.redirect_https.unwrap_or(true),
                    hsts: self.hsts.unwrap_or(false),
                })
            }
            _ => Err(errors),
        }
    }
}

/// A ticked checkbox's value (any but `false`/`off`/`0`/`no`); absent is `None`.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let s: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(s.map(|s| {
        !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "off" | "0" | "no"
        )
    }))
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
    /// Confirms taking over names another domain's certificate serves
    /// (refused otherwise). JSON `true`; the form's checkbox sends `1`.
    #[serde(default, deserialize_with = "bool_or_checkbox")]
    pub replace: bool,
}

impl std::fmt::Debug for CertificateUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateUpload")
            .field("domain", &self.domain)
            .field("key", &berth_core::REDACTED)
            .field("replace", &self.replace)
            .finish_non_exhaustive()
    }
}

/// The ACME settings form.
#[derive(Clone, Default, serde::Deserialize)]
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
            .field("eab_hmac", &berth_core::REDACTED)
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
    fn secrets_in_forms_never_show_in_debug_output() {
        let app = AppInput {
            name: "web".into(),
            source: "git".into(),
            git_url: "https://ci:glpat-s3cr3t@gitlab.example.com/o/r.git".into(),
            ..AppInput::default()
        };
        let upload = CertificateUpload {
            domain: "shop.example.com".into(),
            certificate: "-----BEGIN CERTIFICATE-----".into(),
            key: "-----BEGIN PRIVATE KEY-----\nkey-s3cr3t\n".into(),
            replace: false,
        };
        let acme = AcmeSettingsForm {
            eab_key_id: "kid-1".into(),
            eab_hmac: "hmac-s3cr3t".into(),
            ..AcmeSettingsForm::default()
        };
        let shown = format!("{app:?} {upload:?} {acme:?} {app:#?} {upload:#?} {acme:#?}");
        for secret in ["glpat-s3cr3t", "key-s3cr3t", "PRIVATE", "hmac-s3cr3t"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for kept in [
            "gitlab.example.com/o/r.git",
            "shop.example.com",
            "kid-1",
            "web",
        ] {
            assert!(shown.contains(kept), "{kept} in {shown}");
        }
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let input = AppInput {
            name: "Bad_Name".into(),
            image: "".into(),
            port: "0".into(),
            command: "echo 'x".into(),
            ..AppInput::default()
        };
        let errors = input.parse(&project()).unwrap_err();
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
            ..AppInput::default()
        };
        let parsed = input.parse(&project()).unwrap();
        assert_eq!(parsed.new.name.as_str(), "web");
        assert!(parsed.new.command.is_none());
        assert_eq!(parsed.source, Source::Image);
        assert!(parsed.volumes.is_empty());
        assert_eq!(parsed.strategy, None);
    }

    #[test]
    fn a_volume_row_parses_and_a_bad_one_names_its_field() {
        let mut input = AppInput {
            name: "db".into(),
            image: "berth-test/web".into(),
            port: "8080".into(),
            volume: FormVolume {
                volume_target: "/var/lib/data".into(),
                ..FormVolume::default()
            },
            ..AppInput::default()
        };
        let parsed = input.parse(&project()).unwrap();
        assert_eq!(parsed.volumes.len(), 1);
        assert_eq!(parsed.volumes[0].name.as_str(), "var-lib-data");
        assert_eq!(parsed.volumes[0].host_path, None);
        input.volume.volume_target = "relative".into();
        input.volume.volume_host_path = "/srv/x/../..".into();
        let errors = input.parse(&project()).unwrap_err();
        assert!(errors.get("volume_target").is_some());
        assert!(errors.get("volume_host_path").is_some());
    }

    fn project() -> ProjectName {
        ProjectName::parse("demo").unwrap()
    }

    #[test]
    fn a_git_source_needs_a_url_and_then_needs_no_image() {
        let mut input = AppInput {
            name: "web".into(),
            port: "8080".into(),
            source: "git".into(),
            git_branch: "main".into(),
            ..AppInput::default()
        };
        let errors = input.parse(&project()).unwrap_err();
        assert!(errors.get("git_url").is_some());
        assert!(errors.get("image").is_none(), "{:?}", errors.to_map());
        input.git_url = "https://example.com/web.git".into();
        let parsed = input.parse(&project()).unwrap();
        assert_eq!(parsed.new.image.to_string(), "berth-build/demo-web");
        let Source::Git(git) = parsed.source else {
            panic!("a git source")
        };
        assert_eq!(git.url, "https://example.com/web.git");
        assert_eq!(git.branch, "main");
    }
}
