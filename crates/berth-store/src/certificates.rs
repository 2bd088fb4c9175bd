//! TLS certificates of the edge, ACME accounts and the ACME settings.
//! Rows only point at key files; the keys themselves never enter SQLite.

use berth_core::certificate::{AcmeAccount, AcmeSettings, Certificate, Issued, Source};
use sqlx::Row;

use crate::{Store, StoreError, now};

const COLUMNS: &str = "id, domain, source, names, issuer, serial, not_before, not_after, \
     cert_path, key_path, account_id, ari_start, ari_end, last_attempt_at, next_attempt_at, \
     failures, last_error, rate_limited, created_at, updated_at";

fn from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Certificate, StoreError> {
    let names: String = r.get("names");
    let source: String = r.get("source");
    Ok(Certificate {
        id: r.get("id"),
        domain: r.get("domain"),
        source: Source::parse(&source)
            .ok_or_else(|| StoreError::corrupt("certificate source", &source))?,
        names: serde_json::from_str(&names)
            .map_err(|e| StoreError::corrupt("certificate names", e))?,
        issuer: r.get("issuer"),
        serial: r.get("serial"),
        not_before: r.get("not_before"),
        not_after: r.get("not_after"),
        cert_path: r.get("cert_path"),
        key_path: r.get("key_path"),
        account_id: r.get("account_id"),
        ari_start: r.get("ari_start"),
        ari_end: r.get("ari_end"),
        last_attempt_at: r.get("last_attempt_at"),
        next_attempt_at: r.get("next_attempt_at"),
        failures: r.get("failures"),
        last_error: r.get("last_error"),
        rate_limited: r.get::<i64, _>("rate_limited") != 0,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

pub async fn list(store: &Store) -> Result<Vec<Certificate>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM certificates ORDER BY domain"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn find(store: &Store, id: i64) -> Result<Certificate, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM certificates WHERE id = ?"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound {
            what: "certificate",
        })?;
    from_row(&row)
}

pub async fn find_by_domain(
    store: &Store,
    domain: &str,
) -> Result<Option<Certificate>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM certificates WHERE domain = ?"
    ))
    .bind(domain)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The row of an ACME certificate for `domain`, created (not yet obtained,
/// due at once) if there is none. An uploaded certificate for the domain is
/// left alone and returned as it is.
pub async fn ensure_acme(store: &Store, domain: &str) -> Result<Certificate, StoreError> {
    let at = now();
    sqlx::query(
        "INSERT OR IGNORE INTO certificates (domain, source, next_attempt_at, created_at, updated_at)
         VALUES (?, 'acme', ?, ?, ?)",
    )
    .bind(domain)
    .bind(at)
    .bind(at)
    .bind(at)
    .execute(store.pool())
    .await?;
    find_by_domain(store, domain)
        .await?
        .ok_or(StoreError::NotFound {
            what: "certificate",
        })
}

/// Records a certificate that now serves `domain` (obtained or uploaded),
/// replacing whatever the row said before and clearing the error state.
/// Returns the row and the file paths it pointed at before, for cleanup.
pub async fn record_issued(
    store: &Store,
    domain: &str,
    source: Source,
    issued: &Issued,
) -> Result<(Certificate, Vec<String>), StoreError> {
    let mut tx = store.pool().begin().await?;
    let old: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT cert_path, key_path FROM certificates WHERE domain = ?")
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?;
    let at = now();
    let names = serde_json::to_string(&issued.names).expect("strings serialize");
    let row = sqlx::query(&format!(
        "INSERT INTO certificates (domain, source, names, issuer, serial, not_before, not_after,
             cert_path, key_path, account_id, last_attempt_at, next_attempt_at, failures,
             last_error, rate_limited, ari_start, ari_end, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, 0, NULL, NULL, ?, ?)
         ON CONFLICT (domain) DO UPDATE SET
             source = excluded.source, names = excluded.names, issuer = excluded.issuer,
             serial = excluded.serial, not_before = excluded.not_before,
             not_after = excluded.not_after, cert_path = excluded.cert_path,
             key_path = excluded.key_path, account_id = excluded.account_id,
             last_attempt_at = excluded.last_attempt_at,
             next_attempt_at = excluded.next_attempt_at, failures = 0, last_error = NULL,
             rate_limited = 0, ari_start = NULL, ari_end = NULL, updated_at = excluded.updated_at
         RETURNING {COLUMNS}"
    ))
    .bind(domain)
    .bind(source.as_str())
    .bind(names)
    .bind(&issued.issuer)
    .bind(&issued.serial)
    .bind(issued.not_before)
    .bind(issued.not_after)
    .bind(&issued.cert_path)
    .bind(&issued.key_path)
    .bind(issued.account_id)
    .bind(at)
    .bind(issued.next_attempt_at)
    .bind(at)
    .bind(at)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let cert = from_row(&row)?;
    let stale = old
        .map(|(c, k)| [c, k].into_iter().flatten().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| Some(p) != cert.cert_path.as_ref() && Some(p) != cert.key_path.as_ref())
        .collect();
    Ok((cert, stale))
}

/// Records a failed attempt: the CA's (or network's) error, and when to try again.
pub async fn record_failure(
    store: &Store,
    id: i64,
    error: &str,
    rate_limited: bool,
    next_attempt_at: i64,
) -> Result<(), StoreError> {
    let at = now();
    sqlx::query(
        "UPDATE certificates SET last_attempt_at = ?, next_attempt_at = ?, failures = failures + 1,
             last_error = ?, rate_limited = ?, updated_at = ? WHERE id = ?",
    )
    .bind(at)
    .bind(next_attempt_at)
    .bind(error)
    .bind(rate_limited)
    .bind(at)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Stores the CA's renewal window and the renewal time picked from it.
pub async fn set_renewal_window(
    store: &Store,
    id: i64,
    start: i64,
    end: i64,
    next_attempt_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE certificates SET ari_start = ?, ari_end = ?, next_attempt_at = ?, updated_at = ?
         WHERE id = ?",
    )
    .bind(start)
    .bind(end)
    .bind(next_attempt_at)
    .bind(now())
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Makes the certificate due now (the "renew now" action).
pub async fn make_due(store: &Store, id: i64) -> Result<(), StoreError> {
    let done =
        sqlx::query("UPDATE certificates SET next_attempt_at = ?, updated_at = ? WHERE id = ?")
            .bind(now())
            .bind(now())
            .bind(id)
            .execute(store.pool())
            .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "certificate",
        });
    }
    Ok(())
}

/// Deletes the row and returns it (the caller removes its files).
pub async fn delete(store: &Store, id: i64) -> Result<Certificate, StoreError> {
    let row = sqlx::query(&format!(
        "DELETE FROM certificates WHERE id = ? RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound {
        what: "certificate",
    })?;
    from_row(&row)
}

pub async fn find_account(
    store: &Store,
    directory_url: &str,
    email: &str,
) -> Result<Option<AcmeAccount>, StoreError> {
    let row = sqlx::query(
        "SELECT id, directory_url, email, account_url, credentials_path FROM acme_accounts
         WHERE directory_url = ? AND email = ?",
    )
    .bind(directory_url)
    .bind(email)
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|r| AcmeAccount {
        id: r.get("id"),
        directory_url: r.get("directory_url"),
        email: r.get("email"),
        account_url: r.get("account_url"),
        credentials_path: r.get("credentials_path"),
    }))
}

pub async fn insert_account(
    store: &Store,
    directory_url: &str,
    email: &str,
    account_url: &str,
    credentials_path: &str,
) -> Result<AcmeAccount, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO acme_accounts (directory_url, email, account_url, credentials_path, created_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (directory_url, email) DO UPDATE SET account_url = excluded.account_url,
             credentials_path = excluded.credentials_path
         RETURNING id",
    )
    .bind(directory_url)
    .bind(email)
    .bind(account_url)
    .bind(credentials_path)
    .bind(now())
    .fetch_one(store.pool())
    .await?;
    Ok(AcmeAccount {
        id,
        directory_url: directory_url.to_owned(),
        email: email.to_owned(),
        account_url: account_url.to_owned(),
        credentials_path: credentials_path.to_owned(),
    })
}

const SETTING_KEYS: [&str; 4] = [
    "acme.email",
    "acme.directory_url",
    "acme.eab_key_id",
    "acme.challenge",
];

pub async fn acme_settings(store: &Store) -> Result<AcmeSettings, StoreError> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM settings WHERE key LIKE 'acme.%'")
            .fetch_all(store.pool())
            .await?;
    let mut settings = AcmeSettings::default();
    for (key, value) in rows {
        let slot = match key.as_str() {
            "acme.email" => &mut settings.email,
            "acme.directory_url" => &mut settings.directory_url,
            "acme.eab_key_id" => &mut settings.eab_key_id,
            "acme.challenge" => &mut settings.challenge,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(settings)
}

/// Replaces the ACME settings; `None` removes a setting.
pub async fn save_acme_settings(store: &Store, settings: &AcmeSettings) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    let values = [
        &settings.email,
        &settings.directory_url,
        &settings.eab_key_id,
        &settings.challenge,
    ];
    for (key, value) in SETTING_KEYS.iter().zip(values) {
        match value {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO settings (key, value) VALUES (?, ?)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM settings WHERE key = ?")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The hosts that want an ACME certificate: every domain with TLS mode
/// `acme` (wildcards excepted: HTTP-01 and TLS-ALPN-01 cannot prove them)
/// and the dashboard's own domain, lowercase, sorted, without duplicates.
pub async fn acme_hosts(store: &Store) -> Result<Vec<String>, StoreError> {
    let hosts: Vec<String> = sqlx::query_scalar(
        "SELECT host FROM domains WHERE tls_mode = 'acme' AND host NOT LIKE '*.%'
         UNION
         SELECT host FROM stack_routes WHERE acme = 1
         UNION
         SELECT value FROM settings WHERE key = 'dashboard_domain'
         ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await?;
    let mut hosts: Vec<String> = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
    hosts.dedup();
    Ok(hosts)
}
