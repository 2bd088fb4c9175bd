-- Stacks (issue 10): the services of one compose file, installed together.
--
-- What the stack was installed from (the file, the inputs, the generated
-- values, the ports to publish) is one sealed JSON document: a pasted
-- compose file may hold passwords, and generated values must be made once
-- and never change. The columns beside it are what lists and the edge need.
CREATE TABLE stacks (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL,
    source_kind TEXT NOT NULL CHECK (source_kind IN ('template', 'compose', 'git')),
    template    TEXT,
    status      TEXT NOT NULL CHECK (status IN ('installing', 'updating', 'running', 'failed')),
    message     TEXT,
    dangerous_confirmed INTEGER NOT NULL DEFAULT 0 CHECK (dangerous_confirmed IN (0, 1)),
    state_nonce BLOB NOT NULL,
    state       BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

-- Where the edge sends a stack's hosts: the service's container address on
-- the stack network, set when the container starts (NULL while it is down).
CREATE TABLE stack_routes (
    id         INTEGER PRIMARY KEY,
    stack_id   INTEGER NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    service    TEXT NOT NULL,
    host       TEXT NOT NULL,
    path       TEXT NOT NULL DEFAULT '/',
    port       INTEGER NOT NULL,
    address    TEXT,
    UNIQUE (host, path)
);
