-- Sessions and API tokens (issue 13).
--
-- A session also ends when it has not been used for a while, not only at the
-- end of its fixed lifetime: a browser left logged in on a shared machine
-- stops being a way in. `last_seen_at` is written at most once a minute, so
-- a page view is not a write.
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET last_seen_at = created_at;

-- An API token may end on its own (NULL: never), and may be read-only
-- (GET and HEAD only), for a monitoring script or a CI job that only looks.
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1));
