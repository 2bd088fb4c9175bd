-- Deploy settings and webhooks (issue 13): sealed git URL credentials, a
-- per-app build timeout, and the webhook deliveries already handled.

-- A git URL with credentials in it (`https://user:token@host/…`) is sealed
-- like webhook secrets (associated data `git-url:app:<id>`); `git_url` then
-- keeps only the URL with its user info shown as `***`, so nothing that reads
-- the column in clear (a page, the API, a copy of the file) learns the token.
ALTER TABLE deploy_settings ADD COLUMN git_url_nonce BLOB;
ALTER TABLE deploy_settings ADD COLUMN git_url_sealed BLOB;

-- How long a clone and build of the app may take before they are stopped
-- (1 to 240 minutes; before this setting, 30 minutes for every app).
ALTER TABLE deploy_settings ADD COLUMN build_timeout_mins INTEGER NOT NULL DEFAULT 30;

-- Webhook delivery ids already handled, so a replayed signed delivery
-- deploys nothing, also after a restart. Each is kept until `expires_at`.
CREATE TABLE webhook_deliveries (
    app_id     INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    delivery   TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, delivery)
);
CREATE INDEX webhook_deliveries_expiry ON webhook_deliveries (expires_at);
