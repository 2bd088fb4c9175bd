-- Managed databases (issue 11): one service each, with a named volume and
-- generated credentials. The credentials (user, password, database) are one
-- sealed JSON document, like a stack's state; the columns beside it are
-- what lists, the runtime and the version guard need.
CREATE TABLE databases (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL,
    engine      TEXT NOT NULL CHECK (engine IN ('postgres', 'mysql', 'mariadb', 'redis', 'valkey', 'mongodb')),
    -- The major version the data is made with: never changed under existing data.
    version     TEXT NOT NULL,
    image       TEXT NOT NULL,
    -- A port published on 127.0.0.1 only; NULL: none (the default).
    host_port   INTEGER CHECK (host_port IS NULL OR (host_port BETWEEN 1 AND 65535)),
    desired     TEXT NOT NULL DEFAULT 'running' CHECK (desired IN ('running', 'stopped')),
    message     TEXT,
    cred_nonce  BLOB NOT NULL,
    credentials BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
