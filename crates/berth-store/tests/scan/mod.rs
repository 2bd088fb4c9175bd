//! Scanning the database files for a secret in clear, with the control that
//! makes a clean scan mean something: the same scan finds a value that is
//! written in clear, so an empty, missing or renamed file cannot pass.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::path::Path;

use berth_store::Store;

/// What SQLite holds on disk for the store in `data_dir`: the database file
/// (which must exist) and its write-ahead log, where fresh pages live first.
pub fn database_bytes(data_dir: &Path) -> Vec<u8> {
    let db = data_dir.join("berth.db");
    let mut bytes =
        std::fs::read(&db).unwrap_or_else(|e| panic!("cannot read {}: {e}", db.display()));
    assert!(!bytes.is_empty(), "{} is empty", db.display());
    if let Ok(wal) = std::fs::read(data_dir.join("berth.db-wal")) {
        bytes.extend(wal);
    }
    bytes
}

pub fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that `secret` is in neither file, in clear nor in the reversible
/// encodings a careless "seal" would use (hex).
pub fn assert_sealed(data_dir: &Path, secret: &str) {
    let bytes = database_bytes(data_dir);
    assert!(
        !holds(&bytes, secret.as_bytes()),
        "the database files hold {secret:?} in clear"
    );
    assert!(
        !holds(&bytes, hex::encode(secret).as_bytes()),
        "the database files hold {secret:?} hex-encoded"
    );
}

/// The positive control: writes `value` in clear (a settings row no code
/// reads) and asserts the very scan of `assert_sealed` now finds it.
pub async fn assert_the_scan_finds_a_value_in_clear(store: &Store, data_dir: &Path, value: &str) {
    sqlx::query("INSERT INTO settings (key, value) VALUES ('test.positive-control', ?)")
        .bind(value)
        .execute(store.pool())
        .await
        .unwrap();
    assert!(
        holds(&database_bytes(data_dir), value.as_bytes()),
        "the scan did not find {value:?} written in clear: it would not find a secret either"
    );
}
