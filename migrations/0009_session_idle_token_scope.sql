-- Sessions (issue 13).
--
-- A session also ends when it has not been used for a while, not only at the
-- end of its fixed lifetime: a browser left logged in on a shared machine
-- stops being a way in. `last_seen_at` is written at most once a minute, so
-- a page view is not a write.
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET last_seen_at = created_at;
