use berth_core::{User, UserId, Username};
use sqlx::Row;

use crate::{Store, StoreError, now};

pub async fn count(store: &Store) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(store.pool())
        .await?)
}

pub async fn create(
    store: &Store,
    username: &Username,
    password_hash: &str,
) -> Result<User, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?) RETURNING id",
    )
    .bind(username.as_str())
    .bind(password_hash)
    .bind(now())
    .fetch_one(store.pool())
    .await
    .map_err(StoreError::on_unique("a user with that name"))?;
    Ok(User {
        id: UserId::new(id),
        username: username.as_str().to_owned(),
    })
}

/// The first admin, created only while no user exists (the setup page and
/// `berth admin create` race safely: the check and the insert are one statement).
pub async fn create_first(
    store: &Store,
    username: &Username,
    password_hash: &str,
) -> Result<Option<User>, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO users (username, password_hash, created_at)
         SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users) RETURNING id",
    )
    .bind(username.as_str())
    .bind(password_hash)
    .bind(now())
    .fetch_optional(store.pool())
    .await?;
    Ok(id.map(|id| User {
        id: UserId::new(id),
        username: username.as_str().to_owned(),
    }))
}

/// The user and their password hash, for checking a login.
pub async fn find_for_login(
    store: &Store,
    username: &str,
) -> Result<Option<(User, String)>, StoreError> {
    let row = sqlx::query("SELECT id, username, password_hash FROM users WHERE username = ?")
        .bind(username)
        .fetch_optional(store.pool())
        .await?;
    Ok(row.map(|r| {
        (
            User {
                id: UserId::new(r.get("id")),
                username: r.get("username"),
            },
            r.get("password_hash"),
        )
    }))
}

/// Sets a new password and ends every session of that user.
pub async fn reset_password(
    store: &Store,
    username: &Username,
    password_hash: &str,
) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    let id: Option<i64> =
        sqlx::query_scalar("UPDATE users SET password_hash = ? WHERE username = ? RETURNING id")
            .bind(password_hash)
            .bind(username.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    let id = id.ok_or(StoreError::NotFound { what: "user" })?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
