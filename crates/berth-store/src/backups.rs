//! Backups: destinations (a local dir, S3 targets with their secret key
//! sealed), schedules (with an optional encryption passphrase, sealed),
//! backups, one row per copy written to a destination, and restores.
//!
//! A backup's subject is `(kind, id, service)`: `stack_service` is a
//! stack's id and the service's name; `database` a managed database's id
//! and an empty service.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::crypto::current_key;
use crate::{Store, StoreError, now};

/// What a backup is of, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectKey {
    /// `stack_service` or `database`.
    pub kind: &'static str,
    pub id: i64,
    /// The stack's service; empty for a managed database.
    pub service: String,
}

fn subject_from(r: &SqliteRow) -> Result<SubjectKey, StoreError> {
    let kind: String = r.get("subject_kind");
    let kind = match kind.as_str() {
        "stack_service" => "stack_service",
        "database" => "database",
        other => return Err(StoreError::corrupt("backup subject kind", other)),
    };
    Ok(SubjectKey {
        kind,
        id: r.get("subject_id"),
        service: r.get("subject_service"),
    })
}

pub(crate) fn destination_secret_aad(id: i64) -> String {
    format!("backup-destination-secret:{id}")
}

pub(crate) fn schedule_passphrase_aad(id: i64) -> String {
    format!("backup-schedule-passphrase:{id}")
}

pub(crate) fn backup_passphrase_aad(id: i64) -> String {
    format!("backup-passphrase:{id}")
}

// ---------------------------------------------------------------- destinations

/// Where a destination is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationTarget {
    /// `None`: `<data dir>/backups`.
    Local { path: Option<String> },
    S3 {
        endpoint: String,
        region: String,
        bucket: String,
        prefix: String,
        path_style: bool,
        access_key_id: String,
    },
}

/// Retention limits of one destination; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: Option<i64>,
    pub max_age_days: Option<i64>,
    pub max_total_bytes: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct DestinationRow {
    pub id: i64,
    pub name: String,
    pub target: DestinationTarget,
    pub has_secret: bool,
    pub retention: Retention,
    pub created_at: i64,
    pub updated_at: i64,
}

fn destination_from(r: &SqliteRow) -> Result<DestinationRow, StoreError> {
    let kind: String = r.get("kind");
    let target = match kind.as_str() {
        "local" => DestinationTarget::Local {
            path: r.get("path"),
        },
        "s3" => DestinationTarget::S3 {
            endpoint: r.get::<Option<String>, _>("endpoint").unwrap_or_default(),
            region: r.get::<Option<String>, _>("region").unwrap_or_default(),
            bucket: r.get::<Option<String>, _>("bucket").unwrap_or_default(),
            prefix: r.get("prefix"),
            path_style: r.get("path_style"),
            access_key_id: r
                .get::<Option<String>, _>("access_key_id")
                .unwrap_or_default(),
        },
        other => return Err(StoreError::corrupt("destination kind", other)),
    };
    Ok(DestinationRow {
        id: r.get("id"),
        name: r.get("name"),
        target,
        has_secret: r.get::<Option<Vec<u8>>, _>("secret").is_some(),
        retention: Retention {
            keep_last: r.get("keep_last"),
            max_age_days: r.get("max_age_days"),
            max_total_bytes: r.get("max_total_bytes"),
        },
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

/// A destination as the form or the API gives it.
#[derive(Clone)]
pub struct DestinationInput<'a> {
    pub name: &'a str,
    pub target: &'a DestinationTarget,
    /// The S3 secret key; `None` on an update keeps the stored one.
    pub secret: Option<&'a str>,
    pub retention: Retention,
}

impl std::fmt::Debug for DestinationInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationInput")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("secret", &self.secret.map(|_| "[REDACTED]"))
            .field("retention", &self.retention)
            .finish()
    }
}

/// A destination's target as its table's columns.
struct TargetColumns<'a> {
    kind: &'static str,
    path: Option<&'a str>,
    endpoint: Option<&'a str>,
    region: Option<&'a str>,
    bucket: Option<&'a str>,
    prefix: &'a str,
    path_style: bool,
    access_key_id: Option<&'a str>,
}

fn target_columns(t: &DestinationTarget) -> TargetColumns<'_> {
    match t {
        DestinationTarget::Local { path } => TargetColumns {
            kind: "local",
            path: path.as_deref(),
            endpoint: None,
            region: None,
            bucket: None,
            prefix: "",
            path_style: true,
            access_key_id: None,
        },
        DestinationTarget::S3 {
            endpoint,
            region,
            bucket,
            prefix,
            path_style,
            access_key_id,
        } => TargetColumns {
            kind: "s3",
            path: None,
            endpoint: Some(endpoint),
            region: Some(region),
            bucket: Some(bucket),
            prefix,
            path_style: *path_style,
            access_key_id: Some(access_key_id),
        },
    }
}

pub async fn create_destination(
    store: &Store,
    input: &DestinationInput<'_>,
) -> Result<DestinationRow, StoreError> {
    let key = current_key(store).await?;
    let TargetColumns {
        kind,
        path,
        endpoint,
        region,
        bucket,
        prefix,
        path_style,
        access_key_id,
    } = target_columns(input.target);
    let t = now();
    let mut tx = store.pool().begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO backup_destinations (name, kind, path, endpoint, region, bucket, prefix,
             path_style, access_key_id, keep_last, max_age_days, max_total_bytes, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(input.name)
    .bind(kind)
    .bind(path)
    .bind(endpoint)
    .bind(region)
    .bind(bucket)
    .bind(prefix)
    .bind(path_style)
    .bind(access_key_id)
    .bind(input.retention.keep_last)
    .bind(input.retention.max_age_days)
    .bind(input.retention.max_total_bytes)
    .bind(t)
    .bind(t)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::on_unique("a destination with that name"))?;
    if let Some(secret) = input.secret {
        crate::crypto::ensure_current(&mut tx, &key).await?;
        let (nonce, sealed) = key.seal(&destination_secret_aad(id), secret.as_bytes());
        sqlx::query("UPDATE backup_destinations SET secret_nonce = ?, secret = ? WHERE id = ?")
            .bind(nonce)
            .bind(sealed)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    find_destination(store, id).await
}

pub async fn update_destination(
    store: &Store,
    id: i64,
    input: &DestinationInput<'_>,
) -> Result<DestinationRow, StoreError> {
    let key = current_key(store).await?;
    let TargetColumns {
        kind,
        path,
        endpoint,
        region,
        bucket,
        prefix,
        path_style,
        access_key_id,
    } = target_columns(input.target);
    let mut tx = store.pool().begin().await?;
    let done = sqlx::query(
        "UPDATE backup_destinations SET name = ?, kind = ?, path = ?, endpoint = ?, region = ?,
             bucket = ?, prefix = ?, path_style = ?, access_key_id = ?, keep_last = ?,
             max_age_days = ?, max_total_bytes = ?, updated_at = ?
         WHERE id = ?",
    )
    .bind(input.name)
    .bind(kind)
    .bind(path)
    .bind(endpoint)
    .bind(region)
    .bind(bucket)
    .bind(prefix)
    .bind(path_style)
    .bind(access_key_id)
    .bind(input.retention.keep_last)
    .bind(input.retention.max_age_days)
    .bind(input.retention.max_total_bytes)
    .bind(now())
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::on_unique("a destination with that name"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "backup destination",
        });
    }
    if let Some(secret) = input.secret {
        crate::crypto::ensure_current(&mut tx, &key).await?;
        let (nonce, sealed) = key.seal(&destination_secret_aad(id), secret.as_bytes());
        sqlx::query("UPDATE backup_destinations SET secret_nonce = ?, secret = ? WHERE id = ?")
            .bind(nonce)
            .bind(sealed)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    find_destination(store, id).await
}

pub async fn find_destination(store: &Store, id: i64) -> Result<DestinationRow, StoreError> {
    let row = sqlx::query("SELECT * FROM backup_destinations WHERE id = ?")
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound {
            what: "backup destination",
        })?;
    destination_from(&row)
}

pub async fn list_destinations(store: &Store) -> Result<Vec<DestinationRow>, StoreError> {
    let rows = sqlx::query("SELECT * FROM backup_destinations ORDER BY id")
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(destination_from).collect()
}

/// The S3 secret key of a destination, in clear (for the upload only).
pub async fn destination_secret(store: &Store, id: i64) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT secret_nonce, secret FROM backup_destinations WHERE id = ?")
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound {
            what: "backup destination",
        })?;
    open_sealed(
        store,
        &destination_secret_aad(id),
        &row,
        "secret_nonce",
        "secret",
    )
    .await
}

async fn open_sealed(
    store: &Store,
    aad: &str,
    row: &SqliteRow,
    nonce: &str,
    data: &str,
) -> Result<Option<String>, StoreError> {
    let (Some(nonce), Some(sealed)) = (
        row.get::<Option<Vec<u8>>, _>(nonce),
        row.get::<Option<Vec<u8>>, _>(data),
    ) else {
        return Ok(None);
    };
    let key = current_key(store).await?;
    let plain = key.open(aad, &nonce, &sealed)?;
    String::from_utf8(plain)
        .map(Some)
        .map_err(|e| StoreError::corrupt("sealed text", e))
}

/// Deletes a destination no copy that still exists was written to.
pub async fn delete_destination(store: &Store, id: i64) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM backup_copies WHERE destination_id = ? AND deleted_at IS NULL AND error IS NULL",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if live > 0 {
        return Err(StoreError::AlreadyExists {
            what: "a backup stored at this destination (delete it or let retention remove it first); the destination",
        });
    }
    sqlx::query("DELETE FROM backup_copies WHERE destination_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query("DELETE FROM backup_destinations WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "backup destination",
        });
    }
    tx.commit().await?;
    Ok(())
}

/// The local destination berth makes on first use (`<data dir>/backups`).
pub async fn ensure_default_local(store: &Store) -> Result<DestinationRow, StoreError> {
    let existing = sqlx::query(
        "SELECT * FROM backup_destinations WHERE kind = 'local' AND path IS NULL ORDER BY id LIMIT 1",
    )
    .fetch_optional(store.pool())
    .await?;
    if let Some(row) = existing {
        return destination_from(&row);
    }
    let t = now();
    sqlx::query(
        "INSERT OR IGNORE INTO backup_destinations (name, kind, created_at, updated_at) VALUES ('local', 'local', ?, ?)",
    )
    .bind(t)
    .bind(t)
    .execute(store.pool())
    .await?;
    let row = sqlx::query(
        "SELECT * FROM backup_destinations WHERE kind = 'local' AND path IS NULL ORDER BY id LIMIT 1",
    )
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::AlreadyExists {
        what: "a destination named 'local' (not the default directory)",
    })?;
    destination_from(&row)
}

// ---------------------------------------------------------------- schedules

#[derive(Debug, Clone)]
pub struct ScheduleRow {
    pub id: i64,
    pub subject: SubjectKey,
    pub cron: String,
    pub time_zone: String,
    pub destinations: Vec<i64>,
    pub encrypted: bool,
    pub enabled: bool,
    pub last_run_at: Option<i64>,
    pub next_run_at: Option<i64>,
    pub created_at: i64,
}

fn schedule_from(r: &SqliteRow) -> Result<ScheduleRow, StoreError> {
    let dests: String = r.get("destinations");
    Ok(ScheduleRow {
        id: r.get("id"),
        subject: subject_from(r)?,
        cron: r.get("cron"),
        time_zone: r.get("time_zone"),
        destinations: serde_json::from_str(&dests)
            .map_err(|e| StoreError::corrupt("schedule destinations", e))?,
        encrypted: r.get::<Option<Vec<u8>>, _>("passphrase").is_some(),
        enabled: r.get("enabled"),
        last_run_at: r.get("last_run_at"),
        next_run_at: r.get("next_run_at"),
        created_at: r.get("created_at"),
    })
}

#[derive(Clone)]
pub struct ScheduleInput<'a> {
    pub subject: &'a SubjectKey,
    pub cron: &'a str,
    pub time_zone: &'a str,
    pub destinations: &'a [i64],
    pub passphrase: Option<&'a str>,
    pub enabled: bool,
    pub next_run_at: Option<i64>,
}

impl std::fmt::Debug for ScheduleInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduleInput")
            .field("subject", &self.subject)
            .field("cron", &self.cron)
            .field("time_zone", &self.time_zone)
            .field("destinations", &self.destinations)
            .field("passphrase", &self.passphrase.map(|_| "[REDACTED]"))
            .field("enabled", &self.enabled)
            .finish()
    }
}

pub async fn create_schedule(
    store: &Store,
    input: &ScheduleInput<'_>,
) -> Result<ScheduleRow, StoreError> {
    let key = current_key(store).await?;
    let mut tx = store.pool().begin().await?;
    let dests = serde_json::to_string(input.destinations).expect("ids serialize");
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO backup_schedules (subject_kind, subject_id, subject_service, cron, time_zone,
             destinations, enabled, next_run_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(input.subject.kind)
    .bind(input.subject.id)
    .bind(&input.subject.service)
    .bind(input.cron)
    .bind(input.time_zone)
    .bind(dests)
    .bind(input.enabled)
    .bind(input.next_run_at)
    .bind(now())
    .fetch_one(&mut *tx)
    .await?;
    if let Some(p) = input.passphrase {
        crate::crypto::ensure_current(&mut tx, &key).await?;
        let (nonce, sealed) = key.seal(&schedule_passphrase_aad(id), p.as_bytes());
        sqlx::query(
            "UPDATE backup_schedules SET passphrase_nonce = ?, passphrase = ? WHERE id = ?",
        )
        .bind(nonce)
        .bind(sealed)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    find_schedule(store, id).await
}

pub async fn find_schedule(store: &Store, id: i64) -> Result<ScheduleRow, StoreError> {
    let row = sqlx::query("SELECT * FROM backup_schedules WHERE id = ?")
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound {
            what: "backup schedule",
        })?;
    schedule_from(&row)
}

pub async fn list_schedules(
    store: &Store,
    subject: &SubjectKey,
) -> Result<Vec<ScheduleRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM backup_schedules WHERE subject_kind = ? AND subject_id = ? AND subject_service = ? ORDER BY id",
    )
    .bind(subject.kind)
    .bind(subject.id)
    .bind(&subject.service)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(schedule_from).collect()
}

pub async fn enabled_schedules(store: &Store) -> Result<Vec<ScheduleRow>, StoreError> {
    let rows = sqlx::query("SELECT * FROM backup_schedules WHERE enabled = 1 ORDER BY id")
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(schedule_from).collect()
}

pub async fn schedule_passphrase(store: &Store, id: i64) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT passphrase_nonce, passphrase FROM backup_schedules WHERE id = ?")
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound {
            what: "backup schedule",
        })?;
    open_sealed(
        store,
        &schedule_passphrase_aad(id),
        &row,
        "passphrase_nonce",
        "passphrase",
    )
    .await
}

/// Records that a schedule fired at `last` and fires next at `next`.
pub async fn set_schedule_runs(
    store: &Store,
    id: i64,
    last: Option<i64>,
    next: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE backup_schedules SET last_run_at = COALESCE(?, last_run_at), next_run_at = ? WHERE id = ?",
    )
    .bind(last)
    .bind(next)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

pub async fn set_schedule_enabled(store: &Store, id: i64, enabled: bool) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE backup_schedules SET enabled = ? WHERE id = ?")
        .bind(enabled)
        .bind(id)
        .execute(store.pool())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "backup schedule",
        });
    }
    Ok(())
}

pub async fn delete_schedule(store: &Store, id: i64) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM backup_schedules WHERE id = ?")
        .bind(id)
        .execute(store.pool())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "backup schedule",
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- backups

#[derive(Debug, Clone)]
pub struct CopyRow {
    pub id: i64,
    pub backup_id: i64,
    pub destination_id: i64,
    pub destination_name: String,
    pub key: String,
    pub location: Option<String>,
    pub size: Option<i64>,
    pub duration_ms: Option<i64>,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub deleted_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct BackupRow {
    pub id: i64,
    pub subject: SubjectKey,
    pub trigger: String,
    pub schedule_id: Option<i64>,
    pub status: String,
    pub engine: Option<String>,
    pub encrypted: bool,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub dump_bytes: Option<i64>,
    pub stored_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub copies: Vec<CopyRow>,
}

fn backup_from(r: &SqliteRow) -> Result<BackupRow, StoreError> {
    Ok(BackupRow {
        id: r.get("id"),
        subject: subject_from(r)?,
        trigger: r.get("trig"),
        schedule_id: r.get("schedule_id"),
        status: r.get("status"),
        engine: r.get("engine"),
        encrypted: r.get("encrypted"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
        dump_bytes: r.get("dump_bytes"),
        stored_bytes: r.get("stored_bytes"),
        sha256: r.get("sha256"),
        error: r.get("error"),
        created_at: r.get("created_at"),
        copies: Vec::new(),
    })
}

fn copy_from(r: &SqliteRow) -> CopyRow {
    CopyRow {
        id: r.get("id"),
        backup_id: r.get("backup_id"),
        destination_id: r.get("destination_id"),
        destination_name: r.get("destination_name"),
        key: r.get("key"),
        location: r.get("location"),
        size: r.get("size"),
        duration_ms: r.get("duration_ms"),
        sha256: r.get("sha256"),
        error: r.get("error"),
        deleted_at: r.get("deleted_at"),
    }
}

const COPIES: &str = "SELECT c.*, d.name AS destination_name FROM backup_copies c
    JOIN backup_destinations d ON d.id = c.destination_id";

/// Records a new backup as `queued`, with its passphrase sealed.
pub async fn create_backup(
    store: &Store,
    subject: &SubjectKey,
    trigger: &str,
    schedule_id: Option<i64>,
    passphrase: Option<&str>,
) -> Result<i64, StoreError> {
    let key = current_key(store).await?;
    let mut tx = store.pool().begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO backups (subject_kind, subject_id, subject_service, trig, schedule_id, status, encrypted, created_at)
         VALUES (?, ?, ?, ?, ?, 'queued', ?, ?) RETURNING id",
    )
    .bind(subject.kind)
    .bind(subject.id)
    .bind(&subject.service)
    .bind(trigger)
    .bind(schedule_id)
    .bind(passphrase.is_some())
    .bind(now())
    .fetch_one(&mut *tx)
    .await?;
    if let Some(p) = passphrase {
        crate::crypto::ensure_current(&mut tx, &key).await?;
        let (nonce, sealed) = key.seal(&backup_passphrase_aad(id), p.as_bytes());
        sqlx::query("UPDATE backups SET passphrase_nonce = ?, passphrase = ? WHERE id = ?")
            .bind(nonce)
            .bind(sealed)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id)
}

pub async fn backup_passphrase(store: &Store, id: i64) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT passphrase_nonce, passphrase FROM backups WHERE id = ?")
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "backup" })?;
    open_sealed(
        store,
        &backup_passphrase_aad(id),
        &row,
        "passphrase_nonce",
        "passphrase",
    )
    .await
}

pub async fn mark_backup_running(store: &Store, id: i64, engine: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE backups SET status = 'running', engine = ?, started_at = ? WHERE id = ?")
        .bind(engine)
        .bind(now())
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// How a backup ended.
#[derive(Debug, Clone, Default)]
pub struct BackupOutcome<'a> {
    pub status: &'a str,
    pub dump_bytes: Option<i64>,
    pub stored_bytes: Option<i64>,
    pub sha256: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub async fn finish_backup(
    store: &Store,
    id: i64,
    outcome: &BackupOutcome<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE backups SET status = ?, dump_bytes = ?, stored_bytes = ?, sha256 = ?, error = ?, finished_at = ?
         WHERE id = ?",
    )
    .bind(outcome.status)
    .bind(outcome.dump_bytes)
    .bind(outcome.stored_bytes)
    .bind(outcome.sha256)
    .bind(outcome.error)
    .bind(now())
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// One destination's result.
#[derive(Debug, Clone)]
pub struct NewCopy<'a> {
    pub destination_id: i64,
    pub key: &'a str,
    pub location: &'a str,
    pub size: i64,
    pub duration_ms: i64,
    pub sha256: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub async fn add_copy(store: &Store, backup_id: i64, copy: &NewCopy<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO backup_copies (backup_id, destination_id, key, location, size, duration_ms, sha256, error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(backup_id)
    .bind(copy.destination_id)
    .bind(copy.key)
    .bind(copy.location)
    .bind(copy.size)
    .bind(copy.duration_ms)
    .bind(copy.sha256)
    .bind(copy.error)
    .execute(store.pool())
    .await?;
    Ok(())
}

pub async fn get_backup(store: &Store, id: i64) -> Result<BackupRow, StoreError> {
    let row = sqlx::query("SELECT * FROM backups WHERE id = ?")
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "backup" })?;
    let mut backup = backup_from(&row)?;
    backup.copies = sqlx::query(&format!("{COPIES} WHERE c.backup_id = ? ORDER BY c.id"))
        .bind(id)
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(copy_from)
        .collect();
    Ok(backup)
}

/// A subject's backups, newest first, with their copies.
pub async fn list_backups(
    store: &Store,
    subject: Option<&SubjectKey>,
    limit: i64,
) -> Result<Vec<BackupRow>, StoreError> {
    let rows = match subject {
        Some(s) => {
            sqlx::query(
                "SELECT * FROM backups WHERE subject_kind = ? AND subject_id = ? AND subject_service = ?
                 ORDER BY id DESC LIMIT ?",
            )
            .bind(s.kind)
            .bind(s.id)
            .bind(&s.service)
            .bind(limit)
            .fetch_all(store.pool())
            .await?
        }
        None => {
            sqlx::query("SELECT * FROM backups ORDER BY id DESC LIMIT ?")
                .bind(limit)
                .fetch_all(store.pool())
                .await?
        }
    };
    let mut out: Vec<BackupRow> = rows.iter().map(backup_from).collect::<Result<_, _>>()?;
    for b in &mut out {
        b.copies = sqlx::query(&format!("{COPIES} WHERE c.backup_id = ? ORDER BY c.id"))
            .bind(b.id)
            .fetch_all(store.pool())
            .await?
            .iter()
            .map(copy_from)
            .collect();
    }
    Ok(out)
}

/// Backups left `queued` or `running` by a berth that stopped: marked
/// `interrupted` (the job runner's cleanup of a backup job does this for
/// its own; this catches rows whose job never started).
pub async fn mark_backup_interrupted(store: &Store, id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE backups SET status = 'interrupted', finished_at = ?,
             error = 'interrupted: berth stopped while the backup ran; nothing it wrote was kept'
         WHERE id = ? AND status IN ('queued', 'running')",
    )
    .bind(now())
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The copies retention weighs for one subject at one destination: those
/// still there, with whether their backup is good.
#[derive(Debug, Clone)]
pub struct RetainedCopy {
    pub copy_id: i64,
    pub backup_id: i64,
    pub key: String,
    pub created_at: i64,
    pub size: i64,
    pub good: bool,
}

pub async fn live_copies(
    store: &Store,
    destination_id: i64,
    subject: &SubjectKey,
) -> Result<Vec<RetainedCopy>, StoreError> {
    let rows = sqlx::query(
        "SELECT c.id AS copy_id, c.backup_id, c.key, b.created_at, COALESCE(c.size, 0) AS size,
             (b.status IN ('succeeded', 'partial') AND c.error IS NULL) AS good
         FROM backup_copies c JOIN backups b ON b.id = c.backup_id
         WHERE c.destination_id = ? AND c.deleted_at IS NULL AND c.error IS NULL
           AND b.subject_kind = ? AND b.subject_id = ? AND b.subject_service = ?
           AND b.trig != 'safety'",
    )
    .bind(destination_id)
    .bind(subject.kind)
    .bind(subject.id)
    .bind(&subject.service)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| RetainedCopy {
            copy_id: r.get("copy_id"),
            backup_id: r.get("backup_id"),
            key: r.get("key"),
            created_at: r.get("created_at"),
            size: r.get("size"),
            good: r.get("good"),
        })
        .collect())
}

pub async fn mark_copy_deleted(store: &Store, copy_id: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE backup_copies SET deleted_at = ? WHERE id = ?")
        .bind(now())
        .bind(copy_id)
        .execute(store.pool())
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- restores

pub async fn create_restore(store: &Store, backup_id: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO backup_restores (backup_id, status, started_at) VALUES (?, 'running', ?) RETURNING id",
    )
    .bind(backup_id)
    .bind(now())
    .fetch_one(store.pool())
    .await?)
}

pub async fn finish_restore(
    store: &Store,
    id: i64,
    safety_backup_id: Option<i64>,
    status: &str,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE backup_restores SET safety_backup_id = ?, status = ?, error = ?, finished_at = ? WHERE id = ?",
    )
    .bind(safety_backup_id)
    .bind(status)
    .bind(error)
    .bind(now())
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A restore's row.
#[derive(Debug, Clone)]
pub struct RestoreRow {
    pub id: i64,
    pub backup_id: i64,
    pub safety_backup_id: Option<i64>,
    pub status: String,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

pub async fn get_restore(store: &Store, id: i64) -> Result<RestoreRow, StoreError> {
    let r = sqlx::query("SELECT * FROM backup_restores WHERE id = ?")
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "restore" })?;
    Ok(RestoreRow {
        id: r.get("id"),
        backup_id: r.get("backup_id"),
        safety_backup_id: r.get("safety_backup_id"),
        status: r.get("status"),
        error: r.get("error"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
    })
}
