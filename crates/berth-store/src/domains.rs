//! The edge's routes: domains (host + path prefix) of apps, static sites
//! mounted on them, and the dashboard's own domain.

use berth_core::{
    AppId, AppName, Domain, DomainId, DomainName, DomainTarget, NewDomain, PathPrefix, ProjectName,
    TlsMode,
};
use std::path::PathBuf;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{Store, StoreError, now};

const SELECT: &str =
    "SELECT d.id, d.app_id, p.name AS project, a.name AS app, d.host, d.path_prefix,
    d.strip_prefix, d.static_dir, d.spa_fallback, d.tls_mode, d.redirect_https, d.hsts, d.created_at
    FROM domains d JOIN apps a ON a.id = d.app_id JOIN projects p ON p.id = a.project_id";

fn from_row(r: &SqliteRow) -> Result<Domain, StoreError> {
    let text = |col: &str| -> String { r.get(col) };
    let static_dir: Option<String> = r.get("static_dir");
    Ok(Domain {
        id: DomainId::new(r.get("id")),
        app_id: AppId::new(r.get("app_id")),
        project: ProjectName::parse(&text("project"))
            .map_err(|e| StoreError::corrupt("project name", e))?,
        app: AppName::parse(&text("app")).map_err(|e| StoreError::corrupt("app name", e))?,
        host: DomainName::parse(&text("host")).map_err(|e| StoreError::corrupt("domain", e))?,
        path_prefix: PathPrefix::parse(&text("path_prefix"))
            .map_err(|e| StoreError::corrupt("path prefix", e))?,
        strip_prefix: r.get("strip_prefix"),
        target: match static_dir {
            Some(dir) => DomainTarget::Static {
                dir: PathBuf::from(dir),
                spa_fallback: r.get("spa_fallback"),
            },
            None => DomainTarget::App,
        },
        tls_mode: TlsMode::parse(&text("tls_mode"))
            .ok_or_else(|| StoreError::corrupt("TLS mode", text("tls_mode")))?,
        redirect_https: r.get("redirect_https"),
        hsts: r.get("hsts"),
        created_at: r.get("created_at"),
    })
}

/// Adds a domain to an app. The same host and prefix can be routed only once.
pub async fn add(store: &Store, app_id: AppId, new: &NewDomain) -> Result<Domain, StoreError> {
    let (static_dir, spa) = match &new.target {
        DomainTarget::App => (None, false),
        DomainTarget::Static { dir, spa_fallback } => {
            (Some(dir.to_string_lossy().into_owned()), *spa_fallback)
        }
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO domains (app_id, host, path_prefix, strip_prefix, static_dir, spa_fallback,
             tls_mode, redirect_https, hsts, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(app_id.get())
    .bind(new.host.as_str())
    .bind(new.path_prefix.as_str())
    .bind(new.strip_prefix)
    .bind(static_dir)
    .bind(spa)
    .bind(new.tls_mode.as_str())
    .bind(new.redirect_https)
    .bind(new.hsts)
    .bind(now())
    .fetch_one(store.pool())
    .await
    .map_err(StoreError::on_unique("a route for that domain and path"))?;
    let row = sqlx::query(&format!("{SELECT} WHERE d.id = ?"))
        .bind(id)
        .fetch_one(store.pool())
        .await?;
    from_row(&row)
}

/// The app's domains, by host then prefix.
pub async fn list_for_app(store: &Store, app_id: AppId) -> Result<Vec<Domain>, StoreError> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE d.app_id = ? ORDER BY d.host, d.path_prefix"
    ))
    .bind(app_id.get())
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every domain of every app (to build the route table, and for certificates).
pub async fn list_all(store: &Store) -> Result<Vec<Domain>, StoreError> {
    let rows = sqlx::query(&format!("{SELECT} ORDER BY d.host, d.path_prefix"))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// Removes the app's routes for `host` (only the one at `path_prefix` when
/// given). `NotFound` when nothing matched.
pub async fn remove(
    store: &Store,
    app_id: AppId,
    host: &DomainName,
    path_prefix: Option<&PathPrefix>,
) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "DELETE FROM domains WHERE app_id = ? AND host = ? AND (?3 IS NULL OR path_prefix = ?3)",
    )
    .bind(app_id.get())
    .bind(host.as_str())
    .bind(path_prefix.map(PathPrefix::as_str))
    .execute(store.pool())
    .await?;
    match result.rows_affected() {
        0 => Err(StoreError::NotFound { what: "domain" }),
        n => Ok(n),
    }
}

/// The host the dashboard answers to through the edge, if one is set.
pub async fn dashboard_domain(store: &Store) -> Result<Option<DomainName>, StoreError> {
    let value: Option<String> =
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'dashboard_domain'")
            .fetch_optional(store.pool())
            .await?;
    value
        .map(|v| DomainName::parse(&v).map_err(|e| StoreError::corrupt("dashboard domain", e)))
        .transpose()
}

/// Sets (or with `None` removes) the dashboard's domain.
pub async fn set_dashboard_domain(
    store: &Store,
    domain: Option<&DomainName>,
) -> Result<(), StoreError> {
    match domain {
        Some(domain) => {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ('dashboard_domain', ?)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(domain.as_str())
            .execute(store.pool())
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM settings WHERE key = 'dashboard_domain'")
                .execute(store.pool())
                .await?;
        }
    }
    Ok(())
}
