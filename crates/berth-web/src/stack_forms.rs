//! A stack's install and update requests as typed, checked by one parse
//! for the install forms and the API alike. Input values may be secrets:
//! `Debug` never prints them and the pages never render them back.

use std::collections::BTreeMap;

use berth_core::{StackName, StackSource};
use berth_deploy::{Publish, StackRequest, StackUpdate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::forms::{FieldErrors, check_git_repository};

/// A compose file in a git repository.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct GitInput {
    /// `https://…`, `ssh://…`, `file:///path` or a path on the server.
    #[serde(default)]
    pub url: String,
    /// Empty for the repository's default branch.
    #[serde(default)]
    pub branch: String,
    /// The compose file inside the repository; empty for `compose.yaml`.
    #[serde(default)]
    pub path: String,
}

/// The compose file berth reads when a git source names none.
pub const DEFAULT_COMPOSE_PATH: &str = "compose.yaml";

/// A container port to publish on the host.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
pub struct PublishInput {
    pub service: String,
    pub port: u16,
    /// On every interface instead of 127.0.0.1 only.
    #[serde(default)]
    pub public: bool,
}

/// An install as typed: the install forms fill it in, and the API takes it
/// as its body (`StackIn`). Give exactly one of `compose`, `template` or `git`.
#[derive(Clone, Default, Deserialize, ToSchema)]
#[schema(as = StackIn)]
pub struct StackInput {
    /// DNS label, unique among the project's apps and stacks.
    pub name: String,
    /// A compose file (berth template, Coolify template or plain compose) as text.
    #[serde(default)]
    pub compose: Option<String>,
    /// A catalogue template's id (`GET /api/v1/templates`).
    #[serde(default)]
    pub template: Option<String>,
    /// A compose file in a git repository.
    #[serde(default)]
    pub git: Option<GitInput>,
    /// Values for the plan's inputs, by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Confirms the plan's dangerous settings (privileged, host network, the Docker socket…).
    #[serde(default)]
    pub confirm_dangerous: bool,
    /// Container ports to publish on the host (127.0.0.1 unless `public`).
    #[serde(default)]
    pub publish: Vec<PublishInput>,
    /// Your own domain per routed service (`{"web": "app.example.com"}`):
    /// it replaces the generated host and gets a certificate from the ACME CA.
    #[serde(default)]
    pub domains: BTreeMap<String, String>,
    /// Plan only: answer with the plan and change nothing. The API's; the
    /// forms have their Preview button instead.
    #[serde(default)]
    pub dry_run: bool,
}

impl std::fmt::Debug for StackInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackInput")
            .field("name", &self.name)
            .field("template", &self.template)
            .field("git", &self.git)
            .field("inputs", &self.inputs.keys().collect::<Vec<_>>())
            .field("confirm_dangerous", &self.confirm_dangerous)
            .field("publish", &self.publish)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl StackInput {
    /// The request, or every problem at once, each under its field
    /// (`name`, `source`, `compose`, `template`, `git_url`, `publish`…).
    /// `known` says whether a template id is in the catalogue.
    pub fn parse(&self, known: &dyn Fn(&str) -> bool) -> Result<StackRequest, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = errors.check("name", StackName::parse(self.name.trim()));
        let source = parse_source(
            &mut errors,
            self.compose.as_deref(),
            self.template.as_deref(),
            self.git.as_ref(),
            known,
        );
        let source = match source {
            Some(Some(source)) => Some(source),
            Some(None) => {
                errors.add(
                    "source",
                    "give exactly one of compose (the file's text), template (a catalogue id) or git",
                );
                None
            }
            None => None,
        };
        let publish = parse_publish(&mut errors, &self.publish);
        let domains = parse_domains(&mut errors, &self.domains);
        match (name, source) {
            (Some(name), Some(source)) if errors.is_empty() => Ok(StackRequest {
                name,
                source,
                inputs: self.inputs.clone(),
                confirm_dangerous: self.confirm_dangerous,
                publish,
                domains,
            }),
            _ => Err(errors),
        }
    }
}

/// An update as typed, from the stack page's form or the API's body
/// (`StackUpdateIn`): at most one new source (none re-plans the installed
/// file), and inputs (missing ones keep their installed values).
#[derive(Clone, Default, Deserialize, ToSchema)]
#[schema(as = StackUpdateIn)]
pub struct StackUpdateInput {
    #[serde(default)]
    pub compose: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub git: Option<GitInput>,
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// The services' own domains from now on (absent: unchanged; `{}`: none).
    #[serde(default)]
    pub domains: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for StackUpdateInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackUpdateInput")
            .field("template", &self.template)
            .field("git", &self.git)
            .field("inputs", &self.inputs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl StackUpdateInput {
    /// `known` says whether a template id is in the catalogue.
    pub fn parse(&self, known: &dyn Fn(&str) -> bool) -> Result<StackUpdate, FieldErrors> {
        let mut errors = FieldErrors::default();
        let source = parse_source(
            &mut errors,
            self.compose.as_deref(),
            self.template.as_deref(),
            self.git.as_ref(),
            known,
        );
        let domains = self.domains.as_ref().map(|d| parse_domains(&mut errors, d));
        match source {
            Some(source) if errors.is_empty() => Ok(StackUpdate {
                source,
                inputs: self.inputs.clone(),
                domains,
            }),
            _ => Err(errors),
        }
    }
}

/// The user's domains by service; an empty value means none. Each error is
/// under `domain.<service>`, the form's field.
fn parse_domains(
    errors: &mut FieldErrors,
    typed: &BTreeMap<String, String>,
) -> BTreeMap<String, berth_core::DomainName> {
    let mut out = BTreeMap::new();
    for (service, host) in typed {
        let host = host.trim();
        if host.is_empty() {
            continue;
        }
        match berth_core::DomainName::parse(host) {
            Ok(d) if d.is_wildcard() => errors.add(
                format!("domain.{service}"),
                "a wildcard cannot be a stack's domain: give one host",
            ),
            Ok(d) => {
                out.insert(service.clone(), d);
            }
            Err(e) => errors.add(format!("domain.{service}"), format!("the domain {e}")),
        }
    }
    out
}

/// At most one source: `Some(None)` when none is given, `None` when what
/// was given is wrong (the reason is in `errors`).
fn parse_source(
    errors: &mut FieldErrors,
    compose: Option<&str>,
    template: Option<&str>,
    git: Option<&GitInput>,
    known: &dyn Fn(&str) -> bool,
) -> Option<Option<StackSource>> {
    let given = [compose.is_some(), template.is_some(), git.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        errors.add(
            "source",
            "give only one of compose, template or git, not several",
        );
        return None;
    }
    if let Some(text) = compose {
        if text.trim().is_empty() {
            errors.add("compose", "the compose file is empty");
            return None;
        }
        return Some(Some(StackSource::Compose {
            text: text.to_owned(),
        }));
    }
    if let Some(id) = template {
        let id = id.trim();
        if !known(id) {
            errors.add(
                "template",
                format!("there is no template {id:?} in the catalogue"),
            );
            return None;
        }
        return Some(Some(StackSource::Template { id: id.to_owned() }));
    }
    if let Some(git) = git {
        let (url, branch, path) = (git.url.trim(), git.branch.trim(), git.path.trim());
        let mut ok = check_git_repository(errors, url, branch);
        if path.starts_with('/') || path.split('/').any(|part| part == "..") {
            errors.add(
                "git_path",
                "must be a path inside the repository (no leading '/', no '..')",
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        return Some(Some(StackSource::Git {
            url: url.to_owned(),
            branch: branch.to_owned(),
            path: if path.is_empty() {
                DEFAULT_COMPOSE_PATH.to_owned()
            } else {
                path.to_owned()
            },
        }));
    }
    Some(None)
}

fn parse_publish(errors: &mut FieldErrors, publish: &[PublishInput]) -> Vec<Publish> {
    let mut out = Vec::new();
    for p in publish {
        if p.service.trim().is_empty() {
            errors.add("publish", "each published port names its service");
        } else if p.port == 0 {
            errors.add(
                "publish",
                format!("{}: port 0 cannot be published", p.service),
            );
        } else {
            out.push(Publish {
                service: p.service.trim().to_owned(),
                port: p.port,
                public: p.public,
            });
        }
    }
    out
}

/// Input fields whose values must not go back into a page: the plan's
/// secrets, and variables of a plain compose file (which the plan can only
/// type as strings) whose name says they hold one.
pub fn is_secret(input: &berth_compose::Input) -> bool {
    input.kind == berth_compose::InputKind::Secret || looks_secret(&input.name)
}

pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "KEY",
        "PRIVATE",
        "CREDENTIAL",
    ]
    .iter()
    .any(|word| upper.contains(word))
}

#[cfg(test)]
mod tests {
    /// The embedded catalogue, as the handlers' `known_templates` sees it without a templates dir.
    fn embedded(id: &str) -> bool {
        berth_compose::catalogue::find(id).is_some()
    }

    use super::*;

    fn input() -> StackInput {
        StackInput {
            name: "tea".into(),
            template: Some("gitea".into()),
            ..StackInput::default()
        }
    }

    #[test]
    fn a_template_install_parses() {
        let request = input().parse(&embedded).unwrap();
        assert_eq!(request.name.as_str(), "tea");
        assert_eq!(request.source.kind(), "template");
    }

    #[test]
    fn exactly_one_source_is_needed() {
        let none = StackInput {
            template: None,
            ..input()
        };
        assert!(none.parse(&embedded).unwrap_err().get("source").is_some());
        let two = StackInput {
            compose: Some("services: {}".into()),
            ..input()
        };
        assert!(two.parse(&embedded).unwrap_err().get("source").is_some());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let bad = StackInput {
            name: "Bad_Name".into(),
            template: Some("no-such-template".into()),
            publish: vec![PublishInput {
                service: "web".into(),
                port: 0,
                public: false,
            }],
            ..StackInput::default()
        };
        let errors = bad.parse(&embedded).unwrap_err();
        for field in ["name", "template", "publish"] {
            assert!(
                errors.get(field).is_some(),
                "{field}: {:?}",
                errors.to_map()
            );
        }
    }

    #[test]
    fn a_git_source_is_checked_and_gets_the_default_path() {
        let mut git = StackInput {
            template: None,
            git: Some(GitInput {
                url: "-oProxyCommand=x".into(),
                branch: "main".into(),
                path: "../etc/passwd".into(),
            }),
            ..input()
        };
        let errors = git.parse(&embedded).unwrap_err();
        assert!(errors.get("git_url").is_some() && errors.get("git_path").is_some());
        git.git = Some(GitInput {
            url: "https://***@gitlab.example.com/o/stack.git".into(),
            ..GitInput::default()
        });
        let errors = git.parse(&embedded).unwrap_err();
        assert!(errors.get("git_url").unwrap().contains("***"));
        git.git = Some(GitInput {
            url: "https://example.com/stack.git".into(),
            ..GitInput::default()
        });
        let StackSource::Git { path, .. } = git.parse(&embedded).unwrap().source else {
            panic!("a git source")
        };
        assert_eq!(path, DEFAULT_COMPOSE_PATH);
    }

    #[test]
    fn debug_output_names_inputs_but_never_their_values() {
        let mut typed = input();
        typed
            .inputs
            .insert("ADMIN_PASSWORD".into(), "hunter2-very-secret".into());
        let debug = format!("{typed:?}");
        assert!(debug.contains("ADMIN_PASSWORD") && !debug.contains("hunter2"));
    }

    #[test]
    fn an_update_takes_at_most_one_source() {
        assert!(
            StackUpdateInput::default()
                .parse(&embedded)
                .unwrap()
                .source
                .is_none()
        );
        let two = StackUpdateInput {
            compose: Some("services: {}".into()),
            template: Some("gitea".into()),
            ..StackUpdateInput::default()
        };
        assert!(two.parse(&embedded).unwrap_err().get("source").is_some());
    }
}
