//! Stacks: a row per stack, its sealed state (the file it was installed
//! from, its inputs and generated values, as berth-deploy's JSON), and the
//! routes the edge serves for it.

use berth_core::{ProjectName, Stack, StackId, StackName, StackStatus};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::crypto::current_key;
use crate::{Store, StoreError, now};

const SELECT: &str = "SELECT s.id, p.name AS project, s.name, s.source_kind, s.template, s.status,
    s.message, s.dangerous_confirmed, s.created_at, s.updated_at
    FROM stacks s JOIN projects p ON p.id = s.project_id";

fn from_row(r: &SqliteRow) -> Result<Stack, StoreError> {
    let project: String = r.get("project");
    let name: String = r.get("name");
    let status: String = r.get("status");
    Ok(Stack {
        id: StackId::new(r.get("id")),
        project: ProjectName::parse(&project)
            .map_err(|e| StoreError::corrupt("project name", e))?,
        name: StackName::parse(&name).map_err(|e| StoreError::corrupt("stack name", e))?,
        source_kind: r.get("source_kind"),
        template: r.get("template"),
        status: StackStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("stack status", &status))?,
        message: r.get("message"),
        dangerous_confirmed: r.get("dangerous_confirmed"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

/// The additional data bound to a stack's sealed state: it cannot be moved
/// to another stack's row.
pub(crate) fn state_aad(stack_id: i64) -> String {
    format!("stack-state:{stack_id}")
}

/// What a new stack row holds besides its state.
#[derive(Debug, Clone)]
pub struct NewStack<'a> {
    pub name: &'a StackName,
    pub source_kind: &'a str,
    pub template: Option<&'a str>,
    pub dangerous_confirmed: bool,
}

/// Records a stack as `installing` with its sealed state. Refuses a name an
/// app or another stack of the project has (they share the container names).
pub async fn create(
    store: &Store,
    project: &ProjectName,
    new: &NewStack<'_>,
    state: &[u8],
) -> Result<Stack, StoreError> {
    let key = current_key(store).await?;
    let mut tx = store.pool().begin().await?;
    let project_id: i64 = sqlx::query_scalar("SELECT id FROM projects WHERE name = ?")
        .bind(project.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound { what: "project" })?;
    let app: Option<i64> =
        sqlx::query_scalar("SELECT id FROM apps WHERE project_id = ? AND name = ?")
            .bind(project_id)
            .bind(new.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    if app.is_some() {
        return Err(StoreError::AlreadyExists {
            what: "an app with that name",
        });
    }
    let database: Option<i64> =
        sqlx::query_scalar("SELECT id FROM databases WHERE project_id = ? AND name = ?")
            .bind(project_id)
            .bind(new.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    if database.is_some() {
        return Err(StoreError::AlreadyExists {
            what: "a database with that name",
        });
    }
    let t = now();
    // The id is in the sealed state's AAD, so insert first, then seal.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO stacks (project_id, name, source_kind, template, status, dangerous_confirmed,
             state_nonce, state, created_at, updated_at)
         VALUES (?, ?, ?, ?, 'installing', ?, x'', x'', ?, ?) RETURNING id",
    )
    .bind(project_id)
    .bind(new.name.as_str())
    .bind(new.source_kind)
    .bind(new.template)
    .bind(new.dangerous_confirmed)
    .bind(t)
    .bind(t)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::on_unique("a stack with that name"))?;
    let (nonce, sealed) = key.seal(&state_aad(id), state);
    sqlx::query("UPDATE stacks SET state_nonce = ?, state = ? WHERE id = ?")
        .bind(nonce)
        .bind(sealed)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query(&format!("{SELECT} WHERE s.id = ?"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    from_row(&row)
}

pub async fn find(
    store: &Store,
    project: &ProjectName,
    name: &StackName,
) -> Result<Stack, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE p.name = ? AND s.name = ?"))
        .bind(project.as_str())
        .bind(name.as_str())
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "stack" })?;
    from_row(&row)
}

/// The stack with this id (backups name their subject by id).
pub async fn find_by_id(store: &Store, id: StackId) -> Result<Stack, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE s.id = ?"))
        .bind(id.get())
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "stack" })?;
    from_row(&row)
}

/// Whether the project has a stack of this name (apps refuse it).
pub async fn exists(store: &Store, project: &ProjectName, name: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT s.id FROM stacks s JOIN projects p ON p.id = s.project_id
         WHERE p.name = ? AND s.name = ?",
    )
    .bind(project.as_str())
    .bind(name)
    .fetch_optional(store.pool())
    .await?;
    Ok(found.is_some())
}

pub async fn list(store: &Store, project: &ProjectName) -> Result<Vec<Stack>, StoreError> {
    let rows = sqlx::query(&format!("{SELECT} WHERE p.name = ? ORDER BY s.name"))
        .bind(project.as_str())
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn list_all(store: &Store) -> Result<Vec<Stack>, StoreError> {
    let rows = sqlx::query(&format!("{SELECT} ORDER BY p.name, s.name"))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// The stack's state, opened.
pub async fn state(store: &Store, id: StackId) -> Result<Vec<u8>, StoreError> {
    let key = current_key(store).await?;
    let row = sqlx::query("SELECT state_nonce, state FROM stacks WHERE id = ?")
        .bind(id.get())
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "stack" })?;
    key.open(
        &state_aad(id.get()),
        row.get::<&[u8], _>("state_nonce"),
        row.get::<&[u8], _>("state"),
    )
}

/// Replaces the stack's state (after an update).
pub async fn save_state(store: &Store, id: StackId, state: &[u8]) -> Result<(), StoreError> {
    let key = current_key(store).await?;
    let (nonce, sealed) = key.seal(&state_aad(id.get()), state);
    sqlx::query("UPDATE stacks SET state_nonce = ?, state = ?, updated_at = ? WHERE id = ?")
        .bind(nonce)
        .bind(sealed)
        .bind(now())
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

pub async fn set_status(
    store: &Store,
    id: StackId,
    status: StackStatus,
    message: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE stacks SET status = ?, message = ?, updated_at = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(message)
        .bind(now())
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Removes the stack's row and its routes (its Docker objects are the
/// caller's to remove first).
pub async fn delete(store: &Store, id: StackId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM stacks WHERE id = ?")
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

/// A route of a stack as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRouteRow {
    pub service: String,
    pub host: String,
    pub path: String,
    pub port: u16,
    /// The container's address on the stack network, while it runs.
    pub address: Option<String>,
    /// The user's own domain: it gets a certificate from the ACME CA.
    pub acme: bool,
}

/// Replaces the stack's routes. A host + path another stack already
/// serves is refused, and nothing changes. A service keeps the address it
/// has now: an update must not take a running service off the edge.
pub async fn set_routes(
    store: &Store,
    id: StackId,
    routes: &[StackRouteRow],
) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    let addresses: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT service, address FROM stack_routes WHERE stack_id = ?")
            .bind(id.get())
            .fetch_all(&mut *tx)
            .await?;
    let address_of = |service: &str| {
        addresses
            .iter()
            .find(|(s, a)| s == service && a.is_some())
            .and_then(|(_, a)| a.clone())
    };
    sqlx::query("DELETE FROM stack_routes WHERE stack_id = ?")
        .bind(id.get())
        .execute(&mut *tx)
        .await?;
    for r in routes {
        sqlx::query(
            "INSERT INTO stack_routes (stack_id, service, host, path, port, address, acme)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.get())
        .bind(&r.service)
        .bind(&r.host)
        .bind(&r.path)
        .bind(i64::from(r.port))
        .bind(r.address.clone().or_else(|| address_of(&r.service)))
        .bind(r.acme)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::on_unique("a route for that host and path"))?;
    }
    tx.commit().await?;
    Ok(())
}

/// Sets where a service's routes go now (`None` while it is down).
pub async fn set_service_address(
    store: &Store,
    id: StackId,
    service: &str,
    address: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE stack_routes SET address = ? WHERE stack_id = ? AND service = ?")
        .bind(address)
        .bind(id.get())
        .bind(service)
        .execute(store.pool())
        .await?;
    Ok(())
}

fn route_from_row(r: &SqliteRow) -> StackRouteRow {
    StackRouteRow {
        service: r.get("service"),
        host: r.get("host"),
        path: r.get("path"),
        port: u16::try_from(r.get::<i64, _>("port")).unwrap_or(0),
        address: r.get("address"),
        acme: r.get("acme"),
    }
}

pub async fn routes(store: &Store, id: StackId) -> Result<Vec<StackRouteRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT service, host, path, port, address, acme FROM stack_routes WHERE stack_id = ? ORDER BY id",
    )
    .bind(id.get())
    .fetch_all(store.pool())
    .await?;
    Ok(rows.iter().map(route_from_row).collect())
}

/// Every stack route with its stack's project and name (the edge's table).
pub async fn all_routes(
    store: &Store,
) -> Result<Vec<(ProjectName, StackName, StackRouteRow)>, StoreError> {
    let rows = sqlx::query(
        "SELECT p.name AS project, s.name AS stack, r.service, r.host, r.path, r.port, r.address, r.acme
         FROM stack_routes r JOIN stacks s ON s.id = r.stack_id JOIN projects p ON p.id = s.project_id
         ORDER BY r.id",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let project: String = r.get("project");
            let stack: String = r.get("stack");
            Ok((
                ProjectName::parse(&project).map_err(|e| StoreError::corrupt("project name", e))?,
                StackName::parse(&stack).map_err(|e| StoreError::corrupt("stack name", e))?,
                route_from_row(r),
            ))
        })
        .collect()
}
