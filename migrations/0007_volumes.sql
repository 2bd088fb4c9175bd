-- Volumes (issue 9): an app's data lives in named Docker volumes (or, for
-- bind mounts, in host directories) that outlive its containers.
--
-- A row says "this app mounts that volume there". Deleting an app deletes
-- its rows, never the Docker volumes: a volume without a row is orphaned,
-- listed on the Storage page, and removed only on an explicit, confirmed
-- request (or attached to another app of the same project).
CREATE TABLE app_volumes (
    id         INTEGER PRIMARY KEY,
    app_id     INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    -- the volume's name in the app (`data`); the Docker volume is usually
    -- `berth_<project>_<app>_<name>`, but an attached orphan keeps its own
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('volume', 'bind')),
    -- the Docker volume's name, or the host path of a bind mount
    source     TEXT NOT NULL,
    -- where it is mounted in the container
    target     TEXT NOT NULL,
    read_only  INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1)),
    -- made by berth for a path the image declares with VOLUME
    from_image INTEGER NOT NULL DEFAULT 0 CHECK (from_image IN (0, 1)),
    created_at INTEGER NOT NULL,
    UNIQUE (app_id, name),
    UNIQUE (app_id, target)
);
CREATE INDEX app_volumes_source ON app_volumes (source);

-- The admin confirmed bind mounts outside the volumes root (or of system
-- paths, the data dir, the Docker socket) for this app; the app page says so.
ALTER TABLE apps ADD COLUMN dangerous_mounts INTEGER NOT NULL DEFAULT 0 CHECK (dangerous_mounts IN (0, 1));

-- 'rolling', 'recreate', or NULL: berth chooses (recreate when the app has volumes).
ALTER TABLE deploy_settings ADD COLUMN strategy TEXT CHECK (strategy IN ('rolling', 'recreate'));
-- How long the edge holds an app's requests during a recreate switch.
ALTER TABLE deploy_settings ADD COLUMN hold_secs INTEGER NOT NULL DEFAULT 10;
