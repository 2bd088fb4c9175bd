use berth_core::{
    App, AppId, AppName, AppStatus, Command, DesiredState, ImageRef, NewApp, Port, ProjectName,
};
use sqlx::FromRow;
use sqlx::sqlite::SqliteRow;

use crate::{Store, StoreError, now};

const SELECT: &str = "SELECT a.id, p.name AS project, a.name, a.image, a.container_port, a.command,
    a.desired_state, a.status, a.status_detail, a.container_id, a.host_port, a.upstream, a.dangerous_mounts, a.created_at, a.updated_at
    FROM apps a JOIN projects p ON p.id = a.project_id";

/// An app row as stored, before its columns are parsed into core types.
/// Read either from a row or, for long lists, from one JSON document (see `list_all`).
#[derive(sqlx::FromRow, serde::Deserialize)]
struct RawApp {
    id: i64,
    project: String,
    name: String,
    image: String,
    container_port: i64,
    command: Option<String>,
    desired_state: String,
    status: String,
    status_detail: Option<String>,
    container_id: Option<String>,
    host_port: Option<i64>,
    upstream: Option<String>,
    dangerous_mounts: bool,
    created_at: i64,
    updated_at: i64,
}

impl RawApp {
    fn parse(self) -> Result<App, StoreError> {
        let command = self
            .command
            .map(|json| {
                let args: Vec<String> = serde_json_args(&json)?;
                Command::try_from(args).map_err(|e| StoreError::corrupt("command", e))
            })
            .transpose()?;
        let port = self.container_port;
        Ok(App {
            id: AppId::new(self.id),
            project: ProjectName::parse(&self.project)
                .map_err(|e| StoreError::corrupt("project name", e))?,
            name: AppName::parse(&self.name).map_err(|e| StoreError::corrupt("app name", e))?,
            image: ImageRef::parse(&self.image).map_err(|e| StoreError::corrupt("image", e))?,
            container_port: u32::try_from(port)
                .ok()
                .and_then(|p| Port::try_from(p).ok())
                .ok_or_else(|| StoreError::corrupt("port", port))?,
            command,
            desired_state: if self.desired_state == "stopped" {
                DesiredState::Stopped
            } else {
                DesiredState::Running
            },
            status: AppStatus::parse(&self.status)
                .ok_or_else(|| StoreError::corrupt("status", &self.status))?,
            status_detail: self.status_detail,
            container_id: self.container_id,
            host_port: self.host_port.and_then(|p| u16::try_from(p).ok()),
            upstream: self.upstream.and_then(|u| u.parse().ok()),
            dangerous_mounts: self.dangerous_mounts,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn from_row(r: &SqliteRow) -> Result<App, StoreError> {
    RawApp::from_row(r)?.parse()
}

/// Commands are stored as a JSON array of arguments.
fn serde_json_args(json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::corrupt("command", e))
}

fn command_json(command: &Option<Command>) -> Option<String> {
    command
        .as_ref()
        .map(|c| serde_json::to_string(c.args()).expect("a list of strings always serializes"))
}

pub async fn create(store: &Store, project: &ProjectName, app: &NewApp) -> Result<App, StoreError> {
    // Apps and stacks share a project's names (and container name prefixes).
    if crate::stacks::exists(store, project, app.name.as_str()).await? {
        return Err(StoreError::AlreadyExists {
            what: "a stack with that name in this project",
        });
    }
    if crate::databases::exists(store, project, app.name.as_str()).await? {
        return Err(StoreError::AlreadyExists {
            what: "a database with that name in this project",
        });
    }
    let ts = now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO apps (project_id, name, image, container_port, command, dangerous_mounts, status, created_at, updated_at)
         SELECT p.id, ?, ?, ?, ?, ?, ?, ?, ? FROM projects p WHERE p.name = ? RETURNING id",
    )
    .bind(app.name.as_str())
    .bind(app.image.as_str())
    .bind(i64::from(app.container_port.get()))
    .bind(command_json(&app.command))
    .bind(app.dangerous_mounts)
    .bind(AppStatus::Pending.as_str())
    .bind(ts)
    .bind(ts)
    .bind(project.as_str())
    .fetch_optional(store.pool())
    .await
    .map_err(StoreError::on_unique("an app with that name in this project"))?
    .ok_or(StoreError::NotFound { what: "project" })?;
    find_by_id(store, AppId::new(id)).await
}

pub async fn find_by_id(store: &Store, id: AppId) -> Result<App, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE a.id = ?"))
        .bind(id.get())
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "app" })?;
    from_row(&row)
}

pub async fn find(store: &Store, project: &ProjectName, name: &AppName) -> Result<App, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE p.name = ? AND a.name = ?"))
        .bind(project.as_str())
        .bind(name.as_str())
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "app" })?;
    from_row(&row)
}

/// Every app, ordered by project and name. The rows come back as one JSON
/// document built by SQLite: fetching 1,000 rows one by one through sqlx's
/// worker thread costs several times more than the query itself.
pub async fn list_all(store: &Store) -> Result<Vec<App>, StoreError> {
    let json: String = sqlx::query_scalar(&format!(
        "SELECT json_group_array(json_object(
            'id', id, 'project', project, 'name', name, 'image', image,
            'container_port', container_port, 'command', command,
            'desired_state', desired_state, 'status', status, 'status_detail', status_detail,
            'container_id', container_id, 'host_port', host_port, 'upstream', upstream,
            'dangerous_mounts', json(iif(dangerous_mounts, 'true', 'false')),
            'created_at', created_at, 'updated_at', updated_at) ORDER BY project, name)
         FROM ({SELECT})"
    ))
    .fetch_one(store.pool())
    .await?;
    let raw: Vec<RawApp> =
        serde_json::from_str(&json).map_err(|e| StoreError::corrupt("app list", e))?;
    raw.into_iter().map(RawApp::parse).collect()
}

pub async fn count_all(store: &Store) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM apps")
        .fetch_one(store.pool())
        .await?)
}

/// Apps whose status is one of `statuses` (e.g. the crashed and failed ones the dashboard flags).
pub async fn list_with_status(
    store: &Store,
    statuses: &[AppStatus],
) -> Result<Vec<App>, StoreError> {
    let placeholders = vec!["?"; statuses.len()].join(", ");
    let sql = format!("{SELECT} WHERE a.status IN ({placeholders}) ORDER BY p.name, a.name");
    let mut query = sqlx::query(&sql);
    for status in statuses {
        query = query.bind(status.as_str());
    }
    let rows = query.fetch_all(store.pool()).await?;
    rows.iter().map(from_row).collect()
}

pub async fn list_in_project(store: &Store, project: &ProjectName) -> Result<Vec<App>, StoreError> {
    let rows = sqlx::query(&format!("{SELECT} WHERE p.name = ? ORDER BY a.name"))
        .bind(project.as_str())
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn set_status(
    store: &Store,
    id: AppId,
    status: AppStatus,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE apps SET status = ?, status_detail = ?, updated_at = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(detail)
        .bind(now())
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

pub async fn set_desired_state(
    store: &Store,
    id: AppId,
    desired: DesiredState,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE apps SET desired_state = ?, updated_at = ? WHERE id = ?")
        .bind(desired.as_str())
        .bind(now())
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Records the container now serving the app (or none).
pub async fn set_container(
    store: &Store,
    id: AppId,
    container_id: Option<&str>,
    host_port: Option<u16>,
    upstream: Option<std::net::SocketAddr>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE apps SET container_id = ?, host_port = ?, upstream = ?, updated_at = ? WHERE id = ?",
    )
    .bind(container_id)
    .bind(host_port.map(i64::from))
    .bind(upstream.map(|u| u.to_string()))
        .bind(now())
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Records whether the admin confirmed dangerous bind mounts for the app.
pub async fn set_dangerous_mounts(
    store: &Store,
    id: AppId,
    confirmed: bool,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE apps SET dangerous_mounts = ?, updated_at = ? WHERE id = ?")
        .bind(confirmed)
        .bind(now())
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

pub async fn delete(store: &Store, id: AppId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM apps WHERE id = ?")
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}
