//! Which app mounts which volume where. Rows only: the Docker volumes
//! themselves outlive their rows (see migration 0007).

use berth_core::{
    AppId, AppName, AppVolume, HostPath, MountPath, OwnedVolume, ProjectName, VolumeName,
    VolumeSource,
};
use sqlx::FromRow;

use crate::{Store, StoreError, now};

#[derive(FromRow)]
struct RawVolume {
    project: String,
    app: String,
    name: String,
    kind: String,
    source: String,
    target: String,
    read_only: bool,
    from_image: bool,
}

impl RawVolume {
    fn parse(self) -> Result<OwnedVolume, StoreError> {
        let source = match self.kind.as_str() {
            "volume" => VolumeSource::Volume(self.source),
            "bind" => VolumeSource::Bind(
                HostPath::parse(&self.source).map_err(|e| StoreError::corrupt("host path", e))?,
            ),
            other => return Err(StoreError::corrupt("volume kind", other)),
        };
        Ok(OwnedVolume {
            project: ProjectName::parse(&self.project)
                .map_err(|e| StoreError::corrupt("project name", e))?,
            app: AppName::parse(&self.app).map_err(|e| StoreError::corrupt("app name", e))?,
            volume: AppVolume {
                name: VolumeName::parse(&self.name)
                    .map_err(|e| StoreError::corrupt("volume name", e))?,
                source,
                target: MountPath::parse(&self.target)
                    .map_err(|e| StoreError::corrupt("mount path", e))?,
                read_only: self.read_only,
                from_image: self.from_image,
            },
        })
    }
}

const SELECT: &str = "SELECT p.name AS project, a.name AS app, v.name, v.kind, v.source, v.target,
    v.read_only, v.from_image
    FROM app_volumes v JOIN apps a ON a.id = v.app_id JOIN projects p ON p.id = a.project_id";

/// The app's mounts, by mount path.
pub async fn list_for_app(store: &Store, app_id: AppId) -> Result<Vec<AppVolume>, StoreError> {
    let rows: Vec<RawVolume> =
        sqlx::query_as(&format!("{SELECT} WHERE v.app_id = ? ORDER BY v.target"))
            .bind(app_id.get())
            .fetch_all(store.pool())
            .await?;
    rows.into_iter()
        .map(|r| r.parse().map(|o| o.volume))
        .collect()
}

/// Every app's mounts.
pub async fn list_all(store: &Store) -> Result<Vec<OwnedVolume>, StoreError> {
    let rows: Vec<RawVolume> =
        sqlx::query_as(&format!("{SELECT} ORDER BY p.name, a.name, v.target"))
            .fetch_all(store.pool())
            .await?;
    rows.into_iter().map(RawVolume::parse).collect()
}

/// Adds a mount to the app. A second volume with the same name or mount
/// path is `AlreadyExists`.
pub async fn add(store: &Store, app_id: AppId, volume: &AppVolume) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO app_volumes (app_id, name, kind, source, target, read_only, from_image, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(app_id.get())
    .bind(volume.name.as_str())
    .bind(volume.source.kind())
    .bind(volume.source.location())
    .bind(volume.target.as_str())
    .bind(volume.read_only)
    .bind(volume.from_image)
    .bind(now())
    .execute(store.pool())
    .await
    .map_err(StoreError::on_unique(
        "a volume with that name or mount path in this app",
    ))?;
    Ok(())
}

/// Removes the app's mount (the row; the Docker volume stays). Returns
/// whether there was one.
pub async fn remove(store: &Store, app_id: AppId, name: &VolumeName) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM app_volumes WHERE app_id = ? AND name = ?")
        .bind(app_id.get())
        .bind(name.as_str())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}
