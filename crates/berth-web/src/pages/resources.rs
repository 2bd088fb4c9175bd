//! Every resource of a project (apps, stacks, databases) as one list, each with
//! its status and public URL, for the dashboard and the project page.

use berth_core::{App, Database, DomainTarget, ProjectName, Stack};

use crate::{AppState, WebError};

/// One app or stack in a list.
pub struct ResourceRow {
    /// `app`, `stack` or `database`.
    pub kind: &'static str,
    pub project: String,
    pub name: String,
    pub href: String,
    pub status: String,
    pub detail: String,
    /// Where it answers through the edge, when there is one.
    pub url: Option<String>,
    /// For apps: the image and whether it is pinned; empty for stacks.
    pub image: String,
    pub pinned: bool,
}

/// Every URL an app answers on: its domains first, then its default host.
pub async fn app_urls(state: &AppState, app: &App) -> Result<Vec<String>, WebError> {
    let (_, domains) = state.domains.list_domains(&app.project, &app.name).await?;
    let mut urls: Vec<String> = domains
        .iter()
        .filter(|d| matches!(d.target, DomainTarget::App) && !d.host.is_wildcard())
        .filter_map(|d| {
            let path = if d.path_prefix.is_root() {
                "/".to_owned()
            } else {
                format!("{}/", d.path_prefix)
            };
            state.domains.site_url(d.host.as_str(), &path)
        })
        .collect();
    if let Some(host) = state.domains.default_host(&app.project, &app.name)
        && let Some(url) = state.domains.site_url(host.as_str(), "/")
    {
        urls.push(url);
    }
    Ok(urls)
}

async fn app_row(state: &AppState, app: &App) -> Result<ResourceRow, WebError> {
    let url = app_urls(state, app).await?.into_iter().next();
    Ok(ResourceRow {
        kind: "app",
        project: app.project.to_string(),
        name: app.name.to_string(),
        href: format!("/projects/{}/apps/{}", app.project, app.name),
        status: app.status.as_str().to_owned(),
        detail: app.status_detail.clone().unwrap_or_default(),
        url,
        image: app.image.to_string(),
        pinned: app.image.is_pinned(),
    })
}

/// A stack's row; its URL is its main route's (from the store: a list
/// never waits on Docker).
async fn stack_row(state: &AppState, stack: &Stack) -> ResourceRow {
    let url = match state.stacks.urls(stack).await {
        Ok(urls) => urls.into_iter().next(),
        Err(err) => {
            tracing::debug!(stack.name = %stack.name, error = %err, "stack routes unavailable");
            None
        }
    };
    ResourceRow {
        kind: "stack",
        project: stack.project.to_string(),
        name: stack.name.to_string(),
        href: format!("/projects/{}/stacks/{}", stack.project, stack.name),
        status: stack.status.as_str().to_owned(),
        detail: stack.message.clone().unwrap_or_default(),
        url,
        image: String::new(),
        pinned: true,
    }
}

/// A database's row, from the store only (a list never waits on Docker):
/// `starting` while its first start runs, else what berth keeps it at.
fn database_row(db: &Database) -> ResourceRow {
    let status = match db.message.as_deref() {
        Some("starting") => "starting",
        _ => db.desired.as_str(),
    };
    ResourceRow {
        kind: "database",
        project: db.project.to_string(),
        name: db.name.to_string(),
        href: format!("/projects/{}/databases/{}", db.project, db.name),
        status: status.to_owned(),
        detail: db.message.clone().unwrap_or_default(),
        url: None,
        image: db.image.to_string(),
        pinned: !db.unpinned(),
    }
}

/// The resources of one project, or of every project, by project then name.
pub async fn rows(
    state: &AppState,
    project: Option<&ProjectName>,
) -> Result<Vec<ResourceRow>, WebError> {
    let (apps, stacks, databases) = match project {
        Some(p) => (
            state.apps.list_apps_in_project(p).await?,
            state.stacks.list(p).await?,
            state
                .databases
                .list_all()
                .await?
                .into_iter()
                .filter(|d| &d.project == p)
                .collect::<Vec<_>>(),
        ),
        None => (
            state.apps.list_apps().await?,
            state.stacks.list_all().await?,
            state.databases.list_all().await?,
        ),
    };
    let mut rows = Vec::with_capacity(apps.len() + stacks.len());
    for app in &apps {
        rows.push(app_row(state, app).await?);
    }
    let stack_rows =
        futures_util::future::join_all(stacks.iter().map(|s| stack_row(state, s))).await;
    rows.extend(stack_rows);
    rows.extend(databases.iter().map(database_row));
    rows.sort_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));
    Ok(rows)
}
