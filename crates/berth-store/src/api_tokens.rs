//! Bearer tokens for `/api/v1`. The token is printed once; only its hash is kept.

use berth_core::{ApiToken, ApiTokenId, TokenScope};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::{Store, StoreError, now, random_token, sha256_hex};

/// Every token starts with this, so one found in a log or a repo is recognisable.
pub const PREFIX: &str = "berth_";

const COLUMNS: &str = "id, name, created_at, last_used_at, expires_at, read_only";

fn from_row(r: &SqliteRow) -> ApiToken {
    ApiToken {
        id: ApiTokenId::new(r.get("id")),
        name: r.get("name"),
        created_at: r.get("created_at"),
        last_used_at: r.get("last_used_at"),
        expires_at: r.get("expires_at"),
        read_only: r.get("read_only"),
    }
}

/// Returns the token itself: the only time it is ever visible.
pub async fn create(
    store: &Store,
    name: &str,
    scope: TokenScope,
) -> Result<(ApiToken, String), StoreError> {
    let token = format!("{PREFIX}{}", random_token(32));
    let created_at = now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_tokens (name, token_hash, created_at, expires_at, read_only)
         VALUES (?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(name)
    .bind(sha256_hex(&token))
    .bind(created_at)
    .bind(scope.expires_at)
    .bind(scope.read_only)
    .fetch_one(store.pool())
    .await
    .map_err(StoreError::on_unique("a token with that name"))?;
    Ok((
        ApiToken {
            id: ApiTokenId::new(id),
            name: name.to_owned(),
            created_at,
            last_used_at: None,
            expires_at: scope.expires_at,
            read_only: scope.read_only,
        },
        token,
    ))
}

/// Finds the token while it lasts (an expired one is as good as none) and
/// records its use, at most once a minute: a script calling the API in a
/// loop must not turn every read into a write.
pub async fn authenticate(store: &Store, token: &str) -> Result<Option<ApiToken>, StoreError> {
    let now = now();
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM api_tokens
         WHERE token_hash = ? AND (expires_at IS NULL OR expires_at > ?)"
    ))
    .bind(sha256_hex(token))
    .bind(now)
    .fetch_optional(store.pool())
    .await?;
    let Some(mut found) = row.as_ref().map(from_row) else {
        return Ok(None);
    };
    if found
        .last_used_at
        .is_none_or(|at| now - at >= LAST_USE_EVERY_SECS)
    {
        sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
            .bind(now)
            .bind(found.id.get())
            .execute(store.pool())
            .await?;
        found.last_used_at = Some(now);
    }
    Ok(Some(found))
}

/// How often a token's last use is written down.
pub const LAST_USE_EVERY_SECS: i64 = 60;

/// Every token, by name (never the token itself: only its hash is kept).
pub async fn list(store: &Store) -> Result<Vec<ApiToken>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_tokens ORDER BY name"))
        .fetch_all(store.pool())
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Removes the token: requests with it get 401 from now on.
pub async fn revoke(store: &Store, name: &str) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM api_tokens WHERE name = ?")
        .bind(name)
        .execute(store.pool())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound { what: "token" });
    }
    Ok(())
}

/// Removes the token with this id (the dashboard's revoke button).
pub async fn revoke_id(store: &Store, id: ApiTokenId) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM api_tokens WHERE id = ?")
        .bind(id.get())
        .execute(store.pool())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound { what: "token" });
    }
    Ok(())
}
