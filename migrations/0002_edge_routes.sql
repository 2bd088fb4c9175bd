-- Routes of the edge proxy: a host (exact, or `*.example.com`) and a path
-- prefix, belonging to an app. A row without `static_dir` sends requests to
-- the app's current container; a row with one serves that directory (a
-- static site mounted on the app's domain, such as a Hugo blog under /blog).
-- Every app also gets the default host <app>.<project>.<base domain>, which
-- is computed, not stored. The dashboard's own domain is the settings key
-- `dashboard_domain`.
CREATE TABLE domains (
    id             INTEGER PRIMARY KEY,
    app_id         INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    host           TEXT NOT NULL,
    -- '/' for the whole host, else '/a/b' without a trailing slash.
    path_prefix    TEXT NOT NULL DEFAULT '/',
    strip_prefix   INTEGER NOT NULL DEFAULT 0,
    static_dir     TEXT,
    spa_fallback   INTEGER NOT NULL DEFAULT 0,
    -- 'acme', 'uploaded' or 'none'
    tls_mode       TEXT NOT NULL DEFAULT 'acme',
    redirect_https INTEGER NOT NULL DEFAULT 1,
    hsts           INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    UNIQUE (host, path_prefix)
);
CREATE INDEX domains_app_id ON domains (app_id);
