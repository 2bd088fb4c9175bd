//! Upgrades that lose nothing: migrations only go forward, each in its own
//! transaction (sqlx's default; no file opts out, a test checks), and before
//! the first pending one runs berth writes a consistent copy of the database
//! beside it, `berth.db.before-<version>`. A database that a newer berth has
//! already migrated is refused, naming the berth that did it, because this
//! one would misread tables it does not know.

use std::path::{Path, PathBuf};

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;

use crate::StoreError;

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// The settings key naming the berth release that last migrated the schema.
const MIGRATED_BY: &str = "schema_migrated_by";

/// The newest schema version this berth knows.
pub fn newest_known() -> i64 {
    MIGRATOR
        .migrations
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// Where the copy made before migrating to `version` goes.
pub fn backup_path(db: &Path, version: i64) -> PathBuf {
    let name = db
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("berth.db");
    db.with_file_name(format!("{name}.before-{version}"))
}

/// Checks the database's schema against this berth, copies it aside when
/// migrations are pending, and runs them.
pub(crate) async fn run(pool: &SqlitePool, db: &Path) -> Result<(), StoreError> {
    let applied = applied_versions(pool).await?;
    let newest = newest_known();
    if let Some(&found) = applied.iter().filter(|v| **v > newest).max() {
        let by: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(MIGRATED_BY)
            .fetch_optional(pool)
            .await
            .ok()
            .flatten();
        return Err(StoreError::TooNew {
            path: db.to_owned(),
            found,
            known: newest,
            needed: by.map_or_else(
                || format!("the berth release that added schema version {found}"),
                |v| format!("berth {v} or newer"),
            ),
        });
    }
    let pending: Vec<i64> = MIGRATOR
        .migrations
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if let Some(&first) = pending.first()
        && !applied.is_empty()
    {
        let copy = backup_path(db, first);
        // A copy from an earlier attempt is kept: a failed migration rolled
        // back, so it still holds the same data.
        if !copy.exists() {
            let target = copy
                .to_str()
                .ok_or_else(|| StoreError::corrupt("data dir path", "it is not valid UTF-8"))?;
            sqlx::query("VACUUM INTO ?")
                .bind(target)
                .execute(pool)
                .await?;
            tracing::info!(backup = %copy.display(), from = applied.iter().max().copied().unwrap_or(0), to = newest, "copied the database before migrating");
        }
    }
    MIGRATOR.run(pool).await?;
    if !pending.is_empty() {
        sqlx::query("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)")
            .bind(MIGRATED_BY)
            .bind(env!("CARGO_PKG_VERSION"))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// The versions recorded as applied; none on a fresh database.
async fn applied_versions(pool: &SqlitePool) -> Result<Vec<i64>, StoreError> {
    let exists: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version",
    )
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use berth_core::{AppName, ProjectName};

    use super::*;
    use crate::{Store, apps, certificates, env, projects};

    #[test]
    fn every_migration_runs_in_a_transaction() {
        for m in MIGRATOR.migrations.iter() {
            assert!(
                !m.no_tx,
                "migration {} opts out of its transaction",
                m.version
            );
        }
    }

    /// A data dir as the previous release left it: every migration but the
    /// newest, applied the way sqlx applies them, with rows written by hand
    /// in that schema (the env value sealed as that release sealed it).
    async fn previous_release_data_dir(dir: &Path) -> SqlitePool {
        std::fs::create_dir_all(dir).unwrap();
        let pool = open_pool(&dir.join("berth.db")).await;
        let mut previous = Migrator {
            migrations: Cow::Owned(MIGRATOR.migrations.to_vec()),
            ..sqlx::migrate!("../../migrations")
        };
        let last = previous.migrations.len() - 1;
        previous.migrations.to_mut().truncate(last);
        previous.run(&pool).await.unwrap();
        pool
    }

    async fn open_pool(path: &Path) -> SqlitePool {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        SqlitePool::connect_with(options).await.unwrap()
    }

    #[tokio::test]
    async fn a_data_dir_of_the_previous_schema_upgrades_with_every_app_variable_and_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let pool = previous_release_data_dir(&dir).await;
        let now = crate::now();
        sqlx::query("INSERT INTO projects (id, name, created_at) VALUES (1, 'shop', ?)")
            .bind(now)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO apps (id, project_id, name, image, container_port, status, created_at, updated_at)
             VALUES (7, 1, 'web', 'berth-test/web:1', 8080, 'running', ?, ?)",
        )
        .bind(now)
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
        let keyring = crate::crypto::open_keyring(&dir, &pool).await.unwrap();
        let (nonce, sealed) = keyring.current().seal(
            &env::var_aad("app", 7, "DATABASE_URL"),
            b"postgres://db/shop",
        );
        sqlx::query(
            "INSERT INTO env_vars (owner_kind, owner_id, key, position, nonce, ciphertext, secret)
             VALUES ('app', 7, 'DATABASE_URL', 0, ?, ?, 1)",
        )
        .bind(nonce)
        .bind(sealed)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO env_sets (owner_kind, owner_id, version) VALUES ('app', 7, 1)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO certificates (domain, source, names, created_at, updated_at)
             VALUES ('shop.example.com', 'acme', '[]', ?, ?)",
        )
        .bind(now)
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = Store::open(&dir).await.expect("the newer berth opens it");
        let newest = newest_known();
        let copy = backup_path(store.path(), newest);
        assert!(copy.exists(), "a copy was written before migrating");

        let all = apps::list_all(&store).await.unwrap();
        assert_eq!(all.len(), 1);
        let app = apps::find(
            &store,
            &ProjectName::parse("shop").unwrap(),
            &AppName::parse("web").unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(app.image.to_string(), "berth-test/web:1");
        let vars = env::load(&store, berth_core::Owner::App(app.id))
            .await
            .unwrap();
        assert_eq!(vars.vars.len(), 1);
        assert_eq!(vars.vars[0].key.as_str(), "DATABASE_URL");
        assert_eq!(vars.vars[0].value, "postgres://db/shop");
        let certs = certificates::list(&store).await.unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].domain, "shop.example.com");
        assert_eq!(
            projects::list_with_app_counts(&store).await.unwrap().len(),
            1
        );
        store.close().await;

        // The copy is the old database, whole: it opens on its own.
        let old = open_pool(&copy).await;
        let max: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&old)
            .await
            .unwrap();
        assert!(max < newest);
        let apps_in_copy: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apps")
            .fetch_one(&old)
            .await
            .unwrap();
        assert_eq!(apps_in_copy, 1);
    }

    #[tokio::test]
    async fn a_database_migrated_by_a_newer_berth_is_refused_with_the_version_needed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).await.unwrap();
        let future = newest_known() + 1;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (?, 'from the future', 1, x'00', 0)",
        )
        .bind(future)
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query("UPDATE settings SET value = '9.9.9' WHERE key = ?")
            .bind(MIGRATED_BY)
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;

        let err = Store::open(tmp.path()).await.unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::TooNew { .. }), "{message}");
        assert!(
            message.contains(&format!("schema version {future}")),
            "{message}"
        );
        assert!(message.contains("berth 9.9.9 or newer"), "{message}");
        assert!(
            !backup_path(&tmp.path().join("berth.db"), future).exists(),
            "nothing was touched"
        );
    }

    #[tokio::test]
    async fn a_fresh_database_needs_no_copy_and_an_up_to_date_one_is_not_copied_again() {
        let tmp = tempfile::tempdir().unwrap();
        Store::open(tmp.path()).await.unwrap().close().await;
        Store::open(tmp.path()).await.unwrap().close().await;
        let copies = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".before-"))
            .count();
        assert_eq!(copies, 0);
    }
}
