//! The catalogue: berth's templates, searchable by text and category, each
//! with a link to its install form in a project.

use std::sync::LazyLock;

use axum::extract::{Path, Query, State};
use axum::response::Html;
use berth_core::ProjectName;

use super::parse_path;
use crate::auth::CurrentUser;
use crate::routes::{Access, Table};
use crate::views::{Chrome, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/catalogue", show_all);
    t.get(
        Access::Session,
        "/projects/{project}/catalogue",
        show_in_project,
    );
}

/// One template as the catalogue shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub version: String,
    /// The logo's file name (berth ships no images: shown as text).
    pub logo: String,
}

impl Entry {
    fn matches(&self, q: &str, category: &str) -> bool {
        let q = q.trim().to_lowercase();
        let text = q.is_empty()
            || [&self.id, &self.name, &self.description, &self.category]
                .iter()
                .any(|s| s.to_lowercase().contains(&q))
            || self.tags.iter().any(|t| t.to_lowercase().contains(&q));
        text && (category.is_empty() || self.category == category)
    }

    pub(crate) fn of(t: &berth_compose::catalogue::Template) -> Entry {
        let meta = t
            .plan(&berth_compose::Options::default())
            .metadata
            .unwrap_or_default();
        Entry {
            id: t.id.to_string(),
            name: if meta.name.is_empty() {
                t.id.to_string()
            } else {
                meta.name
            },
            description: meta.description,
            category: meta.category,
            tags: meta.tags,
            version: meta.version.unwrap_or_default(),
            logo: meta.logo.unwrap_or_default(),
        }
    }
}

/// The embedded templates planned once (they never change while berth
/// runs); templates from `--templates-dir` are planned when listed.
static EMBEDDED: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    berth_compose::catalogue::TEMPLATES
        .iter()
        .map(Entry::of)
        .collect()
});

/// A template's entry: the one planned at start when it is an embedded
/// template as shipped (not replaced by a `--templates-dir` file).
fn entry(t: &berth_compose::catalogue::Template) -> Entry {
    let as_shipped = berth_compose::catalogue::find(&t.id).is_some_and(|e| e.text == t.text);
    EMBEDDED
        .iter()
        .find(|e| as_shipped && e.id == t.id)
        .cloned()
        .unwrap_or_else(|| Entry::of(t))
}

/// The catalogue, in the order `Stacks::catalogue` gives it.
pub fn entries(state: &AppState) -> Vec<Entry> {
    state.stacks.catalogue().iter().map(entry).collect()
}

/// The catalogue's entry with this id.
pub fn find(state: &AppState, id: &str) -> Option<Entry> {
    state.stacks.template(id).as_ref().map(entry)
}

#[derive(serde::Deserialize, Default)]
pub struct CatalogueQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    category: String,
    /// On `/catalogue`: the project the install links go to.
    #[serde(default)]
    project: String,
}

#[derive(askama::Template)]
#[template(path = "catalogue.html")]
pub struct CataloguePage {
    pub chrome: Chrome,
    /// The project the install links go to; empty when there is none yet.
    pub project: String,
    /// Whether the page belongs to one project (no project picker).
    pub fixed_project: bool,
    pub projects: Vec<String>,
    pub q: String,
    pub category: String,
    pub categories: Vec<String>,
    pub entries: Vec<Entry>,
    pub total: usize,
}

pub async fn show_all(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<CatalogueQuery>,
) -> Result<Html<String>, WebError> {
    let projects: Vec<String> = state
        .projects
        .list_projects()
        .await?
        .into_iter()
        .map(|p| p.project.name.to_string())
        .collect();
    let project = if projects.contains(&query.project) {
        query.project.clone()
    } else {
        projects.first().cloned().unwrap_or_default()
    };
    Ok(render(&page(
        &state, &user, project, false, projects, query,
    )))
}

pub async fn show_in_project(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(project): Path<String>,
    Query(query): Query<CatalogueQuery>,
) -> Result<Html<String>, WebError> {
    let project = parse_path(ProjectName::parse, &project, "project")?;
    state.projects.find_project(&project).await?;
    let name = project.to_string();
    Ok(render(&page(
        &state,
        &user,
        name.clone(),
        true,
        vec![name],
        query,
    )))
}

fn page(
    state: &AppState,
    user: &CurrentUser,
    project: String,
    fixed_project: bool,
    projects: Vec<String>,
    query: CatalogueQuery,
) -> CataloguePage {
    let all = entries(state);
    let mut categories: Vec<String> = all.iter().map(|e| e.category.clone()).collect();
    categories.sort();
    categories.dedup();
    categories.retain(|c| !c.is_empty());
    CataloguePage {
        chrome: Chrome::from(user),
        project,
        fixed_project,
        projects,
        total: all.len(),
        entries: all
            .into_iter()
            .filter(|e| e.matches(&query.q, &query.category))
            .collect(),
        q: query.q,
        category: query.category,
        categories,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_an_entry_with_a_name_and_a_category() {
        assert_eq!(EMBEDDED.len(), berth_compose::catalogue::TEMPLATES.len());
        for e in EMBEDDED.iter() {
            assert!(!e.name.is_empty() && !e.category.is_empty(), "{e:?}");
        }
    }

    #[test]
    fn search_looks_at_names_descriptions_and_tags_and_the_category_filters() {
        let gitea = EMBEDDED.iter().find(|e| e.id == "gitea").unwrap();
        assert!(gitea.matches("GIT", ""));
        assert!(gitea.matches("", "development"));
        assert!(!gitea.matches("", "media"));
        assert!(!gitea.matches("no such words", ""));
    }
}
