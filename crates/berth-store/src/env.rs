//! Environment variables per owner (an app, a project's shared set, the
//! global shared set; later a stack), encrypted at rest, with a version per
//! owner and a history of every save.

use berth_core::{AppId, EnvFlags, EnvKey, EnvSet, EnvVar, HistoryEntry, Owner, Saved};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::crypto::{SecretKey, current_key, ensure_current};
use crate::{Store, StoreError, now};

pub(crate) fn var_aad(kind: &str, id: i64, key: &str) -> String {
    format!("env:{kind}:{id}:{key}")
}

pub(crate) fn snapshot_aad(kind: &str, id: i64, version: i64) -> String {
    format!("env-history:{kind}:{id}:{version}")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ChangeRecord {
    key: String,
    change: String,
}

fn flag(r: &SqliteRow, col: &str) -> bool {
    r.get::<i64, _>(col) != 0
}

fn decrypt_var(key: &SecretKey, owner: Owner, r: &SqliteRow) -> Result<EnvVar, StoreError> {
    let name: String = r.get("key");
    let aad = var_aad(owner.kind(), owner.id(), &name);
    let plain = key.open(&aad, r.get("nonce"), r.get("ciphertext"))?;
    Ok(EnvVar {
        key: EnvKey::parse(&name).map_err(|e| StoreError::corrupt("variable name", e))?,
        value: String::from_utf8(plain).map_err(|e| StoreError::corrupt("variable value", e))?,
        flags: EnvFlags {
            secret: flag(r, "secret"),
            build: flag(r, "build"),
            runtime: flag(r, "runtime"),
            literal: flag(r, "literal"),
        },
    })
}

async fn load_in(
    conn: &mut sqlx::SqliteConnection,
    key: &SecretKey,
    owner: Owner,
) -> Result<EnvSet, StoreError> {
    let set = sqlx::query(
        "SELECT version, deployed_version FROM env_sets WHERE owner_kind = ? AND owner_id = ?",
    )
    .bind(owner.kind())
    .bind(owner.id())
    .fetch_optional(&mut *conn)
    .await?;
    let rows = sqlx::query(
        "SELECT key, nonce, ciphertext, secret, build, runtime, literal FROM env_vars
         WHERE owner_kind = ? AND owner_id = ? ORDER BY position",
    )
    .bind(owner.kind())
    .bind(owner.id())
    .fetch_all(&mut *conn)
    .await?;
    Ok(EnvSet {
        version: set.as_ref().map_or(0, |r| r.get("version")),
        deployed_version: set.and_then(|r| r.get("deployed_version")),
        vars: rows
            .iter()
            .map(|r| decrypt_var(key, owner, r))
            .collect::<Result<_, _>>()?,
    })
}

pub async fn load(store: &Store, owner: Owner) -> Result<EnvSet, StoreError> {
    let key = current_key(store).await?;
    let mut conn = store.pool().acquire().await?;
    load_in(&mut conn, &key, owner).await
}

/// Replaces the owner's whole set with `vars` (in that order) and records the
/// change in the history. `expected` is the version the caller's edit started
/// from: when someone saved in between, nothing is written and
/// [`StoreError::VersionConflict`] names the current version.
pub async fn save(
    store: &Store,
    owner: Owner,
    expected: Option<i64>,
    vars: &[EnvVar],
    actor: &str,
    note: Option<&str>,
) -> Result<Saved, StoreError> {
    let key = current_key(store).await?;
    let mut tx = store.pool().begin().await?;
    // Writing first takes SQLite's write lock now, so the version read below
    // cannot go stale before this transaction commits.
    sqlx::query("INSERT OR IGNORE INTO env_sets (owner_kind, owner_id, version) VALUES (?, ?, 0)")
        .bind(owner.kind())
        .bind(owner.id())
        .execute(&mut *tx)
        .await?;
    ensure_current(&mut tx, &key).await?;
    let current = load_in(&mut tx, &key, owner).await?;
    if let Some(expected) = expected
        && expected != current.version
    {
        return Err(StoreError::VersionConflict {
            current: current.version,
        });
    }
    let changes = berth_core::env::diff(&current.vars, vars);
    if changes.is_empty() {
        return Ok(Saved {
            version: current.version,
            changes,
        });
    }
    sqlx::query("DELETE FROM env_vars WHERE owner_kind = ? AND owner_id = ?")
        .bind(owner.kind())
        .bind(owner.id())
        .execute(&mut *tx)
        .await?;
    for (position, var) in vars.iter().enumerate() {
        let aad = var_aad(owner.kind(), owner.id(), var.key.as_str());
        let (nonce, sealed) = key.seal(&aad, var.value.as_bytes());
        sqlx::query(
            "INSERT INTO env_vars (owner_kind, owner_id, key, position, nonce, ciphertext, secret, build, runtime, literal)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(owner.kind())
        .bind(owner.id())
        .bind(var.key.as_str())
        .bind(position as i64)
        .bind(nonce)
        .bind(sealed)
        .bind(var.flags.secret)
        .bind(var.flags.build)
        .bind(var.flags.runtime)
        .bind(var.flags.literal)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::on_unique("a variable with that name"))?;
    }
    let version = current.version + 1;
    sqlx::query("UPDATE env_sets SET version = ? WHERE owner_kind = ? AND owner_id = ?")
        .bind(version)
        .bind(owner.kind())
        .bind(owner.id())
        .execute(&mut *tx)
        .await?;
    let records: Vec<ChangeRecord> = changes
        .iter()
        .map(|c| ChangeRecord {
            key: c.key().to_string(),
            change: c.kind().to_owned(),
        })
        .collect();
    let snapshot = serde_json::to_vec(vars).expect("variables always serialize");
    let (nonce, sealed) = key.seal(&snapshot_aad(owner.kind(), owner.id(), version), &snapshot);
    sqlx::query(
        "INSERT INTO env_history (owner_kind, owner_id, version, actor, created_at, changes, note, nonce, snapshot)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(owner.kind())
    .bind(owner.id())
    .bind(version)
    .bind(actor)
    .bind(now())
    .bind(serde_json::to_string(&records).expect("change records always serialize"))
    .bind(note)
    .bind(nonce)
    .bind(sealed)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Saved { version, changes })
}

/// The saves of an owner, newest first.
pub async fn history(
    store: &Store,
    owner: Owner,
    limit: i64,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT version, actor, created_at, changes, note FROM env_history
         WHERE owner_kind = ? AND owner_id = ? ORDER BY version DESC LIMIT ?",
    )
    .bind(owner.kind())
    .bind(owner.id())
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let changes: Vec<ChangeRecord> = serde_json::from_str(r.get("changes"))
                .map_err(|e| StoreError::corrupt("history", e))?;
            Ok(HistoryEntry {
                version: r.get("version"),
                actor: r.get("actor"),
                created_at: r.get("created_at"),
                changes: changes.into_iter().map(|c| (c.key, c.change)).collect(),
                note: r.get("note"),
            })
        })
        .collect()
}

/// The whole set as it was right after `version` was saved.
pub async fn snapshot(
    store: &Store,
    owner: Owner,
    version: i64,
) -> Result<Vec<EnvVar>, StoreError> {
    let row = sqlx::query(
        "SELECT nonce, snapshot FROM env_history WHERE owner_kind = ? AND owner_id = ? AND version = ?",
    )
    .bind(owner.kind())
    .bind(owner.id())
    .bind(version)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound { what: "version" })?;
    let key = current_key(store).await?;
    let plain = key.open(
        &snapshot_aad(owner.kind(), owner.id(), version),
        row.get("nonce"),
        row.get("snapshot"),
    )?;
    serde_json::from_slice(&plain).map_err(|e| StoreError::corrupt("history snapshot", e))
}

/// Records which version the owner's running container was created with.
pub async fn mark_deployed(store: &Store, owner: Owner, version: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO env_sets (owner_kind, owner_id, version, deployed_version) VALUES (?, ?, 0, ?)
         ON CONFLICT (owner_kind, owner_id) DO UPDATE SET deployed_version = excluded.deployed_version",
    )
    .bind(owner.kind())
    .bind(owner.id())
    .bind(version)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Every app's variables, to find which apps use a shared variable.
pub async fn all_app_sets(store: &Store) -> Result<Vec<(AppId, Vec<EnvVar>)>, StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT owner_id FROM env_vars WHERE owner_kind = 'app' ORDER BY owner_id",
    )
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids.into_iter().map(AppId::new) {
        out.push((id, load(store, Owner::App(id)).await?.vars));
    }
    Ok(out)
}
