//! Browser sessions. The cookie holds a random token; the table holds its hash.

use berth_core::{NewSession, SessionUser, UserId};
use sqlx::Row;

use crate::{Store, StoreError, now, random_token, sha256_hex};

/// A session ends this long after login, however busy it is.
pub const LIFETIME_SECS: i64 = 7 * 24 * 3600;

/// A session unused this long ends before its lifetime: a browser left logged
/// in overnight is not a way in the next day.
pub const IDLE_SECS: i64 = 12 * 3600;

/// How often a session's last use is written down: a page view must not be a
/// write, and a minute is nothing next to `IDLE_SECS`.
pub const LAST_SEEN_EVERY_SECS: i64 = 60;

pub async fn create(store: &Store, user_id: UserId) -> Result<NewSession, StoreError> {
    let token = random_token(32);
    let csrf_token = random_token(32);
    let created = now();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at, last_seen_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(sha256_hex(&token))
    .bind(user_id.get())
    .bind(&csrf_token)
    .bind(created)
    .bind(created + LIFETIME_SECS)
    .bind(created)
    .execute(store.pool())
    .await?;
    Ok(NewSession { token, csrf_token })
}

/// The session's user while it lasts (neither past its lifetime nor idle),
/// recording its use at most once every `LAST_SEEN_EVERY_SECS`.
pub async fn find_user(store: &Store, token: &str) -> Result<Option<SessionUser>, StoreError> {
    let now = now();
    let hash = sha256_hex(token);
    let row = sqlx::query(
        "SELECT s.user_id, u.username, s.csrf_token, s.last_seen_at
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ? AND s.expires_at > ? AND s.last_seen_at > ?",
    )
    .bind(&hash)
    .bind(now)
    .bind(now - IDLE_SECS)
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let last_seen: i64 = row.get("last_seen_at");
    if now - last_seen >= LAST_SEEN_EVERY_SECS {
        sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?")
            .bind(now)
            .bind(&hash)
            .execute(store.pool())
            .await?;
    }
    Ok(Some(SessionUser {
        user_id: UserId::new(row.get("user_id")),
        username: row.get("username"),
        csrf_token: row.get("csrf_token"),
    }))
}

/// When the session was last seen in use (as written down, so up to
/// `LAST_SEEN_EVERY_SECS` behind), `None` for no such session.
pub async fn last_seen(store: &Store, token: &str) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT last_seen_at FROM sessions WHERE token_hash = ?")
            .bind(sha256_hex(token))
            .fetch_optional(store.pool())
            .await?,
    )
}

pub async fn delete(store: &Store, token: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
        .bind(sha256_hex(token))
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Removes the sessions past their lifetime or idle too long.
pub async fn delete_expired(store: &Store) -> Result<u64, StoreError> {
    let now = now();
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?")
        .bind(now)
        .bind(now - IDLE_SECS)
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}
