#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod api_tokens;
pub mod apps;
pub mod backups;
pub mod certificates;
pub mod crypto;
pub mod databases;
pub mod deployments;
pub mod domains;
pub mod env;
mod error;
pub mod jobs;
pub mod metrics;
pub mod migrate;
pub mod passwords;
pub mod projects;
pub mod sessions;
pub mod settings;
pub mod stacks;
pub mod users;
pub mod volumes;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use error::StoreError;

/// A handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    /// The key for values encrypted at rest (`secret.key` in the data dir).
    keyring: crypto::Keyring,
}

impl Store {
    /// Opens (creating if missing) `berth.db` in `data_dir` and runs the migrations.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        // The data dir holds the secret key, the database and deploy keys:
        // nobody but berth's user reads any of it.
        private(data_dir, 0o700).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("berth.db");
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        migrate::run(&pool, &path).await?;
        let keyring = crypto::open_keyring(data_dir, &pool).await?;
        // SQLite makes its files with the umask's modes (often 0644).
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let file = PathBuf::from(file);
            if file.exists() {
                private(&file, 0o600).map_err(|source| StoreError::DataDir {
                    path: file.clone(),
                    source,
                })?;
            }
        }
        let store = Store {
            pool,
            path,
            keyring,
        };
        deployments::seal_legacy_git_urls(&store).await?;
        Ok(store)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn keyring(&self) -> &crypto::Keyring {
        &self.keyring
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Seconds since the Unix epoch: the one clock for every stored time.
pub fn now() -> i64 {
    berth_core::unix_now()
}

/// A random token, hex encoded, for cookies and API tokens.
pub(crate) fn random_token(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

pub(crate) fn sha256_hex(value: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// Sets `path`'s mode (0700 for directories, 0600 for files).
pub fn private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
