-- TLS certificates of the edge and the ACME accounts that obtain them.
-- Private keys never live in the database: the rows point at files (0600)
-- under <data dir>/certs/. Times are unix seconds (UTC).

-- One ACME account per (directory, e-mail). `credentials_path` is a 0600
-- JSON file holding the account key (instant-acme's AccountCredentials).
CREATE TABLE acme_accounts (
    id               INTEGER PRIMARY KEY,
    directory_url    TEXT NOT NULL,
    email            TEXT NOT NULL,
    account_url      TEXT NOT NULL,
    credentials_path TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    UNIQUE (directory_url, email)
);

-- One certificate per domain it was obtained or uploaded for. A row whose
-- cert_path is NULL is an ACME certificate still being obtained (its first
-- attempt may have failed: last_error says why).
CREATE TABLE certificates (
    id              INTEGER PRIMARY KEY,
    domain          TEXT NOT NULL UNIQUE,
    -- 'acme' or 'uploaded'
    source          TEXT NOT NULL,
    -- JSON array of the DNS names the certificate covers.
    names           TEXT NOT NULL DEFAULT '[]',
    issuer          TEXT,
    serial          TEXT,
    not_before      INTEGER,
    not_after       INTEGER,
    cert_path       TEXT,
    key_path        TEXT,
    account_id      INTEGER REFERENCES acme_accounts (id) ON DELETE SET NULL,
    -- The CA's suggested renewal window (ACME renewal information, RFC 9773).
    ari_start       INTEGER,
    ari_end         INTEGER,
    last_attempt_at INTEGER,
    next_attempt_at INTEGER,
    -- Consecutive failed attempts, for the back-off.
    failures        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    rate_limited    INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
