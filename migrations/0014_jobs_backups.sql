-- The durable job runner (berth-jobs) and database backups (issue 11).
--
-- A job is a row: what kind it is, its JSON payload, when it may run, how
-- often it was tried. One that was `running` when berth stopped is marked
-- `interrupted` at the next start and handed to its kind's cleanup.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    -- Two jobs with the same key are never queued or running at once.
    dedup_key    TEXT,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'interrupted', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    run_at       INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    error        TEXT,
    -- Set once when berth found the job running at start (it died under it).
    interrupted_at INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX jobs_ready ON jobs (status, run_at);
CREATE UNIQUE INDEX jobs_dedup ON jobs (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('queued', 'running');

-- Where backups go. `kind` local: `path` (NULL: `<data dir>/backups`).
-- `kind` s3: the connection; the secret key is sealed (AAD names the row).
-- Retention per destination: NULL is no limit.
CREATE TABLE backup_destinations (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL CHECK (kind IN ('local', 's3')),
    path          TEXT,
    endpoint      TEXT,
    region        TEXT,
    bucket        TEXT,
    prefix        TEXT NOT NULL DEFAULT '',
    path_style    INTEGER NOT NULL DEFAULT 1 CHECK (path_style IN (0, 1)),
    access_key_id TEXT,
    secret_nonce  BLOB,
    secret        BLOB,
    keep_last     INTEGER,
    max_age_days  INTEGER,
    max_total_bytes INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- What is backed up: (subject_kind, subject_id, subject_service).
-- `stack_service`: a stack's id and the service's name; `database`: a managed
-- database's id and '' (managed databases come with migration 0013).
CREATE TABLE backup_schedules (
    id              INTEGER PRIMARY KEY,
    subject_kind    TEXT NOT NULL CHECK (subject_kind IN ('stack_service', 'database')),
    subject_id      INTEGER NOT NULL,
    subject_service TEXT NOT NULL DEFAULT '',
    cron            TEXT NOT NULL,
    time_zone       TEXT NOT NULL,
    -- JSON array of destination ids.
    destinations    TEXT NOT NULL,
    passphrase_nonce BLOB,
    passphrase      BLOB,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    last_run_at     INTEGER,
    next_run_at     INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX backup_schedules_subject ON backup_schedules (subject_kind, subject_id, subject_service);

CREATE TABLE backups (
    id              INTEGER PRIMARY KEY,
    subject_kind    TEXT NOT NULL CHECK (subject_kind IN ('stack_service', 'database')),
    subject_id      INTEGER NOT NULL,
    subject_service TEXT NOT NULL DEFAULT '',
    -- 'manual', 'schedule', 'safety' (taken before a restore).
    trig            TEXT NOT NULL CHECK (trig IN ('manual', 'schedule', 'safety')),
    schedule_id     INTEGER REFERENCES backup_schedules (id) ON DELETE SET NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled', 'interrupted')),
    engine          TEXT,
    encrypted       INTEGER NOT NULL DEFAULT 0 CHECK (encrypted IN (0, 1)),
    started_at      INTEGER,
    finished_at     INTEGER,
    dump_bytes      INTEGER,
    stored_bytes    INTEGER,
    sha256          TEXT,
    error           TEXT,
    -- The encryption passphrase, sealed, so a restore can open the backup.
    passphrase_nonce BLOB,
    passphrase      BLOB,
    created_at      INTEGER NOT NULL
);
CREATE INDEX backups_subject ON backups (subject_kind, subject_id, subject_service, created_at);

-- One row per destination a backup was written to.
CREATE TABLE backup_copies (
    id             INTEGER PRIMARY KEY,
    backup_id      INTEGER NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    destination_id INTEGER NOT NULL REFERENCES backup_destinations (id),
    key            TEXT NOT NULL,
    location       TEXT,
    size           INTEGER,
    duration_ms    INTEGER,
    sha256         TEXT,
    error          TEXT,
    deleted_at     INTEGER,
    UNIQUE (backup_id, destination_id)
);

-- Restores, for the history and the API.
CREATE TABLE backup_restores (
    id          INTEGER PRIMARY KEY,
    backup_id   INTEGER NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    safety_backup_id INTEGER REFERENCES backups (id) ON DELETE SET NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'rolled_back')),
    error       TEXT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER
);
