-- Deployments (issue 4): every deploy of an app is a numbered row with its
-- source, what triggered it, its outcome and its whole log, so progress can
-- be streamed while it runs and read afterwards.

CREATE TABLE deployments (
    id            INTEGER PRIMARY KEY,
    app_id        INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    -- 1, 2, 3… per app; also the `berth.deployment` label and the suffix of
    -- the container name. 0 is the container made before deployments existed.
    number        INTEGER NOT NULL,
    -- queued, running, succeeded, failed, cancelled
    status        TEXT NOT NULL,
    -- who or what asked: create, start, redeploy, rollback, webhook, api, reconcile
    trigger       TEXT NOT NULL,
    -- image reference deployed (pulled, or built and tagged by berth)
    image         TEXT,
    -- the image's ID (sha256:…) once known: what rollback and cleanup go by
    image_id      TEXT,
    -- the git commit built, for git sources
    commit_sha    TEXT,
    -- set for rollbacks: the deployment whose image is redeployed
    rollback_of   INTEGER,
    container_id  TEXT,
    -- why it failed or was cancelled
    reason        TEXT,
    -- berth built `image` and may remove it once no kept deployment uses it
    built         INTEGER NOT NULL DEFAULT 0,
    -- the image was removed by cleanup: this deployment can no longer be rolled back to
    pruned        INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    UNIQUE (app_id, number)
);
CREATE INDEX deployments_status ON deployments (status);

-- The log of a deployment, one row per line, so a live view reads what is new.
CREATE TABLE deployment_logs (
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    line          TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);

-- How an app is deployed. One row per app, created with defaults on first use.
CREATE TABLE deploy_settings (
    app_id            INTEGER PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    -- 'image' (apps.image, pulled when missing) or 'git' (cloned and built)
    source            TEXT NOT NULL DEFAULT 'image',
    git_url           TEXT,
    git_branch        TEXT,
    git_subdir        TEXT,
    dockerfile        TEXT,
    -- health check: an HTTP path answering `health_status`; else the image's
    -- HEALTHCHECK; else "still running after health_start_secs"
    health_path       TEXT,
    health_status     INTEGER NOT NULL DEFAULT 200,
    health_interval_ms INTEGER NOT NULL DEFAULT 1000,
    health_timeout_ms INTEGER NOT NULL DEFAULT 2000,
    health_retries    INTEGER NOT NULL DEFAULT 30,
    health_start_secs INTEGER NOT NULL DEFAULT 1,
    -- how long the old container keeps its in-flight requests after the switch
    drain_secs        INTEGER NOT NULL DEFAULT 2,
    -- SIGTERM, then SIGKILL after this many seconds
    stop_timeout_secs INTEGER NOT NULL DEFAULT 10,
    memory_mb         INTEGER,
    -- thousandths of a CPU (1500 = 1.5 CPUs)
    cpu_millis        INTEGER,
    restart_policy    TEXT NOT NULL DEFAULT 'unless-stopped',
    keep_images       INTEGER NOT NULL DEFAULT 5,
    -- the deploy webhook's secret (URL token and HMAC key), encrypted
    webhook_nonce     BLOB,
    webhook_secret    BLOB
);
