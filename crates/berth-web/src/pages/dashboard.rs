use axum::extract::State;
use axum::response::Html;

use crate::auth::CurrentUser;
use crate::forms::FieldErrors;
use crate::routes::{Access, Table};
use crate::views::{AppRow, ChecklistItem, Chrome, DashboardPage, EngineView, ProjectRow, render};
use crate::{AppState, WebError};

pub(crate) fn routes(t: &mut Table) {
    t.get(Access::Session, "/", show);
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Html<String>, WebError> {
    let page = page(&state, &user, String::new(), FieldErrors::default()).await?;
    Ok(render(&page))
}

/// The dashboard, also re-shown with the new-project form's input and errors.
pub async fn page(
    state: &AppState,
    user: &CurrentUser,
    project_input: String,
    errors: FieldErrors,
) -> Result<DashboardPage, WebError> {
    let engine = state.system.docker_status().await;
    let projects = state.projects.list_projects().await?;
    let app_count = state.apps.count_apps().await?;
    let attention = state
        .apps
        .apps_needing_attention()
        .await?
        .iter()
        .map(AppRow::from)
        .collect();
    let first_project = projects.first().map(|p| p.project.name.to_string());
    let mut resources = super::resources::rows(state, None).await?;
    let checklist = checklist(state, app_count, first_project).await?;
    let mut engine = EngineView::from(engine);
    if let Some(reach) = state.system.network_reach() {
        engine.reach = reach.why;
        engine.reach_direct = reach.direct;
    }
    Ok(DashboardPage {
        chrome: Chrome::from(user),
        engine,
        projects: projects
            .into_iter()
            .map(|p| {
                let name = p.project.name.to_string();
                let mine: Vec<_> = resources.extract_if(.., |r| r.project == name).collect();
                ProjectRow {
                    stack_count: mine.iter().filter(|r| r.kind == "stack").count(),
                    resources: mine,
                    name,
                    app_count: p.app_count,
                }
            })
            .collect(),
        project_input,
        errors,
        app_count: usize::try_from(app_count).unwrap_or_default(),
        attention,
        checklist,
    })
}

/// The getting-started steps, each ticked from what is configured; empty
/// once all are done, so the card leaves the dashboard by itself.
async fn checklist(
    state: &AppState,
    app_count: i64,
    first_project: Option<String>,
) -> Result<Vec<ChecklistItem>, WebError> {
    let base = state.domains.base_domain();
    let base_set = base
        .as_ref()
        .is_some_and(|d| d.as_str() != "localhost" && !d.as_str().ends_with(".localhost"));
    let email = match &state.certs {
        Some(certs) => certs.settings().await.map(|s| s.email).unwrap_or_default(),
        None => String::new(),
    };
    let dashboard = state.domains.dashboard_domain().await?;
    let items = vec![
        ChecklistItem {
            id: "check-base-domain",
            label: "Set the base domain",
            href: "/settings#base-domain".to_owned(),
            done: base_set,
            detail: match &base {
                Some(d) if base_set => format!("apps answer under {d}"),
                _ => "start berth with --base-domain (a domain of yours, or auto)".to_owned(),
            },
        },
        ChecklistItem {
            id: "check-acme-email",
            label: "Set the ACME e-mail",
            href: "/certificates#acme".to_owned(),
            done: !email.is_empty(),
            detail: if email.is_empty() {
                "your contact at the CA, for notices about your certificates".to_owned()
            } else {
                email
            },
        },
        ChecklistItem {
            id: "check-dashboard-domain",
            label: "Set the dashboard domain",
            href: "/settings#dashboard-domain".to_owned(),
            done: dashboard.is_some(),
            detail: dashboard.map_or_else(
                || "reach this dashboard over HTTPS at a domain of its own".to_owned(),
                |d| d.to_string(),
            ),
        },
        ChecklistItem {
            id: "check-first-app",
            label: "Deploy the first app",
            href: first_project
                .map_or_else(|| "/#projects".to_owned(), |p| format!("/projects/{p}")),
            done: app_count > 0,
            detail: if app_count > 0 {
                format!(
                    "{app_count} app{} so far",
                    if app_count == 1 { "" } else { "s" }
                )
            } else {
                "create a project, then an app from an image or a git repository".to_owned()
            },
        },
    ];
    Ok(if items.iter().all(|i| i.done) {
        Vec::new()
    } else {
        items
    })
}
