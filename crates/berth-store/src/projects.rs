use berth_core::{Project, ProjectId, ProjectName, ProjectSummary};
use sqlx::Row;

use crate::{Store, StoreError, now};

fn from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Project, StoreError> {
    let name: String = r.get("name");
    Ok(Project {
        id: ProjectId::new(r.get("id")),
        name: ProjectName::parse(&name).map_err(|e| StoreError::corrupt("project name", e))?,
        created_at: r.get("created_at"),
    })
}

pub async fn create(store: &Store, name: &ProjectName) -> Result<Project, StoreError> {
    let row = sqlx::query(
        "INSERT INTO projects (name, created_at) VALUES (?, ?) RETURNING id, name, created_at",
    )
    .bind(name.as_str())
    .bind(now())
    .fetch_one(store.pool())
    .await
    .map_err(StoreError::on_unique("a project with that name"))?;
    from_row(&row)
}

pub async fn find_by_name(store: &Store, name: &ProjectName) -> Result<Project, StoreError> {
    let row = sqlx::query("SELECT id, name, created_at FROM projects WHERE name = ?")
        .bind(name.as_str())
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "project" })?;
    from_row(&row)
}

pub async fn list_with_app_counts(store: &Store) -> Result<Vec<ProjectSummary>, StoreError> {
    let rows = sqlx::query(
        "SELECT p.id, p.name, p.created_at, COUNT(a.id) AS app_count
         FROM projects p LEFT JOIN apps a ON a.project_id = p.id
         GROUP BY p.id ORDER BY p.name",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ProjectSummary {
                project: from_row(r)?,
                app_count: r.get("app_count"),
            })
        })
        .collect()
}

/// Deletes a project that has no apps left.
pub async fn delete_empty(store: &Store, name: &ProjectName) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM projects WHERE name = ?")
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound { what: "project" })?;
    let apps: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM apps WHERE project_id = ?1)
              + (SELECT COUNT(*) FROM stacks WHERE project_id = ?1)
              + (SELECT COUNT(*) FROM databases WHERE project_id = ?1)",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if apps > 0 {
        return Err(StoreError::ProjectNotEmpty);
    }
    sqlx::query("DELETE FROM projects WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
