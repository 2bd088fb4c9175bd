-- Environment variables and their history (issue 5).
--
-- An owner is `kind` + `id`: 'app' (apps.id), 'project' (projects.id, shared
-- variables referenced as ${project.NAME}), 'global' (id 0, ${global.NAME}),
-- and later 'stack'. There is no foreign key across kinds, so triggers below
-- remove an owner's variables with it.
--
-- Values are never stored in clear: `ciphertext` is XChaCha20-Poly1305 under
-- the key in the data dir (secret.key), with a random `nonce` per value and
-- the owner and key bound in as associated data, so a row cannot be moved to
-- another owner or key without failing to decrypt.

CREATE TABLE env_vars (
    owner_kind  TEXT    NOT NULL CHECK (owner_kind IN ('app', 'stack', 'project', 'global')),
    owner_id    INTEGER NOT NULL,
    key         TEXT    NOT NULL,
    -- The order the user gave, so the editor and the .env keep it.
    position    INTEGER NOT NULL,
    nonce       BLOB    NOT NULL,
    ciphertext  BLOB    NOT NULL,
    secret      INTEGER NOT NULL DEFAULT 0,
    build       INTEGER NOT NULL DEFAULT 0,
    runtime     INTEGER NOT NULL DEFAULT 1,
    literal     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner_kind, owner_id, key)
);

-- One row per owner that was ever saved: `version` goes up by one with every
-- save (optimistic concurrency: a save names the version it was based on),
-- `deployed_version` is the version the running container was created with.
CREATE TABLE env_sets (
    owner_kind        TEXT    NOT NULL,
    owner_id          INTEGER NOT NULL,
    version           INTEGER NOT NULL,
    deployed_version  INTEGER,
    PRIMARY KEY (owner_kind, owner_id)
);

-- Every save: who, when, which keys changed (names only, in clear, so the
-- list needs no key), and the whole set after the save, encrypted, for revert.
CREATE TABLE env_history (
    owner_kind  TEXT    NOT NULL,
    owner_id    INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    -- JSON: [{"key": "A", "change": "added" | "changed" | "removed"}]
    changes     TEXT    NOT NULL,
    note        TEXT,
    nonce       BLOB    NOT NULL,
    snapshot    BLOB    NOT NULL,
    PRIMARY KEY (owner_kind, owner_id, version)
);

CREATE TRIGGER apps_delete_env AFTER DELETE ON apps BEGIN
    DELETE FROM env_vars WHERE owner_kind = 'app' AND owner_id = OLD.id;
    DELETE FROM env_sets WHERE owner_kind = 'app' AND owner_id = OLD.id;
    DELETE FROM env_history WHERE owner_kind = 'app' AND owner_id = OLD.id;
END;

CREATE TRIGGER projects_delete_env AFTER DELETE ON projects BEGIN
    DELETE FROM env_vars WHERE owner_kind = 'project' AND owner_id = OLD.id;
    DELETE FROM env_sets WHERE owner_kind = 'project' AND owner_id = OLD.id;
    DELETE FROM env_history WHERE owner_kind = 'project' AND owner_id = OLD.id;
END;
