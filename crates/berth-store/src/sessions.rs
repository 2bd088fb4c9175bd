//! Browser sessions. The cookie holds a random token; the table holds its hash.

use berth_core::{NewSession, SessionUser, UserId};
use sqlx::Row;

use crate::{Store, StoreError, now, random_token, sha256_hex};

pub const LIFETIME_SECS: i64 = 7 * 24 * 3600;

pub async fn create(store: &Store, user_id: UserId) -> Result<NewSession, StoreError> {
    let token = random_token(32);
    let csrf_token = random_token(32);
    let created = now();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(sha256_hex(&token))
    .bind(user_id.get())
    .bind(&csrf_token)
    .bind(created)
    .bind(created + LIFETIME_SECS)
    .execute(store.pool())
    .await?;
    Ok(NewSession { token, csrf_token })
}

pub async fn find_user(store: &Store, token: &str) -> Result<Option<SessionUser>, StoreError> {
    let row = sqlx::query(
        "SELECT s.user_id, u.username, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ? AND s.expires_at > ?",
    )
    .bind(sha256_hex(token))
    .bind(now())
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|r| SessionUser {
        user_id: UserId::new(r.get("user_id")),
        username: r.get("username"),
        csrf_token: r.get("csrf_token"),
    }))
}

pub async fn delete(store: &Store, token: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
        .bind(sha256_hex(token))
        .execute(store.pool())
        .await?;
    Ok(())
}

pub async fn delete_expired(store: &Store) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
        .bind(now())
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}
