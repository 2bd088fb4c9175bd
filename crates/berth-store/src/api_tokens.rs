//! Bearer tokens for `/api/v1`. The token is printed once; only its hash is kept.

use berth_core::{ApiToken, ApiTokenId};
use sqlx::Row;

use crate::{Store, StoreError, now, random_token, sha256_hex};

/// Every token starts with this, so one found in a log or a repo is recognisable.
pub const PREFIX: &str = "berth_";

/// Returns the token itself: the only time it is ever visible.
pub async fn create(store: &Store, name: &str) -> Result<(ApiToken, String), StoreError> {
    let token = format!("{PREFIX}{}", random_token(32));
    let created_at = now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO api_tokens (name, token_hash, created_at) VALUES (?, ?, ?) RETURNING id",
    )
    .bind(name)
    .bind(sha256_hex(&token))
    .bind(created_at)
    .fetch_one(store.pool())
    .await
    .map_err(StoreError::on_unique("a token with that name"))?;
    Ok((
        ApiToken {
            id: ApiTokenId::new(id),
            name: name.to_owned(),
            created_at,
            last_used_at: None,
        },
        token,
    ))
}

/// Finds the token and records its use.
pub async fn authenticate(store: &Store, token: &str) -> Result<Option<ApiToken>, StoreError> {
    let row = sqlx::query(
        "UPDATE api_tokens SET last_used_at = ? WHERE token_hash = ?
         RETURNING id, name, created_at, last_used_at",
    )
    .bind(now())
    .bind(sha256_hex(token))
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|r| ApiToken {
        id: ApiTokenId::new(r.get("id")),
        name: r.get("name"),
        created_at: r.get("created_at"),
        last_used_at: r.get("last_used_at"),
    }))
}
