//! Managed databases: a row per database, its credentials sealed (user,
//! password, database name as one JSON document, bound to the row's id).

use berth_core::{
    Credentials, Database, DatabaseEngine, DatabaseId, DatabaseName, DatabaseState, ImageRef,
    ProjectName,
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::crypto::current_key;
use crate::{Store, StoreError, now};

const SELECT: &str = "SELECT d.id, p.name AS project, d.name, d.engine, d.version, d.image,
    d.host_port, d.desired, d.message, d.created_at, d.updated_at
    FROM databases d JOIN projects p ON p.id = d.project_id";

fn from_row(r: &SqliteRow) -> Result<Database, StoreError> {
    let project: String = r.get("project");
    let name: String = r.get("name");
    let engine: String = r.get("engine");
    let image: String = r.get("image");
    let desired: String = r.get("desired");
    Ok(Database {
        id: DatabaseId::new(r.get("id")),
        project: ProjectName::parse(&project)
            .map_err(|e| StoreError::corrupt("project name", e))?,
        name: DatabaseName::parse(&name).map_err(|e| StoreError::corrupt("database name", e))?,
        engine: DatabaseEngine::parse(&engine).map_err(|e| StoreError::corrupt("engine", e))?,
        version: r.get("version"),
        image: ImageRef::parse(&image).map_err(|e| StoreError::corrupt("image", e))?,
        host_port: r
            .get::<Option<i64>, _>("host_port")
            .and_then(|p| u16::try_from(p).ok()),
        desired: if desired == "stopped" {
            DatabaseState::Stopped
        } else {
            DatabaseState::Running
        },
        message: r.get("message"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

/// The additional data bound to a database's sealed credentials: they
/// cannot be moved to another database's row.
pub(crate) fn credentials_aad(id: i64) -> String {
    format!("database-credentials:{id}")
}

/// What a new database row holds.
#[derive(Debug, Clone)]
pub struct NewDatabase<'a> {
    pub name: &'a DatabaseName,
    pub engine: DatabaseEngine,
    pub version: &'a str,
    pub image: &'a ImageRef,
    pub host_port: Option<u16>,
}

/// Records a database with its sealed credentials. Refuses a name an app or
/// a stack of the project has (they share container names and aliases).
pub async fn create(
    store: &Store,
    project: &ProjectName,
    new: &NewDatabase<'_>,
    credentials: &Credentials,
) -> Result<Database, StoreError> {
    let key = current_key(store).await?;
    let mut tx = store.pool().begin().await?;
    let project_id: i64 = sqlx::query_scalar("SELECT id FROM projects WHERE name = ?")
        .bind(project.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound { what: "project" })?;
    let taken: Option<String> = sqlx::query_scalar(
        "SELECT 'an app' FROM apps WHERE project_id = ?1 AND name = ?2
         UNION ALL SELECT 'a stack' FROM stacks WHERE project_id = ?1 AND name = ?2",
    )
    .bind(project_id)
    .bind(new.name.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    match taken.as_deref() {
        Some("an app") => {
            return Err(StoreError::AlreadyExists {
                what: "an app with that name in this project",
            });
        }
        Some(_) => {
            return Err(StoreError::AlreadyExists {
                what: "a stack with that name in this project",
            });
        }
        None => {}
    }
    let t = now();
    // The id is in the sealed credentials' AAD, so insert first, then seal.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO databases (project_id, name, engine, version, image, host_port,
             cred_nonce, credentials, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, x'', x'', ?, ?) RETURNING id",
    )
    .bind(project_id)
    .bind(new.name.as_str())
    .bind(new.engine.as_str())
    .bind(new.version)
    .bind(new.image.as_str())
    .bind(new.host_port.map(i64::from))
    .bind(t)
    .bind(t)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::on_unique(
        "a database with that name in this project",
    ))?;
    let (nonce, sealed) = key.seal(&credentials_aad(id), &encode(credentials));
    sqlx::query("UPDATE databases SET cred_nonce = ?, credentials = ? WHERE id = ?")
        .bind(nonce)
        .bind(sealed)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query(&format!("{SELECT} WHERE d.id = ?"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    from_row(&row)
}

fn encode(credentials: &Credentials) -> Vec<u8> {
    serde_json::to_vec(credentials).expect("credentials always serialize")
}

pub async fn find(
    store: &Store,
    project: &ProjectName,
    name: &DatabaseName,
) -> Result<Database, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE p.name = ? AND d.name = ?"))
        .bind(project.as_str())
        .bind(name.as_str())
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "database" })?;
    from_row(&row)
}

pub async fn find_by_id(store: &Store, id: DatabaseId) -> Result<Database, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE d.id = ?"))
        .bind(id.get())
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "database" })?;
    from_row(&row)
}

/// Whether the project has a database of this name (apps and stacks refuse it).
pub async fn exists(store: &Store, project: &ProjectName, name: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT d.id FROM databases d JOIN projects p ON p.id = d.project_id
         WHERE p.name = ? AND d.name = ?",
    )
    .bind(project.as_str())
    .bind(name)
    .fetch_optional(store.pool())
    .await?;
    Ok(found.is_some())
}

pub async fn list(store: &Store, project: &ProjectName) -> Result<Vec<Database>, StoreError> {
    let rows = sqlx::query(&format!("{SELECT} WHERE p.name = ? ORDER BY d.name"))
        .bind(project.as_str())
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

pub async fn list_all(store: &Store) -> Result<Vec<Database>, StoreError> {
    let rows = sqlx::query(&format!("{SELECT} ORDER BY p.name, d.name"))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// The database's credentials, opened.
pub async fn credentials(store: &Store, id: DatabaseId) -> Result<Credentials, StoreError> {
    let key = current_key(store).await?;
    let row = sqlx::query("SELECT cred_nonce, credentials FROM databases WHERE id = ?")
        .bind(id.get())
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "database" })?;
    let plain = key.open(
        &credentials_aad(id.get()),
        row.get::<&[u8], _>("cred_nonce"),
        row.get::<&[u8], _>("credentials"),
    )?;
    serde_json::from_slice(&plain).map_err(|e| StoreError::corrupt("database credentials", e))
}

/// Replaces the credentials (after the password was changed in the server).
pub async fn set_credentials(
    store: &Store,
    id: DatabaseId,
    credentials: &Credentials,
) -> Result<(), StoreError> {
    let key = current_key(store).await?;
    let (nonce, sealed) = key.seal(&credentials_aad(id.get()), &encode(credentials));
    sqlx::query(
        "UPDATE databases SET cred_nonce = ?, credentials = ?, updated_at = ? WHERE id = ?",
    )
    .bind(nonce)
    .bind(sealed)
    .bind(now())
    .bind(id.get())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The settings an update may change.
#[derive(Debug, Clone)]
pub struct DatabaseSettings<'a> {
    pub version: &'a str,
    pub image: &'a ImageRef,
    pub host_port: Option<u16>,
}

pub async fn set_settings(
    store: &Store,
    id: DatabaseId,
    settings: &DatabaseSettings<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE databases SET version = ?, image = ?, host_port = ?, updated_at = ? WHERE id = ?",
    )
    .bind(settings.version)
    .bind(settings.image.as_str())
    .bind(settings.host_port.map(i64::from))
    .bind(now())
    .bind(id.get())
    .execute(store.pool())
    .await?;
    Ok(())
}

pub async fn set_desired(
    store: &Store,
    id: DatabaseId,
    desired: DatabaseState,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE databases SET desired = ?, updated_at = ? WHERE id = ?")
        .bind(desired.as_str())
        .bind(now())
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Records what the last action did, or why it failed (`None`: all well).
pub async fn set_message(
    store: &Store,
    id: DatabaseId,
    message: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE databases SET message = ?, updated_at = ? WHERE id = ?")
        .bind(message)
        .bind(now())
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Removes the row (its container and, if asked, its volume are the caller's).
pub async fn delete(store: &Store, id: DatabaseId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM databases WHERE id = ?")
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}
