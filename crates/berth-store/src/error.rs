use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} already exists")]
    AlreadyExists { what: &'static str },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("the project still has apps, stacks or databases: delete them first")]
    ProjectNotEmpty,
    #[error("the database holds an invalid {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("cannot use the secret key {path}: {source}")]
    SecretKey {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret key {path} cannot be used: {detail}")]
    BadSecretKey { path: PathBuf, detail: String },
    #[error("a stored value ({what}) cannot be decrypted with the current secret key")]
    Decrypt { what: String },
    #[error("the secret key was rotated by another process and the new key file cannot be found")]
    KeyRotated,
    #[error("the variables were changed meanwhile (now version {current})")]
    VersionConflict { current: i64 },
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(
        "the database {path} was upgraded by a newer berth: it has schema version {found}, \
         and this berth ({ours}) knows versions up to {known}. Run {needed}; the data is untouched",
        ours = env!("CARGO_PKG_VERSION")
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
        needed: String,
    },
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Turns a unique-constraint violation into `AlreadyExists`, anything else stays a database error.
    pub(crate) fn on_unique(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::AlreadyExists { what }
            }
            _ => StoreError::Database(err),
        }
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
        StoreError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}
