//! berth's own templates (`docker/templates/`), embedded in the binary so
//! the catalogue needs no files at run time, and more from a directory the
//! admin names (`--templates-dir`).

use std::borrow::Cow;
use std::path::Path;

use crate::plan::{Format, Plan};
use crate::{Options, plan};

/// One template of the catalogue.
#[derive(Debug, Clone)]
pub struct Template {
    /// The file name without `.yaml`: the template's id.
    pub id: Cow<'static, str>,
    pub text: Cow<'static, str>,
}

/// The largest template file read from a directory.
const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

/// The templates in `dir` (`<id>.yaml`, berth's format), by id, and what
/// was skipped with why. Ids are lower-case letters, digits and `-`.
pub fn load_dir(dir: &Path) -> (Vec<Template>, Vec<String>) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            skipped.push(format!("{}: {e}", dir.display()));
            return (found, skipped);
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".yaml"))
        else {
            continue;
        };
        let valid_id = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_id {
            skipped.push(format!(
                "{}: the id {id:?} must be lower-case letters, digits and '-'",
                path.display()
            ));
            continue;
        }
        let text = match entry.metadata() {
            Ok(m) if m.len() > MAX_TEMPLATE_BYTES => {
                skipped.push(format!(
                    "{}: larger than {MAX_TEMPLATE_BYTES} bytes",
                    path.display()
                ));
                continue;
            }
            Ok(_) => std::fs::read_to_string(&path),
            Err(e) => Err(e),
        };
        match text {
            Ok(text) if Format::detect(&text) == Format::Berth => found.push(Template {
                id: Cow::Owned(id.to_owned()),
                text: Cow::Owned(text),
            }),
            Ok(_) => skipped.push(format!(
                "{}: not a berth template (it needs top-level metadata: and compose:)",
                path.display()
            )),
            Err(e) => skipped.push(format!("{}: {e}", path.display())),
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    (found, skipped)
}

impl Template {
    pub fn plan(&self, options: &Options) -> Plan {
        plan(&self.text, Format::Berth, options)
    }
}

macro_rules! template {
    ($id:literal) => {
        Template {
            id: Cow::Borrowed($id),
            text: Cow::Borrowed(include_str!(concat!(
                "../../../docker/templates/",
                $id,
                ".yaml"
            ))),
        }
    };
}

/// Every template, by id.
pub const TEMPLATES: &[Template] = &[
    template!("actual-budget"),
    template!("directus"),
    template!("excalidraw"),
    template!("forgejo"),
    template!("freshrss"),
    template!("ghost"),
    template!("gitea"),
    template!("gotify"),
    template!("grafana"),
    template!("immich"),
    template!("it-tools"),
    template!("jellyfin"),
    template!("linkding"),
    template!("listmonk"),
    template!("mattermost"),
    template!("memos"),
    template!("metabase"),
    template!("miniflux"),
    template!("minio"),
    template!("n8n"),
    template!("nextcloud"),
    template!("nocodb"),
    template!("outline"),
    template!("paperless-ngx"),
    template!("plausible"),
    template!("pocketbase"),
    template!("prometheus"),
    template!("stirling-pdf"),
    template!("umami"),
    template!("uptime-kuma"),
    template!("vaultwarden"),
    template!("vikunja"),
    template!("web-postgres-valkey"),
    template!("wordpress"),
];

/// The template with this id.
pub fn find(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::WarningKind;

    #[test]
    fn every_template_is_in_the_catalogue() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker/templates");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "yaml")
            })
            .count();
        assert_eq!(
            files,
            TEMPLATES.len(),
            "a file in docker/templates is missing here"
        );
    }

    #[test]
    fn every_template_plans_with_pinned_images_and_nothing_dangerous() {
        for t in TEMPLATES {
            let plan = t.plan(&Options::default());
            assert!(plan.is_ok(), "{}: {:?}", t.id, plan.errors);
            let meta = plan.metadata.as_ref().unwrap();
            for w in &plan.warnings {
                assert!(w.kind == WarningKind::Note, "{}: {}", t.id, w.message);
            }
            for s in &plan.services {
                let image = s.image.as_ref().unwrap();
                assert!(
                    image.tag().is_some_and(|tag| tag != "latest"),
                    "{}: {image} is not pinned",
                    t.id
                );
            }
            let main = meta.service.as_deref().unwrap();
            assert!(plan.services.iter().any(|s| s.name == main), "{}", t.id);
            assert!(
                plan.routes
                    .iter()
                    .any(|r| r.service == main && r.port == meta.port),
                "{}: the main service and port have a route",
                t.id
            );
            // A generated value or an input nothing uses would be a secret
            // made, or a question asked, for nothing.
            let names = plan.generated.iter().map(|g| &g.name);
            for name in names.chain(plan.inputs.iter().map(|i| &i.name)) {
                assert!(
                    t.text.contains(&format!("${{{name}}}")),
                    "{}: {name} is never used",
                    t.id
                );
            }
            assert!(
                meta.version.is_some() && !meta.description.is_empty(),
                "{}",
                t.id
            );
        }
    }
}
