-- The first schema of berth. Times are unix seconds (UTC).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- A browser session. Only a hash of the cookie value is stored, so a copy of
-- the database cannot be used to log in.
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Bearer tokens for the JSON API, shown once at creation; only the hash is kept.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);

CREATE TABLE projects (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE apps (
    id             INTEGER PRIMARY KEY,
    project_id     INTEGER NOT NULL REFERENCES projects (id),
    name           TEXT NOT NULL,
    image          TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    -- JSON array of arguments, or NULL for the image's own command.
    command        TEXT,
    -- 'running' or 'stopped': what the user asked for, so a container that
    -- dies while it should run is told apart from one stopped on purpose.
    desired_state  TEXT NOT NULL DEFAULT 'running',
    status         TEXT NOT NULL,
    status_detail  TEXT,
    container_id   TEXT,
    host_port      INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX apps_container_id ON apps (container_id);

-- Key/value facts about this installation, such as `instance_id`: a random id
-- put on every Docker object berth creates, so that reconciling after a crash
-- only ever touches this installation's containers.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
