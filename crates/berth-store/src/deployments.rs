//! Deployments of an app: numbered rows with their log lines, and the app's
//! deploy settings (source, health check, limits, webhook secret, deploy key).

use berth_core::{
    AppId, DeployStrategy, DeploymentId,
    deployment::{
        DeploySettings, Deployment, DeploymentStatus, GitSource, HealthCheck, RestartPolicy, Source,
    },
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::crypto::current_key;
use crate::{Store, StoreError, now};

const SELECT: &str = "SELECT id, app_id, number, status, trigger, image, image_id, commit_sha,
    rollback_of, container_id, reason, built, pruned, created_at, started_at, finished_at
    FROM deployments";

fn from_row(r: &SqliteRow) -> Result<Deployment, StoreError> {
    let status: String = r.get("status");
    Ok(Deployment {
        id: DeploymentId::new(r.get("id")),
        app_id: AppId::new(r.get("app_id")),
        number: r.get("number"),
        status: DeploymentStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt("deployment status", &status))?,
        trigger: r.get("trigger"),
        image: r.get("image"),
        image_id: r.get("image_id"),
        commit_sha: r.get("commit_sha"),
        rollback_of: r.get("rollback_of"),
        container_id: r.get("container_id"),
        reason: r.get("reason"),
        built: r.get("built"),
        pruned: r.get("pruned"),
        created_at: r.get("created_at"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
    })
}

/// What a new deployment starts from.
#[derive(Debug, Clone, Default)]
pub struct NewDeployment {
    pub trigger: String,
    /// A fixed image (rollbacks, image sources); `None` builds from the app's git source.
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub rollback_of: Option<i64>,
}

/// Queues a deployment with the app's next number. Deployments of the app
/// still queued (not running) are cancelled as replaced by this one, so a
/// burst of pushes deploys only the newest.
pub async fn enqueue(
    store: &Store,
    app_id: AppId,
    new: &NewDeployment,
) -> Result<(Deployment, Vec<Deployment>), StoreError> {
    // IMMEDIATE: take the write lock before reading, so a concurrent writer
    // makes this wait (busy timeout) instead of failing the upgrade.
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
    let ts = now();
    let number: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM deployments WHERE app_id = ?")
            .bind(app_id.get())
            .fetch_one(&mut *tx)
            .await?;
    let replaced_rows = sqlx::query(&format!("{SELECT} WHERE app_id = ? AND status = 'queued'"))
        .bind(app_id.get())
        .fetch_all(&mut *tx)
        .await?;
    let replaced: Vec<Deployment> = replaced_rows
        .iter()
        .map(from_row)
        .collect::<Result<_, _>>()?;
    sqlx::query(
        "UPDATE deployments SET status = 'cancelled', reason = ?, finished_at = ?
         WHERE app_id = ? AND status = 'queued'",
    )
    .bind(format!("replaced by deployment #{number}"))
    .bind(ts)
    .bind(app_id.get())
    .execute(&mut *tx)
    .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO deployments (app_id, number, status, trigger, image, image_id, rollback_of, created_at)
         VALUES (?, ?, 'queued', ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(app_id.get())
    .bind(number)
    .bind(&new.trigger)
    .bind(&new.image)
    .bind(&new.image_id)
    .bind(new.rollback_of)
    .bind(ts)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((find(store, DeploymentId::new(id)).await?, replaced))
}

/// Records a container that predates deployments as deployment 0 (succeeded),
/// so it can be told apart, drained and rolled back to like any other.
pub async fn adopt_legacy(
    store: &Store,
    app_id: AppId,
    image: &str,
    container_id: &str,
) -> Result<Deployment, StoreError> {
    let ts = now();
    sqlx::query(
        "INSERT OR IGNORE INTO deployments (app_id, number, status, trigger, image, container_id, created_at, started_at, finished_at)
         VALUES (?, 0, 'succeeded', 'before deployments', ?, ?, ?, ?, ?)",
    )
    .bind(app_id.get())
    .bind(image)
    .bind(container_id)
    .bind(ts)
    .bind(ts)
    .bind(ts)
    .execute(store.pool())
    .await?;
    find_number(store, app_id, 0).await
}

pub async fn find(store: &Store, id: DeploymentId) -> Result<Deployment, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = ?"))
        .bind(id.get())
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "deployment" })?;
    from_row(&row)
}

pub async fn find_number(
    store: &Store,
    app_id: AppId,
    number: i64,
) -> Result<Deployment, StoreError> {
    let row = sqlx::query(&format!("{SELECT} WHERE app_id = ? AND number = ?"))
        .bind(app_id.get())
        .bind(number)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound { what: "deployment" })?;
    from_row(&row)
}

/// The app's deployments, newest first.
pub async fn list_for_app(
    store: &Store,
    app_id: AppId,
    limit: i64,
) -> Result<Vec<Deployment>, StoreError> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE app_id = ? ORDER BY number DESC LIMIT ?"
    ))
    .bind(app_id.get())
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every queued or running deployment of every app, oldest first.
pub async fn list_active(store: &Store) -> Result<Vec<Deployment>, StoreError> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE status IN ('queued', 'running') ORDER BY id"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn mark_running(store: &Store, id: DeploymentId) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'")
        .bind(now())
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Ends a deployment (succeeded, failed or cancelled) with an optional reason.
pub async fn finish(
    store: &Store,
    id: DeploymentId,
    status: DeploymentStatus,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET status = ?, reason = ?, finished_at = ? WHERE id = ?")
        .bind(status.as_str())
        .bind(reason)
        .bind(now())
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Cancels a deployment that is still queued; false if it already started or ended.
pub async fn cancel_queued(
    store: &Store,
    id: DeploymentId,
    reason: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE deployments SET status = 'cancelled', reason = ?, finished_at = ? WHERE id = ? AND status = 'queued'",
    )
    .bind(reason)
    .bind(now())
    .bind(id.get())
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_image(
    store: &Store,
    id: DeploymentId,
    image: &str,
    image_id: Option<&str>,
    built: bool,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET image = ?, image_id = ?, built = ? WHERE id = ?")
        .bind(image)
        .bind(image_id)
        .bind(built)
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

pub async fn set_commit(store: &Store, id: DeploymentId, commit: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET commit_sha = ? WHERE id = ?")
        .bind(commit)
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

pub async fn set_container(
    store: &Store,
    id: DeploymentId,
    container_id: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET container_id = ? WHERE id = ?")
        .bind(container_id)
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

pub async fn mark_pruned(store: &Store, id: DeploymentId) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET pruned = 1 WHERE id = ?")
        .bind(id.get())
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Appends lines to the deployment's log.
pub async fn append_log(
    store: &Store,
    id: DeploymentId,
    lines: &[String],
) -> Result<(), StoreError> {
    if lines.is_empty() {
        return Ok(());
    }
    // IMMEDIATE: take the write lock before reading, so a concurrent writer
    // makes this wait (busy timeout) instead of failing the upgrade.
    let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
    let mut seq: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(seq), 0) FROM deployment_logs WHERE deployment_id = ?",
    )
    .bind(id.get())
    .fetch_one(&mut *tx)
    .await?;
    let ts = now();
    for line in lines {
        seq += 1;
        sqlx::query(
            "INSERT INTO deployment_logs (deployment_id, seq, at, line) VALUES (?, ?, ?, ?)",
        )
        .bind(id.get())
        .bind(seq)
        .bind(ts)
        .bind(line)
        .execute(&mut *tx)
        .await?;
    }
    if seq > MAX_LOG_LINES {
        // A runaway build must not fill the disk: the oldest lines go, and
        // one line in their place says how many.
        let cut = seq - MAX_LOG_LINES;
        sqlx::query("DELETE FROM deployment_logs WHERE deployment_id = ? AND seq <= ?")
            .bind(id.get())
            .bind(cut)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO deployment_logs (deployment_id, seq, at, line) VALUES (?, ?, ?, ?)",
        )
        .bind(id.get())
        .bind(cut)
        .bind(ts)
        .bind(format!(
            "[{cut} earlier lines were cut: a deployment keeps its last {MAX_LOG_LINES} lines]"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// How many lines a deployment's log keeps (the newest).
pub const MAX_LOG_LINES: i64 = 10_000;

/// Log lines after `after_seq` (0 for all), as (seq, line), oldest first.
pub async fn log_since(
    store: &Store,
    id: DeploymentId,
    after_seq: i64,
) -> Result<Vec<(i64, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, line FROM deployment_logs WHERE deployment_id = ? AND seq > ? ORDER BY seq",
    )
    .bind(id.get())
    .bind(after_seq)
    .fetch_all(store.pool())
    .await?;
    Ok(rows.iter().map(|r| (r.get("seq"), r.get("line"))).collect())
}

pub async fn settings(store: &Store, app_id: AppId) -> Result<DeploySettings, StoreError> {
    let Some(r) = sqlx::query("SELECT * FROM deploy_settings WHERE app_id = ?")
        .bind(app_id.get())
        .fetch_optional(store.pool())
        .await?
    else {
        return Ok(DeploySettings::default());
    };
    let source: String = r.get("source");
    let text = |col: &str| -> String { r.get::<Option<String>, _>(col).unwrap_or_default() };
    let num = |col: &str| -> u32 { u32::try_from(r.get::<i64, _>(col)).unwrap_or(0) };
    let opt = |col: &str| -> Option<u32> {
        r.get::<Option<i64>, _>(col)
            .and_then(|n| u32::try_from(n).ok())
    };
    // A URL with credentials is sealed; the column then holds it masked.
    let url = match (
        r.get::<Option<Vec<u8>>, _>("git_url_nonce"),
        r.get::<Option<Vec<u8>>, _>("git_url_sealed"),
    ) {
        (Some(nonce), Some(sealed)) => {
            let key = current_key(store).await?;
            let plain = key.open(&git_url_aad(app_id.get()), &nonce, &sealed)?;
            String::from_utf8(plain).map_err(|e| StoreError::corrupt("git URL", e))?
        }
        _ => text("git_url"),
    };
    Ok(DeploySettings {
        source: if source == "git" {
            Source::Git(GitSource {
                url,
                branch: text("git_branch"),
                subdir: text("git_subdir"),
                dockerfile: text("dockerfile"),
            })
        } else {
            Source::Image
        },
        health: HealthCheck {
            path: r.get("health_path"),
            expected_status: u16::try_from(num("health_status")).unwrap_or(200),
            interval_ms: num("health_interval_ms"),
            timeout_ms: num("health_timeout_ms"),
            retries: num("health_retries"),
            start_secs: num("health_start_secs"),
        },
        drain_secs: num("drain_secs"),
        stop_timeout_secs: num("stop_timeout_secs"),
        memory_mb: opt("memory_mb"),
        cpu_millis: opt("cpu_millis"),
        restart_policy: {
            let policy: String = r.get("restart_policy");
            RestartPolicy::parse(&policy)
                .ok_or_else(|| StoreError::corrupt("restart policy", policy))?
        },
        keep_images: num("keep_images"),
        strategy: r
            .get::<Option<String>, _>("strategy")
            .map(|s| DeployStrategy::parse(&s).ok_or_else(|| StoreError::corrupt("strategy", s)))
            .transpose()?,
        hold_secs: num("hold_secs"),
        build_timeout_mins: num("build_timeout_mins"),
    })
}

pub async fn save_settings(
    store: &Store,
    app_id: AppId,
    s: &DeploySettings,
) -> Result<(), StoreError> {
    let (source, git) = match &s.source {
        Source::Image => ("image", GitSource::default()),
        Source::Git(g) => ("git", g.clone()),
    };
    let blank = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let (shown_url, nonce, sealed) = seal_git_url(store, app_id, &git.url).await?;
    sqlx::query(
        "INSERT INTO deploy_settings (app_id, source, git_url, git_url_nonce, git_url_sealed, git_branch, git_subdir, dockerfile,
            health_path, health_status, health_interval_ms, health_timeout_ms, health_retries, health_start_secs,
            drain_secs, stop_timeout_secs, memory_mb, cpu_millis, restart_policy, keep_images, strategy, hold_secs,
            build_timeout_mins)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (app_id) DO UPDATE SET source = excluded.source, git_url = excluded.git_url,
            git_url_nonce = excluded.git_url_nonce, git_url_sealed = excluded.git_url_sealed,
            git_branch = excluded.git_branch, git_subdir = excluded.git_subdir, dockerfile = excluded.dockerfile,
            health_path = excluded.health_path, health_status = excluded.health_status,
            health_interval_ms = excluded.health_interval_ms, health_timeout_ms = excluded.health_timeout_ms,
            health_retries = excluded.health_retries, health_start_secs = excluded.health_start_secs,
            drain_secs = excluded.drain_secs, stop_timeout_secs = excluded.stop_timeout_secs,
            memory_mb = excluded.memory_mb, cpu_millis = excluded.cpu_millis,
            restart_policy = excluded.restart_policy, keep_images = excluded.keep_images,
            strategy = excluded.strategy, hold_secs = excluded.hold_secs,
            build_timeout_mins = excluded.build_timeout_mins",
    )
    .bind(app_id.get())
    .bind(source)
    .bind(blank(&shown_url))
    .bind(nonce)
    .bind(sealed)
    .bind(blank(&git.branch))
    .bind(blank(&git.subdir))
    .bind(blank(&git.dockerfile))
    .bind(&s.health.path)
    .bind(i64::from(s.health.expected_status))
    .bind(i64::from(s.health.interval_ms))
    .bind(i64::from(s.health.timeout_ms))
    .bind(i64::from(s.health.retries))
    .bind(i64::from(s.health.start_secs))
    .bind(i64::from(s.drain_secs))
    .bind(i64::from(s.stop_timeout_secs))
    .bind(s.memory_mb.map(i64::from))
    .bind(s.cpu_millis.map(i64::from))
    .bind(s.restart_policy.as_str())
    .bind(i64::from(s.keep_images))
    .bind(s.strategy.map(DeployStrategy::as_str))
    .bind(i64::from(s.hold_secs))
    .bind(i64::from(s.build_timeout_mins))
    .execute(store.pool())
    .await?;
    Ok(())
}

pub(crate) fn git_url_aad(app_id: i64) -> String {
    format!("git-url:app:{app_id}")
}

/// What a git URL is stored as: the URL to keep in clear (masked when it
/// holds credentials) and, only then, the whole URL sealed (nonce, ciphertext).
async fn seal_git_url(
    store: &Store,
    app_id: AppId,
    url: &str,
) -> Result<(String, Option<Vec<u8>>, Option<Vec<u8>>), StoreError> {
    let shown = berth_core::redact_url_credentials(url);
    if shown == url {
        return Ok((url.to_owned(), None, None));
    }
    let key = current_key(store).await?;
    let (nonce, sealed) = key.seal(&git_url_aad(app_id.get()), url.as_bytes());
    Ok((shown.into_owned(), Some(nonce), Some(sealed)))
}

/// Seals git URLs a berth before sealing stored in clear (at open, once):
/// the rows are rewritten, and the file is vacuumed and its log truncated
/// so the old pages with the token in them do not linger on disk.
pub(crate) async fn seal_legacy_git_urls(store: &Store) -> Result<usize, StoreError> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT app_id, git_url FROM deploy_settings
         WHERE git_url_sealed IS NULL AND git_url LIKE '%://%@%'",
    )
    .fetch_all(store.pool())
    .await?;
    let mut sealed_any = 0;
    for (app_id, url) in rows {
        let (shown, nonce, sealed) = seal_git_url(store, AppId::new(app_id), &url).await?;
        if sealed.is_none() {
            continue;
        }
        sqlx::query(
            "UPDATE deploy_settings SET git_url = ?, git_url_nonce = ?, git_url_sealed = ?
             WHERE app_id = ? AND git_url_sealed IS NULL",
        )
        .bind(shown)
        .bind(nonce)
        .bind(sealed)
        .bind(app_id)
        .execute(store.pool())
        .await?;
        sealed_any += 1;
    }
    if sealed_any > 0 {
        sqlx::query("VACUUM").execute(store.pool()).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.pool())
            .await?;
        tracing::info!(
            count = sealed_any,
            "sealed git URLs that held credentials in clear"
        );
    }
    Ok(sealed_any)
}

pub(crate) fn webhook_aad(app_id: i64) -> String {
    format!("webhook:app:{app_id}")
}

/// The app's webhook secret, creating one on first use.
pub async fn webhook_secret(store: &Store, app_id: AppId) -> Result<String, StoreError> {
    let key = current_key(store).await?;
    let row =
        sqlx::query("SELECT webhook_nonce, webhook_secret FROM deploy_settings WHERE app_id = ?")
            .bind(app_id.get())
            .fetch_optional(store.pool())
            .await?;
    if let Some(r) = row {
        let nonce: Option<Vec<u8>> = r.get("webhook_nonce");
        let sealed: Option<Vec<u8>> = r.get("webhook_secret");
        if let (Some(nonce), Some(sealed)) = (nonce, sealed) {
            let plain = key.open(&webhook_aad(app_id.get()), &nonce, &sealed)?;
            return String::from_utf8(plain).map_err(|e| StoreError::corrupt("webhook secret", e));
        }
    }
    regenerate_webhook_secret(store, app_id).await
}

/// Replaces the app's webhook secret (the old URL stops working).
pub async fn regenerate_webhook_secret(store: &Store, app_id: AppId) -> Result<String, StoreError> {
    let key = current_key(store).await?;
    let secret = crate::random_token(24);
    let (nonce, sealed) = key.seal(&webhook_aad(app_id.get()), secret.as_bytes());
    sqlx::query(
        "INSERT INTO deploy_settings (app_id, webhook_nonce, webhook_secret) VALUES (?, ?, ?)
         ON CONFLICT (app_id) DO UPDATE SET webhook_nonce = excluded.webhook_nonce, webhook_secret = excluded.webhook_secret",
    )
    .bind(app_id.get())
    .bind(nonce)
    .bind(sealed)
    .execute(store.pool())
    .await?;
    Ok(secret)
}

pub(crate) fn deploy_key_aad(app_id: i64) -> String {
    format!("deploy-key:app:{app_id}")
}

/// The public half of the app's SSH deploy key (OpenSSH format), if it has one.
pub async fn deploy_key_public(store: &Store, app_id: AppId) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT deploy_key_public FROM deploy_settings WHERE app_id = ? AND deploy_key_private IS NOT NULL",
    )
    .bind(app_id.get())
    .fetch_optional(store.pool())
    .await?
    .flatten())
}

/// The private half of the app's SSH deploy key (OpenSSH PEM), decrypted;
/// for writing to a 0600 file for `ssh -i` only, never to show.
pub async fn deploy_key_private(
    store: &Store,
    app_id: AppId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let key = current_key(store).await?;
    let row = sqlx::query(
        "SELECT deploy_key_nonce, deploy_key_private FROM deploy_settings WHERE app_id = ?",
    )
    .bind(app_id.get())
    .fetch_optional(store.pool())
    .await?;
    let Some(r) = row else { return Ok(None) };
    let nonce: Option<Vec<u8>> = r.get("deploy_key_nonce");
    let sealed: Option<Vec<u8>> = r.get("deploy_key_private");
    match (nonce, sealed) {
        (Some(nonce), Some(sealed)) => Ok(Some(key.open(
            &deploy_key_aad(app_id.get()),
            &nonce,
            &sealed,
        )?)),
        _ => Ok(None),
    }
}

/// Stores a new deploy key unless the app already has one; returns the
/// public key in place (so two first uses at once agree on one key).
pub async fn save_deploy_key(
    store: &Store,
    app_id: AppId,
    public: &str,
    private: &[u8],
) -> Result<String, StoreError> {
    let key = current_key(store).await?;
    let (nonce, sealed) = key.seal(&deploy_key_aad(app_id.get()), private);
    sqlx::query(
        "INSERT INTO deploy_settings (app_id, deploy_key_public, deploy_key_nonce, deploy_key_private) VALUES (?, ?, ?, ?)
         ON CONFLICT (app_id) DO UPDATE SET deploy_key_public = excluded.deploy_key_public,
            deploy_key_nonce = excluded.deploy_key_nonce, deploy_key_private = excluded.deploy_key_private
         WHERE deploy_settings.deploy_key_private IS NULL",
    )
    .bind(app_id.get())
    .bind(public)
    .bind(nonce)
    .bind(sealed)
    .execute(store.pool())
    .await?;
    deploy_key_public(store, app_id)
        .await?
        .ok_or(StoreError::NotFound { what: "deploy key" })
}

/// How long a webhook delivery id is remembered: a provider's own retries
/// and an admin's "redeliver" come well within it.
pub const WEBHOOK_DELIVERY_TTL_SECS: i64 = 30 * 24 * 3600;

/// Records that the app's webhook delivery `delivery` was handled; false
/// when it already was (and is not yet forgotten). Expired ids go first.
pub async fn record_webhook_delivery(
    store: &Store,
    app_id: AppId,
    delivery: &str,
) -> Result<bool, StoreError> {
    let ts = now();
    sqlx::query("DELETE FROM webhook_deliveries WHERE expires_at <= ?")
        .bind(ts)
        .execute(store.pool())
        .await?;
    let done = sqlx::query(
        "INSERT OR IGNORE INTO webhook_deliveries (app_id, delivery, expires_at) VALUES (?, ?, ?)",
    )
    .bind(app_id.get())
    // Ids are UUIDs; a longer header is cut rather than stored whole.
    .bind(delivery.chars().take(200).collect::<String>())
    .bind(ts + WEBHOOK_DELIVERY_TTL_SECS)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}
