//! Encryption at rest for environment values (and anything else secret that
//! must be read back, unlike passwords and tokens, which are only hashed).
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce per value: random nonces
//! of that size never collide in practice, so no counter has to survive
//! crashes. Each value is bound to where it belongs (associated data such as
//! `env:app:7:DATABASE_URL`), so swapping ciphertexts between rows fails.
//!
//! The 32-byte key lives in `secret.key` in the data dir (hex, mode 0600),
//! created on first open. The database records the key's id (a hash of it,
//! in `settings.secret_key_id`), so a wrong key file is refused at open
//! instead of failing on the first value.
//!
//! Rotation writes the new key to `secret.key.new`, re-encrypts every value in
//! one transaction that also records the new id, then renames the file into
//! place. A crash between the commit and the rename is repaired at the next
//! open: the pending file whose id the database names wins.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sqlx::Row;

use crate::{SqlitePool, Store, StoreError};

pub const KEY_FILE: &str = "secret.key";
const PENDING_KEY_FILE: &str = "secret.key.new";
const NONCE_LEN: usize = 24;

/// One encryption key. `Debug` shows only its id.
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    id: String,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey").field("id", &self.id).finish()
    }
}

impl SecretKey {
    fn from_bytes(bytes: &[u8; 32]) -> SecretKey {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"berth secret key id\0");
        hasher.update(bytes);
        SecretKey {
            cipher: XChaCha20Poly1305::new(Key::from_slice(bytes)),
            id: hex::encode(&hasher.finalize()[..8]),
        }
    }

    fn random() -> ([u8; 32], SecretKey) {
        let bytes: [u8; 32] = rand::random();
        let key = SecretKey::from_bytes(&bytes);
        (bytes, key)
    }

    /// A short fingerprint, safe to show and store.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `plain`, bound to `aad`; returns (nonce, ciphertext).
    pub fn seal(&self, aad: &str, plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message that fits in memory");
        (nonce.to_vec(), sealed)
    }

    /// Decrypts what [`SecretKey::seal`] made for the same `aad`.
    pub fn open(&self, aad: &str, nonce: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        if nonce.len() != NONCE_LEN {
            return Err(StoreError::Decrypt {
                what: aad.to_owned(),
            });
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Decrypt {
                what: aad.to_owned(),
            })
    }
}

/// The store's current key; swapped in place by a rotation.
#[derive(Clone, Debug)]
pub(crate) struct Keyring(Arc<RwLock<Arc<SecretKey>>>);

impl Keyring {
    pub(crate) fn current(&self) -> Arc<SecretKey> {
        self.0.read().expect("keyring poisoned").clone()
    }

    fn replace(&self, key: SecretKey) {
        *self.0.write().expect("keyring poisoned") = Arc::new(key);
    }
}

fn key_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::SecretKey {
        path: path.to_owned(),
        source,
    }
}

fn read_key(path: &Path) -> Result<Option<SecretKey>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(key_error(path)(e)),
    };
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::BadSecretKey {
            path: path.to_owned(),
            detail: "it does not hold 64 hex digits".to_owned(),
        })?;
    Ok(Some(SecretKey::from_bytes(&bytes)))
}

/// Writes a key file readable by its owner only, durably.
fn write_key(path: &Path, bytes: &[u8; 32]) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(key_error(path))?;
    file.write_all(format!("{}\n", hex::encode(bytes)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(key_error(path))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(key_error(dir))
}

async fn recorded_id(pool: &SqlitePool) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'secret_key_id'")
            .fetch_optional(pool)
            .await?,
    )
}

/// Loads the key (creating it on first use) and checks it against the database.
pub(crate) async fn open_keyring(
    data_dir: &Path,
    pool: &SqlitePool,
) -> Result<Keyring, StoreError> {
    let path = data_dir.join(KEY_FILE);
    let pending = data_dir.join(PENDING_KEY_FILE);
    let recorded = recorded_id(pool).await?;
    if let Some(new) = read_key(&pending)? {
        if recorded.as_deref() == Some(new.id()) {
            // A rotation committed but was cut off before its rename.
            std::fs::rename(&pending, &path).map_err(key_error(&path))?;
        } else {
            std::fs::remove_file(&pending).map_err(key_error(&pending))?;
        }
        sync_dir(data_dir)?;
    }
    let key = match read_key(&path)? {
        Some(key) => key,
        None => {
            if let Some(id) = &recorded
                && sealed_values(pool).await? > 0
            {
                return Err(StoreError::BadSecretKey {
                    path,
                    detail: format!(
                        "it is missing, and the database holds values encrypted with key {id}: restore the file from a backup"
                    ),
                });
            }
            let (bytes, key) = SecretKey::random();
            write_key(&path, &bytes)?;
            sync_dir(data_dir)?;
            tracing::info!(key.id = %key.id(), path = %path.display(), "created the secret key");
            key
        }
    };
    match recorded {
        Some(id) if id != key.id() => {
            if sealed_values(pool).await? > 0 {
                return Err(StoreError::BadSecretKey {
                    path,
                    detail: format!(
                        "it holds key {}, but the database was encrypted with key {id}",
                        key.id()
                    ),
                });
            }
            record_id(pool, key.id()).await?;
        }
        Some(_) => {}
        None => record_id(pool, key.id()).await?,
    }
    Ok(Keyring(Arc::new(RwLock::new(Arc::new(key)))))
}

async fn record_id(pool: &SqlitePool, id: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT OR REPLACE INTO settings (key, value) VALUES ('secret_key_id', ?)")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

fn data_dir(store: &Store) -> PathBuf {
    store
        .path()
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The key to use now. When another process (`berth secrets rotate-key`)
/// rotated it, the database names a new id: the new key is read from the
/// data dir (the pending file too, for the moment between the rotation's
/// commit and its rename), so a running berth follows a rotation.
pub(crate) async fn current_key(store: &Store) -> Result<Arc<SecretKey>, StoreError> {
    let key = store.keyring().current();
    let recorded = recorded_id(store.pool()).await?;
    if recorded.as_deref().is_none_or(|id| id == key.id()) {
        return Ok(key);
    }
    let dir = data_dir(store);
    for file in [KEY_FILE, PENDING_KEY_FILE] {
        if let Some(new) = read_key(&dir.join(file))?
            && recorded.as_deref() == Some(new.id())
        {
            tracing::info!(key.id = %new.id(), "the secret key was rotated: using the new one");
            store.keyring().replace(new);
            return Ok(store.keyring().current());
        }
    }
    Err(StoreError::KeyRotated)
}

/// Fails when another process (`berth secrets rotate-key`) replaced the key
/// this one holds: writing with the old key would make values unreadable.
pub(crate) async fn ensure_current(
    conn: &mut sqlx::SqliteConnection,
    key: &SecretKey,
) -> Result<(), StoreError> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'secret_key_id'")
            .fetch_optional(&mut *conn)
            .await?;
    if id.as_deref() == Some(key.id()) {
        Ok(())
    } else {
        Err(StoreError::KeyRotated)
    }
}

/// Where a table keeps a sealed value: the nonce and ciphertext columns, the
/// other columns its associated data is made of and how it is made of them.
#[derive(Clone, Copy)]
struct SealedColumns {
    table: &'static str,
    aad_columns: &'static str,
    nonce: &'static str,
    data: &'static str,
    /// The associated data of one row, from its `aad_columns`.
    aad: fn(&sqlx::sqlite::SqliteRow) -> String,
}

const ENV_VALUES: SealedColumns = SealedColumns {
    table: "env_vars",
    aad_columns: "owner_kind, owner_id, key",
    nonce: "nonce",
    data: "ciphertext",
    aad: |row| crate::env::var_aad(row.get("owner_kind"), row.get("owner_id"), row.get("key")),
};
const ENV_SNAPSHOTS: SealedColumns = SealedColumns {
    table: "env_history",
    aad_columns: "owner_kind, owner_id, version",
    nonce: "nonce",
    data: "snapshot",
    aad: |row| {
        crate::env::snapshot_aad(
            row.get("owner_kind"),
            row.get("owner_id"),
            row.get("version"),
        )
    },
};
const WEBHOOK_SECRETS: SealedColumns = SealedColumns {
    table: "deploy_settings",
    aad_columns: "app_id",
    nonce: "webhook_nonce",
    data: "webhook_secret",
    aad: |row| crate::deployments::webhook_aad(row.get("app_id")),
};
const DEPLOY_KEYS: SealedColumns = SealedColumns {
    table: "deploy_settings",
    aad_columns: "app_id",
    nonce: "deploy_key_nonce",
    data: "deploy_key_private",
    aad: |row| crate::deployments::deploy_key_aad(row.get("app_id")),
};
const GIT_URLS: SealedColumns = SealedColumns {
    table: "deploy_settings",
    aad_columns: "app_id",
    nonce: "git_url_nonce",
    data: "git_url_sealed",
    aad: |row| crate::deployments::git_url_aad(row.get("app_id")),
};
const STACK_STATES: SealedColumns = SealedColumns {
    table: "stacks",
    aad_columns: "id",
    nonce: "state_nonce",
    data: "state",
    aad: |row| crate::stacks::state_aad(row.get("id")),
};

const DATABASE_CREDENTIALS: SealedColumns = SealedColumns {
    table: "databases",
    aad_columns: "id",
    nonce: "cred_nonce",
    data: "credentials",
    aad: |row| crate::databases::credentials_aad(row.get("id")),
};
const DESTINATION_SECRETS: SealedColumns = SealedColumns {
    table: "backup_destinations",
    aad_columns: "id",
    nonce: "secret_nonce",
    data: "secret",
    aad: |row| crate::backups::destination_secret_aad(row.get("id")),
};
const SCHEDULE_PASSPHRASES: SealedColumns = SealedColumns {
    table: "backup_schedules",
    aad_columns: "id",
    nonce: "passphrase_nonce",
    data: "passphrase",
    aad: |row| crate::backups::schedule_passphrase_aad(row.get("id")),
};
const BACKUP_PASSPHRASES: SealedColumns = SealedColumns {
    table: "backups",
    aad_columns: "id",
    nonce: "passphrase_nonce",
    data: "passphrase",
    aad: |row| crate::backups::backup_passphrase_aad(row.get("id")),
};

/// Every column pair that holds sealed values: a new one goes here, so a
/// lost or different key is noticed for it too and a rotation re-seals it.
/// The env values and snapshots come first: [`Rotation`] counts them.
const SEALED: [SealedColumns; 10] = [
    ENV_VALUES,
    ENV_SNAPSHOTS,
    WEBHOOK_SECRETS,
    DEPLOY_KEYS,
    GIT_URLS,
    STACK_STATES,
    DATABASE_CREDENTIALS,
    DESTINATION_SECRETS,
    SCHEDULE_PASSPHRASES,
    BACKUP_PASSPHRASES,
];

/// How many sealed values the database holds, in every sealed column.
async fn sealed_values(pool: &SqlitePool) -> Result<i64, StoreError> {
    let mut total = 0;
    for cols in &SEALED {
        // Table and column names are constants of this file, never input.
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE {} IS NOT NULL",
            cols.table, cols.data
        ))
        .fetch_one(pool)
        .await?;
        total += count;
    }
    Ok(total)
}

/// Opens every sealed value of one column pair with `old` and seals it again
/// with `new`, inside the rotation's transaction. Returns how many it re-sealed.
async fn reseal(
    conn: &mut sqlx::SqliteConnection,
    old: &SecretKey,
    new: &SecretKey,
    cols: &SealedColumns,
) -> Result<usize, StoreError> {
    let SealedColumns {
        table,
        aad_columns,
        nonce,
        data,
        aad,
    } = *cols;
    // Aliased: with an INTEGER PRIMARY KEY, SQLite names a selected `rowid` after that key.
    let rows = sqlx::query(&format!(
        "SELECT rowid AS row_id, {aad_columns}, {nonce}, {data} FROM {table} WHERE {data} IS NOT NULL"
    ))
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let aad = aad(row);
        let plain = old.open(&aad, row.get(nonce), row.get(data))?;
        let (new_nonce, sealed) = new.seal(&aad, &plain);
        sqlx::query(&format!(
            "UPDATE {table} SET {nonce} = ?, {data} = ? WHERE rowid = ?"
        ))
        .bind(new_nonce)
        .bind(sealed)
        .bind(row.get::<i64, _>("row_id"))
        .execute(&mut *conn)
        .await?;
    }
    Ok(rows.len())
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub old_id: String,
    pub new_id: String,
    pub values: usize,
    pub snapshots: usize,
}

/// Replaces the key and re-encrypts every value and history snapshot with it.
pub async fn rotate_key(store: &Store) -> Result<Rotation, StoreError> {
    let data_dir = data_dir(store);
    let path = data_dir.join(KEY_FILE);
    let pending = data_dir.join(PENDING_KEY_FILE);
    let old = current_key(store).await?;
    let (bytes, new) = SecretKey::random();
    // A pending file left by an interrupted rotation that never committed.
    if pending.exists() {
        std::fs::remove_file(&pending).map_err(key_error(&pending))?;
    }
    write_key(&pending, &bytes)?;
    sync_dir(&data_dir)?;

    let mut tx = store.pool().begin().await?;
    ensure_current(&mut tx, &old).await?;
    let mut resealed = [0; SEALED.len()];
    for (count, cols) in resealed.iter_mut().zip(&SEALED) {
        *count = reseal(&mut tx, &old, &new, cols).await?;
    }
    let [values, snapshots, ..] = resealed;
    sqlx::query("UPDATE settings SET value = ? WHERE key = 'secret_key_id'")
        .bind(new.id())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    std::fs::rename(&pending, &path).map_err(key_error(&path))?;
    sync_dir(&data_dir)?;
    let rotation = Rotation {
        old_id: old.id().to_owned(),
        new_id: new.id().to_owned(),
        values,
        snapshots,
    };
    store.keyring().replace(new);
    tracing::info!(key.old = %rotation.old_id, key.new = %rotation.new_id, values = rotation.values, "secret key rotated");
    Ok(rotation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_the_keyring_show_only_the_key_id_in_debug_output() {
        let bytes = [0xa7u8; 32];
        let key = SecretKey::from_bytes(&bytes);
        let id = key.id.clone();
        let keyring = Keyring(Arc::new(RwLock::new(Arc::new(key))));
        let shown = format!("{keyring:?} {keyring:#?}");
        assert!(shown.contains(&id), "{shown}");
        assert!(!shown.contains(&hex::encode(bytes)), "{shown}");
        assert!(
            !shown.contains("a7a7") && !shown.contains("167, 167"),
            "{shown}"
        );
    }
}
