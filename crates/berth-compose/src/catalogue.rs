//! berth's own templates (`docker/templates/`), embedded in the binary so
//! the catalogue needs no files at run time.

use crate::plan::{Format, Plan};
use crate::{Options, plan};

/// One template of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// The file name without `.yaml`: the template's id.
    pub id: &'static str,
    pub text: &'static str,
}

impl Template {
    pub fn plan(&self, options: &Options) -> Plan {
        plan(self.text, Format::Berth, options)
    }
}

macro_rules! template {
    ($id:literal) => {
        Template {
            id: $id,
            text: include_str!(concat!("../../../docker/templates/", $id, ".yaml")),
        }
    };
}

/// Every template, by id.
pub const TEMPLATES: &[Template] = &[
    template!("actual-budget"),
    template!("directus"),
    template!("forgejo"),
    template!("freshrss"),
    template!("ghost"),
    template!("gitea"),
    template!("gotify"),
    template!("grafana"),
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
    template!("paperless-ngx"),
    template!("plausible"),
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
