use crate::{Store, StoreError, random_token};

/// The random id of this installation, created on first use.
pub async fn instance_id(store: &Store) -> Result<String, StoreError> {
    sqlx::query("INSERT OR IGNORE INTO settings (key, value) VALUES ('instance_id', ?)")
        .bind(random_token(8))
        .execute(store.pool())
        .await?;
    Ok(
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'instance_id'")
            .fetch_one(store.pool())
            .await?,
    )
}
